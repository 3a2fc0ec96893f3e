//! Messages on their way to the broker: sent at once, settled in order as the broker confirms
//! them, and sent again after a broker outage. While the broker is away the outbox holds
//! what it has and takes nothing new, which pushes back on the Gerrit stream.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use perestroika_config::settings::{BrokerSettings, FarmConfig};
use perestroika_host::backoff::Backoff;
use perestroika_protocol::broker::{Broker, BrokerError};
use tracing::{info, warn};

/// One message for one queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub queue: String,
    /// The job id: the message id, and what deduplication goes by.
    pub id: String,
    pub payload: Vec<u8>,
}

/// The messages of one event, settled together.
#[derive(Debug, Clone)]
pub struct Batch {
    pub messages: Vec<Outgoing>,
    /// Gerrit time of the event; recorded as handled once every message is confirmed.
    pub event_time: Option<i64>,
    /// The recheck (change, Gerrit time) these messages build, confirmed with them.
    pub recheck: Option<(u64, i64)>,
}

type Confirm = Pin<Box<dyn Future<Output = Result<(), BrokerError>> + Send>>;

struct InFlight {
    batch: Batch,
    confirms: Vec<Confirm>,
}

/// The reactor's connection to the broker with the messages not yet confirmed.
pub struct Outbox {
    settings: BrokerSettings,
    farm: FarmConfig,
    broker: Option<Broker>,
    in_flight: VecDeque<InFlight>,
    ids: HashSet<String>,
}

/// How many events may wait for the broker's confirms before the stream is held.
pub const MAX_IN_FLIGHT: usize = 512;

impl Outbox {
    /// Connects (with backoff) and declares the farm's queues.
    pub async fn connect(farm: &FarmConfig) -> Self {
        let mut outbox = Self {
            settings: farm.broker.clone(),
            farm: farm.clone(),
            broker: None,
            in_flight: VecDeque::new(),
            ids: HashSet::new(),
        };
        outbox.reconnect().await;
        outbox
    }

    /// Whether a message with this id is waiting for its confirm.
    pub fn holds(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether nothing waits for the broker's confirm.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether the outbox takes another event now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Sends a batch; after a failure, reconnects and sends everything held again.
    pub async fn push(&mut self, batch: Batch) {
        for m in &batch.messages {
            self.ids.insert(m.id.clone());
        }
        let mut entry = InFlight {
            batch,
            confirms: Vec::new(),
        };
        let sent = self.send(&mut entry).await;
        self.in_flight.push_back(entry);
        if let Err(e) = sent {
            warn!(error = %e, "broker send failed; holding events and reconnecting");
            self.recover().await;
        }
    }

    /// Waits until the oldest batch is confirmed and returns it. Safe to cancel: a confirm
    /// not yet complete stays in the outbox. After an error, call [`Outbox::recover`].
    pub async fn settle(&mut self) -> Result<Batch, BrokerError> {
        let Some(front) = self.in_flight.front_mut() else {
            return std::future::pending().await;
        };
        while let Some(confirm) = front.confirms.first_mut() {
            confirm.await?;
            drop(front.confirms.remove(0));
        }
        let done = self.in_flight.pop_front().expect("front exists").batch;
        for m in &done.messages {
            self.ids.remove(&m.id);
        }
        Ok(done)
    }

    /// Waits for every confirm, recovering from broker outages on the way.
    pub async fn drain(&mut self) -> Vec<Batch> {
        let mut out = Vec::new();
        while !self.is_empty() {
            match self.settle().await {
                Ok(batch) => out.push(batch),
                Err(e) => {
                    warn!(error = %e, "broker did not confirm; holding events and reconnecting");
                    self.recover().await;
                }
            }
        }
        out
    }

    async fn send(&self, entry: &mut InFlight) -> Result<(), BrokerError> {
        let broker = self.broker.as_ref().ok_or(BrokerError::Nacked {
            queue: "(not connected)".into(),
        })?;
        entry.confirms.clear();
        for m in &entry.batch.messages {
            let confirm = broker.send_bytes(&m.queue, &m.payload, &m.id).await?;
            entry.confirms.push(Box::pin(confirm));
        }
        Ok(())
    }

    /// Reconnects until every held message is sent again.
    pub async fn recover(&mut self) {
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(self.settings.reconnect_max_secs.max(1)),
        );
        'again: loop {
            self.reconnect().await;
            for i in 0..self.in_flight.len() {
                let mut entry = InFlight {
                    batch: self.in_flight[i].batch.clone(),
                    confirms: Vec::new(),
                };
                if let Err(e) = self.send(&mut entry).await {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "resending held events failed");
                    tokio::time::sleep(delay).await;
                    continue 'again;
                }
                self.in_flight[i] = entry;
            }
            if !self.in_flight.is_empty() {
                info!(events = self.in_flight.len(), "held events sent again");
            }
            return;
        }
    }

    async fn reconnect(&mut self) {
        if let Some(old) = self.broker.take() {
            old.close().await;
        }
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(self.settings.reconnect_max_secs.max(1)),
        );
        loop {
            let broker = Broker::connect_with_backoff(&self.settings).await;
            match broker.declare_all(&self.farm, false).await {
                Ok(_) => {
                    self.broker = Some(broker);
                    return;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "cannot declare the queues");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox with no broker, holding `batches`, each with the confirms given.
    fn holding(batches: Vec<(Batch, Vec<Confirm>)>) -> Outbox {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/farm.toml");
        let farm = FarmConfig::load_with_env(&example, Vec::new()).unwrap();
        let mut outbox = Outbox {
            settings: farm.broker.clone(),
            farm,
            broker: None,
            in_flight: VecDeque::new(),
            ids: HashSet::new(),
        };
        for (batch, confirms) in batches {
            outbox
                .ids
                .extend(batch.messages.iter().map(|m| m.id.clone()));
            outbox.in_flight.push_back(InFlight { batch, confirms });
        }
        outbox
    }

    fn batch(ids: &[&str], event_time: i64) -> Batch {
        Batch {
            messages: ids
                .iter()
                .map(|id| Outgoing {
                    queue: "build.acme.9.0".into(),
                    id: (*id).into(),
                    payload: b"{}".to_vec(),
                })
                .collect(),
            event_time: Some(event_time),
            recheck: None,
        }
    }

    fn confirmed() -> Confirm {
        Box::pin(async { Ok(()) })
    }

    fn nacked() -> Confirm {
        Box::pin(async {
            Err(BrokerError::Nacked {
                queue: "build.acme.9.0".into(),
            })
        })
    }

    /// A confirm that completes when the sender says so.
    fn later() -> (tokio::sync::oneshot::Sender<()>, Confirm) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            tx,
            Box::pin(async move {
                rx.await.expect("the test confirms");
                Ok(())
            }),
        )
    }

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn batches_settle_in_order_and_release_their_ids() {
        let mut outbox = holding(vec![
            (batch(&["a", "b"], 1), vec![confirmed(), confirmed()]),
            (batch(&["c"], 2), vec![confirmed()]),
        ]);
        assert!(outbox.holds("a") && outbox.holds("c"));
        let first = outbox.settle().await.unwrap();
        assert_eq!(first.event_time, Some(1));
        assert!(!outbox.holds("a") && !outbox.holds("b"));
        assert!(outbox.holds("c"));
        assert_eq!(outbox.settle().await.unwrap().event_time, Some(2));
        assert!(outbox.is_empty());
        assert!(!outbox.holds("c"));
        // Nothing left: settling waits (it never invents a batch).
        assert!(tokio::time::timeout(SHORT, outbox.settle()).await.is_err());
    }

    #[tokio::test]
    async fn a_batch_waits_for_every_confirm_and_settling_can_be_cancelled() {
        let (first, confirm_first) = later();
        let (second, confirm_second) = later();
        let mut outbox = holding(vec![
            (batch(&["a", "b"], 1), vec![confirm_first, confirm_second]),
            (batch(&["c"], 2), vec![confirmed()]),
        ]);
        // The later batch is confirmed already, but the first comes first.
        assert!(tokio::time::timeout(SHORT, outbox.settle()).await.is_err());
        first.send(()).unwrap();
        assert!(tokio::time::timeout(SHORT, outbox.settle()).await.is_err());
        assert!(outbox.holds("a"), "a cancelled settle keeps the batch");
        second.send(()).unwrap();
        assert_eq!(outbox.settle().await.unwrap().event_time, Some(1));
        assert_eq!(outbox.settle().await.unwrap().event_time, Some(2));
        assert!(outbox.is_empty());
    }

    #[tokio::test]
    async fn a_nacked_batch_stays_held_for_sending_again() {
        let mut outbox = holding(vec![(batch(&["a"], 1), vec![nacked()])]);
        let err = outbox.settle().await.unwrap_err();
        assert!(matches!(err, BrokerError::Nacked { .. }), "{err}");
        assert!(outbox.holds("a"));
        assert!(!outbox.is_empty());
    }

    #[tokio::test]
    async fn a_full_outbox_takes_no_more_events() {
        let batches = (0..MAX_IN_FLIGHT)
            .map(|i| (batch(&[&format!("j{i}")], i as i64), vec![confirmed()]))
            .collect();
        let mut outbox = holding(batches);
        assert!(!outbox.has_room());
        outbox.settle().await.unwrap();
        assert!(outbox.has_room());
    }
}
