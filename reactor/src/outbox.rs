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
