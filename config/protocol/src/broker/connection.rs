//! Connecting to RabbitMQ (with backoff), and the channels operations run on.

use crate::messages::Message;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use perestroika_config::settings::BrokerSettings;
use perestroika_host::backoff::Backoff;
use std::future::Future;
use std::time::Duration;
use tracing::warn;

use super::*;

/// How long one node may take to accept a connection (a node cut off from the network drops
/// packets rather than refusing them).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Broker {
    /// Connects once: to the node at `url`, or, when it cannot be reached, to each of the
    /// cluster's other nodes (`urls`) in turn. The error is the last node's.
    pub async fn connect(settings: &BrokerSettings) -> Result<Self, BrokerError> {
        let mut last = None;
        for node in settings.nodes() {
            match Self::connect_to(settings, node).await {
                Ok(broker) => return Ok(broker),
                Err(e) => {
                    if !settings.urls.is_empty() {
                        warn!(node = %strip_credentials(node), error = %e, "a broker node cannot be reached");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one broker node"))
    }

    async fn connect_to(settings: &BrokerSettings, node: &str) -> Result<Self, BrokerError> {
        let name = format!(
            "{} on {}",
            std::env::args().next().unwrap_or_default(),
            hostname()
        );
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from(name.into_bytes()));
        let connect_err = |source: lapin::Error| {
            let url = strip_credentials(node);
            let text = source.to_string();
            if text.contains("ACCESS_REFUSED") || text.contains("ACCESS-REFUSED") {
                BrokerError::AccessRefused {
                    url,
                    user: user_of(node),
                    vhost: vhost_of(node),
                }
            } else if text.to_ascii_lowercase().contains("certificate") {
                BrokerError::Tls { url, source }
            } else {
                BrokerError::Connect { url, source }
            }
        };
        let tls = tls_config(settings)?;
        let runtime = lapin::runtime::default_runtime().map_err(connect_err)?;
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_with_config(node, props, tls, runtime),
        )
        .await
        .map_err(|_| BrokerError::ConnectTimeout {
            url: strip_credentials(node),
            secs: CONNECT_TIMEOUT.as_secs(),
        })?
        .map_err(connect_err)?;
        let publish = conn.create_channel().await.map_err(connect_err)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(connect_err)?;
        Ok(Self {
            conn,
            publish,
            settings: settings.clone(),
        })
    }

    /// Connects, retrying with backoff until it succeeds.
    pub async fn connect_with_backoff(settings: &BrokerSettings) -> Self {
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(settings.reconnect_max_secs.max(1)),
        );
        loop {
            match Self::connect(settings).await {
                Ok(broker) => return broker,
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "broker unavailable");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Whether the connection is still usable.
    pub fn is_connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// Runs one topology operation on a channel of its own (a refused one closes its channel);
    /// whether it succeeded.
    pub(super) async fn try_on_own_channel<F, Fut>(&self, op: F) -> Result<(), lapin::Error>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<(), lapin::Error>>,
    {
        let channel = self.conn.create_channel().await?;
        let result = op(channel.clone()).await;
        if channel.status().connected() {
            let _ = channel.close(200, "done".into()).await;
        }
        result
    }

    /// Whether an exchange or queue exists (a passive declare, which needs no permission).
    pub(super) async fn exists(&self, exchange: Option<&str>, queue: Option<&str>) -> bool {
        self.try_on_own_channel(|c| async move {
            if let Some(e) = exchange {
                c.exchange_declare(
                    e.into(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            }
            if let Some(q) = queue {
                c.queue_declare(
                    q.into(),
                    QueueDeclareOptions::default().passive(),
                    FieldTable::default(),
                )
                .await?;
            }
            Ok(())
        })
        .await
        .is_ok()
    }
}

impl Broker {
    /// Closes the connection cleanly.
    pub async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }

    /// Connects (waiting for the broker if it is down), publishes one message with
    /// [`Broker::publish`], and closes: for daemons that send a message now and then.
    pub async fn publish_once<M: Message>(
        settings: &BrokerSettings,
        queue: &str,
        message: &M,
        message_id: &str,
    ) -> Result<(), BrokerError> {
        let broker = Broker::connect_with_backoff(settings).await;
        let sent = broker.publish(queue, message, message_id).await;
        broker.close().await;
        sent
    }
}
