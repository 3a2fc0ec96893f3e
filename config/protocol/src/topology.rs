//! Declaring the farm's queues from its configuration and reporting on them.

use perestroika_config::FarmConfig;
use serde::Serialize;

use crate::broker::{Broker, BrokerError, QueueStats};
use crate::management::{in_progress, ManagementError};
use crate::queues::all_queues;

/// One queue's state as the broker sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    pub queue: String,
    /// `None` when the queue does not exist.
    pub stats: Option<QueueStats>,
    /// Messages delivered and not yet acknowledged (jobs being worked on), when the broker's
    /// management API is configured (`[broker] management_url`).
    pub in_progress: Option<u64>,
}

/// The queues could not be reported on.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Management(#[from] ManagementError),
}

/// Declares every work queue, waiting room and dead-letter queue of the configuration; returns
/// their names (each work queue followed by its waiting room and its dead-letter queue).
pub async fn bootstrap(broker: &Broker, farm: &FarmConfig) -> Result<Vec<String>, BrokerError> {
    let queues = broker.declare_all(farm, true).await?;
    Ok(queues
        .iter()
        .flat_map(|q| [q.to_string(), q.later(), q.dead_letter()])
        .collect())
}

/// Depth and consumers of every queue the configuration calls for, and the messages in
/// progress when the management API is configured.
pub async fn report(broker: &Broker, farm: &FarmConfig) -> Result<Vec<QueueReport>, ReportError> {
    let progress = match &farm.broker.management_url {
        Some(api) => Some(in_progress(api, &farm.broker.url).await?),
        None => None,
    };
    let mut out = Vec::new();
    for q in all_queues(farm) {
        for name in [q.to_string(), q.later(), q.dead_letter()] {
            let stats = match broker.stats(&name).await {
                Ok(s) => Some(s),
                Err(BrokerError::Queue { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let in_progress = progress
                .as_ref()
                .map(|p| p.get(&name).copied().unwrap_or(0));
            out.push(QueueReport {
                queue: name,
                stats,
                in_progress,
            });
        }
    }
    Ok(out)
}
