//! Dead-lettered jobs: listing them with their reasons, and sending one back to its queue.
//!
//! Reading a dead-letter queue takes its messages without acknowledging them and then closes
//! the channel, so the broker keeps every message it was not told to drop.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use perestroika_config::broker::{dead_reason, Broker, BrokerError};
use perestroika_config::queues::{all_queues, DEAD_SUFFIX};
use perestroika_config::FarmConfig;
use serde::Serialize;

/// How long to wait for the next message of a dead-letter queue before deciding it is all.
const QUIET: Duration = Duration::from_millis(300);

/// One dead-lettered message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The dead-letter queue holding it.
    pub queue: String,
    /// The queue it came from and goes back to on requeue.
    pub origin: String,
    /// The job id (the message id).
    pub job_id: String,
    pub reason: String,
    /// What the message asked for, when it is a job the farm knows (package, distro, …).
    pub summary: String,
}

fn summary(data: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return "(not JSON)".into();
    };
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    if let Some(change) = v.get("change").and_then(|c| c.as_u64()) {
        return format!("retire review {change}");
    }
    let version = text("package_version");
    let mut out = format!("{} for {}", text("package"), text("distro"));
    if !version.is_empty() {
        out.push_str(&format!(" version {version}"));
    }
    out
}

fn letter(queue: &str, d: &Delivery) -> DeadLetter {
    DeadLetter {
        queue: queue.to_owned(),
        origin: queue.trim_end_matches(DEAD_SUFFIX).to_owned(),
        job_id: d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: dead_reason(d),
        summary: summary(&d.data),
    }
}

/// Every dead-letter queue of the configuration.
fn dead_queues(farm: &FarmConfig) -> Vec<String> {
    all_queues(farm).iter().map(|q| q.dead_letter()).collect()
}

/// Reads a queue's messages without acknowledging them; calls `keep` on each, and
/// acknowledges (removes) those for which it returns true. The rest stay queued.
async fn sweep(
    broker: &Broker,
    queue: &str,
    mut keep: impl FnMut(&Delivery) -> bool,
) -> Result<(), BrokerError> {
    let stats = broker.stats(queue).await?;
    if stats.messages == 0 {
        return Ok(());
    }
    let (channel, mut consumer) = broker.consume(queue, 0).await?;
    let mut seen = 0;
    while seen < stats.messages {
        match tokio::time::timeout(QUIET, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                seen += 1;
                if keep(&d) {
                    d.ack(BasicAckOptions::default()).await.map_err(|source| {
                        BrokerError::Queue {
                            what: "acknowledging",
                            queue: queue.to_owned(),
                            source,
                        }
                    })?;
                }
            }
            _ => break,
        }
    }
    // Closing the channel returns every unacknowledged message to the queue.
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

/// Lists every dead-lettered message of the farm's queues.
pub async fn list(broker: &Broker, farm: &FarmConfig) -> Result<Vec<DeadLetter>, BrokerError> {
    let mut out = Vec::new();
    for queue in dead_queues(farm) {
        sweep(broker, &queue, |d| {
            out.push(letter(&queue, d));
            false
        })
        .await?;
    }
    Ok(out)
}

/// Sends the dead-lettered message with this job id back to the queue it came from.
/// Returns what was requeued, or `None` when no dead letter has that id.
pub async fn requeue(
    broker: &Broker,
    farm: &FarmConfig,
    job_id: &str,
) -> Result<Option<DeadLetter>, BrokerError> {
    for queue in dead_queues(farm) {
        let mut found = None;
        sweep(broker, &queue, |d| {
            let l = letter(&queue, d);
            if found.is_none() && l.job_id == job_id {
                found = Some((l, d.data.clone()));
                return false;
            }
            false
        })
        .await?;
        let Some((dead, payload)) = found else {
            continue;
        };
        // Back to the work queue first, then out of the dead-letter queue: a crash between
        // the two leaves a duplicate (harmless, jobs are idempotent), never a loss.
        broker
            .send_bytes(&dead.origin, &payload, job_id)
            .await?
            .await?;
        let mut removed = false;
        sweep(broker, &queue, |d| {
            let hit = !removed && letter(&queue, d).job_id == job_id;
            removed |= hit;
            hit
        })
        .await?;
        return Ok(Some(dead));
    }
    Ok(None)
}
