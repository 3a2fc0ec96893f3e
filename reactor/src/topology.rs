//! Declaring the farm's queues from its configuration and reporting on them.

use perestroika_config::broker::{Broker, BrokerError, QueueStats};
use perestroika_config::queues::all_queues;
use perestroika_config::FarmConfig;
use serde::Serialize;

/// One queue's state as the broker sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    pub queue: String,
    /// `None` when the queue does not exist.
    pub stats: Option<QueueStats>,
}

/// Declares every work queue and dead-letter queue of the configuration; returns their names
/// (work queues first, each followed by its dead-letter queue).
pub async fn bootstrap(broker: &Broker, farm: &FarmConfig) -> Result<Vec<String>, BrokerError> {
    let queues = broker.declare_all(farm, true).await?;
    Ok(queues
        .iter()
        .flat_map(|q| [q.to_string(), q.dead_letter()])
        .collect())
}

/// Depth and consumers of every queue the configuration calls for.
pub async fn report(broker: &Broker, farm: &FarmConfig) -> Result<Vec<QueueReport>, BrokerError> {
    let mut out = Vec::new();
    for q in all_queues(farm) {
        for name in [q.to_string(), q.dead_letter()] {
            let stats = match broker.stats(&name).await {
                Ok(s) => Some(s),
                Err(BrokerError::Queue { .. }) => None,
                Err(e) => return Err(e),
            };
            out.push(QueueReport { queue: name, stats });
        }
    }
    Ok(out)
}
