//! Dead-lettered jobs: listing them with their reasons, and sending one back to its queue.
//!
//! Reading a dead-letter queue takes its messages without acknowledging them and then closes
//! the channel, so the broker keeps every message it was not told to drop.

use std::time::Duration;

use crate::broker::{dead_reason, Broker, BrokerError};
use crate::messages::{
    BuildJob, Feedback, MirrorAnnouncement, Promotion, PublishJob, ReviewRetirement,
    SignatureRefresh,
};
use crate::queues::{all_queues, DEAD_SUFFIX};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use perestroika_config::FarmConfig;
use serde::de::DeserializeOwned;
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

/// What a dead-lettered message asked for, by its kind: `greet for bookworm version 1.1` (a
/// build or publish job), `promote greet from proposed to updates`, `retire review 7`, ….
fn summary(data: &[u8]) -> String {
    fn parse<M: DeserializeOwned>(data: &[u8]) -> Option<M> {
        serde_json::from_slice(data).ok()
    }
    let package = |package: &str, distro: &str, version: Option<&str>| match version {
        Some(v) if !v.is_empty() => format!("{package} for {distro} version {v}"),
        _ => format!("{package} for {distro}"),
    };
    if let Some(j) = parse::<BuildJob>(data) {
        return package(&j.package, &j.distro, None);
    }
    if let Some(j) = parse::<PublishJob>(data) {
        return package(&j.package, &j.distro, Some(&j.package_version));
    }
    if let Some(f) = parse::<Feedback>(data) {
        return format!(
            "feedback on change {},{}: {}",
            f.change,
            f.patchset,
            package(&f.package, &f.distro, f.package_version.as_deref())
        );
    }
    if let Some(p) = parse::<Promotion>(data) {
        let mut out = format!("promote {}", p.package);
        if let Some(v) = &p.package_version {
            out.push_str(&format!(" {v}"));
        }
        out.push_str(&format!(" from {} to {}", p.from, p.to));
        if !p.distros.is_empty() {
            out.push_str(&format!(" in {}", p.distros.join(", ")));
        }
        return out;
    }
    if let Some(r) = parse::<ReviewRetirement>(data) {
        return format!("retire review {}", r.change);
    }
    if let Some(r) = parse::<SignatureRefresh>(data) {
        return format!("refresh the signatures of {} {}", r.customer, r.version);
    }
    if let Some(a) = parse::<MirrorAnnouncement>(data) {
        return format!("mirror {} generation {}", a.tree, a.generation);
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(_) => "(not a message of the farm)".into(),
        Err(_) => "(not JSON)".into(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a dead-lettered promotion was summarised `greet for ` (it has no distro).
    #[test]
    fn a_promotion_is_summarised_with_its_suites() {
        let p = Promotion::new(
            "demo",
            "1.0",
            "greet",
            None,
            "proposed",
            "updates",
            &[],
            false,
        );
        let data = serde_json::to_vec(&p).unwrap();
        assert_eq!(summary(&data), "promote greet from proposed to updates");
        let p = Promotion::new(
            "demo",
            "1.0",
            "greet",
            Some("1.1"),
            "proposed",
            "security",
            &["bookworm".into()],
            true,
        );
        let data = serde_json::to_vec(&p).unwrap();
        assert_eq!(
            summary(&data),
            "promote greet 1.1 from proposed to security in bookworm"
        );
    }

    #[test]
    fn other_messages_are_summarised_by_kind() {
        let r = ReviewRetirement::new("demo", "1.0", 7);
        assert_eq!(summary(&serde_json::to_vec(&r).unwrap()), "retire review 7");
        let r = SignatureRefresh::new("demo", "1.0");
        assert_eq!(
            summary(&serde_json::to_vec(&r).unwrap()),
            "refresh the signatures of demo 1.0"
        );
        assert_eq!(summary(b"{\"x\": 1}"), "(not a message of the farm)");
        assert_eq!(summary(b"nope"), "(not JSON)");
    }
}
