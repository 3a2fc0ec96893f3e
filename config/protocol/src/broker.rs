//! All AMQP plumbing of the farm: the queue topology, publishing with confirms, consuming with
//! manual acknowledgement, dead-lettering with a reason, and reconnecting with backoff.
//!
//! Every work queue is a durable quorum queue whose rejected or over-delivered messages go to
//! `<queue>.dead` (at-least-once dead-lettering, so a dead letter is never lost either). Every
//! message goes through a named exchange ([`crate::queues::exchange_of`]).

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tracing::{info, warn};

use crate::messages::Message;
use crate::queues::{
    exchange_of, QueueName, DEAD_EXCHANGE, DEAD_SUFFIX, LATER_DELAY, LATER_EXCHANGE, REPLY_EXCHANGE,
};
use perestroika_config::settings::{BrokerSettings, FarmConfig};
use perestroika_host::backoff::Backoff;

/// Header that carries why the farm dead-lettered a message.
pub const REASON_HEADER: &str = "x-perestroika-reason";
/// Header that names the queue a dead letter came from.
pub const ORIGIN_HEADER: &str = "x-perestroika-queue";
/// The most bytes of free text (a dead letter's reason) the farm puts into one header: a
/// message's headers travel in one AMQP frame (128 KiB by default), and a reason as long as a
/// build log would make the broker close the connection instead of taking the dead letter.
pub const MAX_HEADER_TEXT: usize = 4096;
/// What ends a text [`header_text`] had to cut.
const CUT_MARKER: &str = " … [cut]";

/// `text` as the farm puts it into a header: whole when it fits [`MAX_HEADER_TEXT`], else cut on
/// a char boundary and ended with a marker, `MAX_HEADER_TEXT` bytes in all.
pub fn header_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_HEADER_TEXT {
        return text.into();
    }
    let mut end = MAX_HEADER_TEXT - CUT_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end]).into()
}

/// A broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach RabbitMQ at {url}: {source}; is it running? (`rabbitmqctl status`)")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ at {url} refused user {user} on virtual host {vhost}: check the password in [broker] url, and that the user may use the virtual host (`rabbitmqctl list_permissions -p {vhost}`)")]
    AccessRefused {
        url: String,
        user: String,
        vhost: String,
    },
    #[error("TLS with RabbitMQ at {url} failed: {source}; a broker certificate from a private authority needs [broker] ca_file, and a broker that asks for a client certificate needs client_cert_file and client_key_file")]
    Tls {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("{path}: {source} (a TLS file of [broker])")]
    TlsFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("RabbitMQ refused to make {what} ({source}), and it does not exist: run `perestroika-queue bootstrap` with the broker administrator's user, which makes the farm's exchanges and queues")]
    Topology {
        what: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ refused {what} on queue {queue}: {source}")]
    Queue {
        what: &'static str,
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "queue {queue} does not exist; declare the topology with `perestroika-queue bootstrap`"
    )]
    Unroutable { queue: String },
    #[error("RabbitMQ did not confirm the message to {queue} (negative acknowledgement)")]
    Nacked { queue: String },
    #[error("RabbitMQ connection failed: {0}")]
    Channel(#[source] lapin::Error),
    #[error("a delivery of {queue} could not be settled: its channel is gone (the broker took it back, e.g. after its consumer_timeout, and delivers it again)")]
    Unsettled { queue: String },
}

/// Depth and consumers of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

/// What a consumer decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done; its effect is durable.
    Ack,
    /// Put it back for another try (counts against the delivery limit): for failures whose
    /// cause is not known, so that a message that keeps failing ends in the dead letters.
    Retry,
    /// The farm could not do it now (a service down, a timeout, a full disk), not the message's
    /// fault: tried again after a backoff, never counted against the delivery limit, never
    /// dead-lettered. The consumer holds the message while it retries (it keeps its place
    /// in the queue) for up to [`HOLD_LIMIT`], then rejects it: the broker moves it to the
    /// queue's waiting room, whence it returns to the back of the queue after [`LATER_DELAY`].
    Later(String),
    /// It can never succeed: move it to the dead-letter queue with this reason.
    DeadLetter(String),
}

/// How long a consumer holds a message it cannot handle now before it lets it wait in its
/// queue's waiting room: well below RabbitMQ's default `consumer_timeout` (30 minutes), after
/// which the broker would take the message back and count a delivery.
pub const HOLD_LIMIT: Duration = Duration::from_secs(600);

/// The longest pause between two tries of a message the farm could not handle now.
pub const LATER_MAX_DELAY: Duration = Duration::from_secs(60);

/// What a build queue's `x-consumer-timeout` allows beyond `build.timeout_secs`: fetching the
/// sources, collecting the results and handing them over happen outside the build timeout.
pub const BUILD_CONSUMER_MARGIN: Duration = Duration::from_secs(3600);

/// A connection to RabbitMQ with a confirming channel for publishing.
pub struct Broker {
    conn: Connection,
    publish: Channel,
    settings: BrokerSettings,
}

/// The `user:password` an AMQP URL logs in with (`guest:guest` when it names none, as
/// RabbitMQ does).
pub fn credentials_of(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map_or("guest:guest", |(credentials, _)| credentials)
}

/// The user an AMQP URL logs in as.
fn user_of(url: &str) -> String {
    let credentials = credentials_of(url);
    credentials
        .split_once(':')
        .map_or(credentials, |(user, _)| user)
        .to_owned()
}

/// The virtual host of an AMQP URL (`/` when it names none).
pub fn vhost_of(url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path.split('?').next().unwrap_or_default())
        .unwrap_or_default();
    if path.is_empty() {
        return "/".into();
    }
    path.replace("%2f", "/").replace("%2F", "/")
}

fn strip_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The TLS settings of an `amqps://` connection: the configured certificate authorities (PEM,
/// besides the system's) and client certificate.
fn tls_config(settings: &BrokerSettings) -> Result<lapin::tcp::OwnedTLSConfig, BrokerError> {
    let read = |path: &std::path::Path| {
        fs_err::read(path).map_err(|source| BrokerError::TlsFile {
            path: path.to_owned(),
            source,
        })
    };
    let cert_chain = match &settings.ca_file {
        Some(path) => Some(String::from_utf8_lossy(&read(path)?).into_owned()),
        None => None,
    };
    let identity = match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    Ok(lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

fn queue_err(what: &'static str, queue: &str) -> impl FnOnce(lapin::Error) -> BrokerError {
    let queue = queue.to_owned();
    move |source| BrokerError::Queue {
        what,
        queue,
        source,
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

impl Broker {
    /// Connects once.
    pub async fn connect(settings: &BrokerSettings) -> Result<Self, BrokerError> {
        let name = format!(
            "{} on {}",
            std::env::args().next().unwrap_or_default(),
            hostname()
        );
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from(name.into_bytes()));
        let connect_err = |source: lapin::Error| {
            let url = strip_credentials(&settings.url);
            let text = source.to_string();
            if text.contains("ACCESS_REFUSED") || text.contains("ACCESS-REFUSED") {
                BrokerError::AccessRefused {
                    url,
                    user: user_of(&settings.url),
                    vhost: vhost_of(&settings.url),
                }
            } else if text.to_ascii_lowercase().contains("certificate") {
                BrokerError::Tls { url, source }
            } else {
                BrokerError::Connect { url, source }
            }
        };
        let tls = tls_config(settings)?;
        let runtime = lapin::runtime::default_runtime().map_err(connect_err)?;
        let conn = Connection::connect_with_config(&settings.url, props, tls, runtime)
            .await
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
    async fn try_on_own_channel<F, Fut>(&self, op: F) -> Result<(), lapin::Error>
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
    async fn exists(&self, exchange: Option<&str>, queue: Option<&str>) -> bool {
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

    /// Makes `exchange` (durable, direct) unless it exists.
    async fn ensure_exchange(&self, exchange: &str) -> Result<(), BrokerError> {
        if self.exists(Some(exchange), None).await {
            return Ok(());
        }
        self.try_on_own_channel(|c| async move {
            c.exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
        })
        .await
        .map_err(|source| BrokerError::Topology {
            what: format!("exchange {exchange}"),
            source,
        })
    }

    /// Declares `queue` with `args` and binds it to `exchange` under its own name. A user
    /// without the right to (a part's own, see [`crate::queues::Part::permissions`]) finds
    /// the queue made by `perestroika-queue bootstrap`: only a queue missing is an error.
    async fn ensure_queue(
        &self,
        queue: &str,
        args: FieldTable,
        exchange: &str,
    ) -> Result<(), BrokerError> {
        let declared = self
            .try_on_own_channel(|c| async move {
                c.queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
                    .await
                    .map(drop)
            })
            .await;
        // Binding again is harmless; a queue of an older topology gets its binding here.
        let bound = self
            .try_on_own_channel(|c| async move {
                c.queue_bind(
                    queue.into(),
                    exchange.into(),
                    queue.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            })
            .await;
        match (declared, bound) {
            (Ok(()), Ok(())) => Ok(()),
            (declared, bound) if self.exists(None, Some(queue)).await => {
                if let Err(e) = declared.and(bound) {
                    tracing::debug!(%queue, error = %e, "not declaring or binding a queue that exists");
                }
                Ok(())
            }
            (declared, bound) => Err(BrokerError::Topology {
                what: format!("queue {queue}"),
                source: declared.and(bound).expect_err("one of them failed"),
            }),
        }
    }

    /// Makes sure a work queue and its dead-letter queue exist, with the exchanges they take
    /// messages from: checked without any permission (a part's user may make none), made
    /// (see [`Broker::redeclare`]) only when missing.
    pub async fn declare(&self, queue: &QueueName) -> Result<(), BrokerError> {
        let (name, dead) = (queue.to_string(), queue.dead_letter());
        if self
            .exists(Some(&queue.stage.exchange()), Some(&name))
            .await
            && self.exists(Some(DEAD_EXCHANGE), Some(&dead)).await
            && self
                .exists(Some(LATER_EXCHANGE), Some(&queue.later()))
                .await
        {
            return Ok(());
        }
        self.redeclare(queue, None).await
    }

    /// Declares a work queue and its dead-letter queue, with the exchanges they take messages
    /// from, and binds them (a queue of an earlier topology gets its bindings). Declaring
    /// again is harmless; `perestroika-queue bootstrap` does this for every queue.
    /// `consumer_timeout` sets the queue's `x-consumer-timeout` (honoured from RabbitMQ 3.12;
    /// older brokers have only their global `consumer_timeout`). A queue that exists keeps the
    /// arguments it was made with.
    pub async fn redeclare(
        &self,
        queue: &QueueName,
        consumer_timeout: Option<Duration>,
    ) -> Result<(), BrokerError> {
        let name = queue.to_string();
        let dead = queue.dead_letter();
        let exchange = queue.stage.exchange();
        self.ensure_exchange(DEAD_EXCHANGE).await?;
        self.ensure_exchange(&exchange).await?;
        let mut dead_args = FieldTable::default();
        dead_args.insert("x-queue-type".into(), long("quorum"));
        self.ensure_queue(&dead, dead_args, DEAD_EXCHANGE).await?;

        // The waiting room: back to the work queue after LATER_DELAY.
        let later = queue.later();
        self.ensure_exchange(LATER_EXCHANGE).await?;
        let mut later_args = FieldTable::default();
        later_args.insert("x-queue-type".into(), long("quorum"));
        let delay = i64::try_from(LATER_DELAY.as_millis()).unwrap_or(i64::MAX);
        later_args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay));
        later_args.insert("x-dead-letter-exchange".into(), long(&exchange));
        later_args.insert("x-dead-letter-routing-key".into(), long(&name));
        // At-most-once: RabbitMQ's at-least-once dead-lettering refuses any route that leads
        // back to a queue the message came from, and this one must. A message is lost on this
        // hop only if the work queue cannot take it at that instant (no leader).
        later_args.insert("x-dead-letter-strategy".into(), long("at-most-once"));
        self.ensure_queue(&later, later_args, LATER_EXCHANGE)
            .await?;

        // What the broker dead-letters (a rejected message, one over the delivery limit) goes
        // to the waiting room; the farm's own dead letters go to `.dead` through DEAD_EXCHANGE.
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long("quorum"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.settings.delivery_limit.min(i32::MAX as u32) as i32),
        );
        args.insert("x-dead-letter-exchange".into(), long(LATER_EXCHANGE));
        args.insert("x-dead-letter-routing-key".into(), long(&later));
        args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
        args.insert("x-overflow".into(), long("reject-publish"));
        if queue.stage.single_active_consumer() {
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        if let Some(timeout) = consumer_timeout {
            let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-consumer-timeout".into(), AMQPValue::LongLongInt(ms));
        }
        self.ensure_queue(&name, args, &exchange).await
    }

    /// Declares a private queue for answers to this connection (exclusive, gone when the
    /// connection closes), bound to the answers' exchange; returns its name.
    pub async fn declare_reply_queue(&self) -> Result<String, BrokerError> {
        let name = format!(
            "{}{}.{}.{}",
            crate::queues::REPLY_PREFIX,
            hostname(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        self.ensure_exchange(REPLY_EXCHANGE).await?;
        self.publish
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(queue_err("declaring", &name))?;
        self.publish
            .queue_bind(
                name.as_str().into(),
                REPLY_EXCHANGE.into(),
                name.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(queue_err("binding", &name))?;
        Ok(name)
    }

    /// Makes sure every queue the configuration calls for exists ([`Broker::declare`]);
    /// `redeclare` declares and binds each again ([`Broker::redeclare`]). Returns their names.
    pub async fn declare_all(
        &self,
        farm: &FarmConfig,
        redeclare: bool,
    ) -> Result<Vec<QueueName>, BrokerError> {
        let queues = crate::queues::all_queues(farm);
        for q in &queues {
            if redeclare {
                self.redeclare(q, consumer_timeout(farm, q)).await?;
            } else {
                self.declare(q).await?;
            }
        }
        Ok(queues)
    }

    /// The connection, for parts that open channels of their own.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Depth and consumer count of an existing queue.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats, BrokerError> {
        // A passive declare of a missing queue closes the channel, so use a throwaway one.
        let channel = self
            .conn
            .create_channel()
            .await
            .map_err(BrokerError::Channel)?;
        let q = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default().passive(),
                FieldTable::default(),
            )
            .await
            .map_err(queue_err("inspecting", queue))?;
        let _ = channel.close(200, "done".into()).await;
        Ok(QueueStats {
            messages: q.message_count(),
            consumers: q.consumer_count(),
        })
    }

    /// Publishes a persistent message and waits for the broker's confirm. `message_id` should
    /// be the job id, so that duplicates are recognisable downstream.
    pub async fn publish<M: Message>(
        &self,
        queue: &str,
        message: &M,
        message_id: &str,
    ) -> Result<(), BrokerError> {
        // A nack means the broker could not take the message on (e.g. a quorum queue still
        // electing its leader): sending it again is the documented answer.
        let mut delay = Duration::from_millis(100);
        loop {
            match self.send(queue, message, message_id).await?.await {
                Err(BrokerError::Nacked { .. }) if delay < Duration::from_secs(2) => {
                    warn!(%queue, retry_in = ?delay, "broker nacked a message; sending it again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    /// Sends a persistent message and returns the broker's confirm still to come, so that a
    /// caller can keep several messages in flight and settle them in order.
    pub async fn send<M: Message>(
        &self,
        queue: &str,
        message: &M,
        message_id: &str,
    ) -> Result<impl Future<Output = Result<(), BrokerError>> + Send + 'static, BrokerError> {
        self.send_raw(
            queue,
            &message.to_bytes(),
            message_id,
            FieldTable::default(),
        )
        .await
    }

    /// [`Broker::send`] for a payload already encoded.
    pub async fn send_bytes(
        &self,
        queue: &str,
        payload: &[u8],
        message_id: &str,
    ) -> Result<impl Future<Output = Result<(), BrokerError>> + Send + 'static, BrokerError> {
        self.send_raw(queue, payload, message_id, FieldTable::default())
            .await
    }

    async fn send_raw(
        &self,
        queue: &str,
        payload: &[u8],
        message_id: &str,
        headers: FieldTable,
    ) -> Result<impl Future<Output = Result<(), BrokerError>> + Send + 'static, BrokerError> {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_headers(headers);
        let exchange = exchange_of(queue).unwrap_or_default();
        let pending = self
            .publish
            .basic_publish(
                ShortString::from(exchange),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                payload,
                props,
            )
            .await
            .map_err(queue_err("publishing", queue))?;
        let queue = queue.to_owned();
        Ok(async move {
            let confirm = pending.await.map_err(queue_err("confirming", &queue))?;
            match confirm {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable { queue }),
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    Err(BrokerError::Nacked { queue })
                }
            }
        })
    }

    /// Moves a delivery to its queue's dead-letter queue with a reason, then acknowledges it.
    pub async fn dead_letter(
        &self,
        queue: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), long(&header_text(reason)));
        headers.insert(ORIGIN_HEADER.into(), long(&header_text(queue)));
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let dead = format!("{queue}{DEAD_SUFFIX}");
        self.send_raw(&dead, &delivery.data, &id, headers)
            .await?
            .await?;
        ack(queue, delivery).await
    }

    /// Acts on a consumer's [`Disposition`] of `delivery`, taken from `queue`.
    pub async fn settle(
        &self,
        queue: &str,
        delivery: &Delivery,
        disposition: &Disposition,
    ) -> Result<(), BrokerError> {
        match disposition {
            Disposition::Ack => ack(queue, delivery).await,
            Disposition::Retry => {
                let returned = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(queue_err("returning", queue))?;
                settled(queue, returned)
            }
            Disposition::DeadLetter(reason) => {
                warn!(%queue, %reason, "dead-lettering message");
                self.dead_letter(queue, delivery, reason).await
            }
            Disposition::Later(reason) => {
                warn!(%queue, %reason, wait = ?LATER_DELAY, "cannot handle the message now; it waits, then goes to the back of its queue");
                let rejected = delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .map_err(queue_err("putting aside", queue))?;
                settled(queue, rejected)
            }
        }
    }

    /// Starts consuming with manual acknowledgement and the given prefetch.
    pub async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<(Channel, lapin::Consumer), BrokerError> {
        let channel = self
            .conn
            .create_channel()
            .await
            .map_err(BrokerError::Channel)?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(queue_err("setting prefetch", queue))?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                format!("{}-{}", hostname(), std::process::id()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(queue_err("consuming", queue))?;
        Ok((channel, consumer))
    }

    /// Takes one message without acknowledging it (for inspection tools and tests).
    pub async fn get(&self, queue: &str) -> Result<Option<Delivery>, BrokerError> {
        let got = self
            .publish
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(queue_err("reading", queue))?;
        Ok(got.map(|m| m.delivery))
    }

    /// Waits up to `within` for one message, acknowledges it and returns it. Works on every
    /// queue, including single-active-consumer queues where `basic.get` is refused.
    pub async fn take(
        &self,
        queue: &str,
        within: Duration,
    ) -> Result<Option<Delivery>, BrokerError> {
        let (channel, mut consumer) = self.consume(queue, 1).await?;
        let got = tokio::time::timeout(within, consumer.next()).await;
        let delivery = match got {
            Ok(Some(Ok(d))) => {
                d.ack(BasicAckOptions::default())
                    .await
                    .map_err(queue_err("acknowledging", queue))?;
                Some(d)
            }
            Ok(Some(Err(e))) => return Err(queue_err("consuming", queue)(e)),
            Ok(None) | Err(_) => None,
        };
        let _ = channel.close(200, "done".into()).await;
        Ok(delivery)
    }

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

/// Acknowledges a delivery of `queue`; an error when its channel is gone (lapin answers
/// `false` rather than an error then).
async fn ack(queue: &str, delivery: &Delivery) -> Result<(), BrokerError> {
    let acked = delivery
        .ack(BasicAckOptions::default())
        .await
        .map_err(queue_err("acknowledging", queue))?;
    settled(queue, acked)
}

fn settled(queue: &str, done: bool) -> Result<(), BrokerError> {
    if done {
        Ok(())
    } else {
        Err(BrokerError::Unsettled {
            queue: queue.to_owned(),
        })
    }
}

/// Why a delivery must not be handled again, if so: the broker delivered it as often as
/// `broker.delivery_limit` allows, each time without an answer (a message that crashes its
/// consumer). A consumer dead-letters it to `.dead` with this reason on receipt, so that the
/// broker's own limit, whose dead letters take the waiting room's way, is not reached.
pub fn poisoned(delivery: &Delivery, settings: &BrokerSettings) -> Option<String> {
    let count = delivery_count(delivery);
    (count >= settings.delivery_limit || over_delivery_limit(delivery)).then(|| {
        format!(
            "delivered {} times without being settled (broker.delivery_limit is {})",
            count + 1,
            settings.delivery_limit
        )
    })
}

/// Whether the broker dead-lettered this message for exceeding the delivery limit (it then went
/// through the waiting room back to its queue, see [`LATER_EXCHANGE`]).
pub fn over_delivery_limit(delivery: &Delivery) -> bool {
    let Some(AMQPValue::FieldArray(deaths)) = header(delivery, "x-death") else {
        return false;
    };
    deaths.as_slice().iter().any(|death| {
        matches!(death, AMQPValue::FieldTable(t)
            if t.inner().get("reason").and_then(value_text).as_deref() == Some("delivery_limit"))
    })
}

/// How many times a quorum queue has delivered this message before (0 on the first delivery).
pub fn delivery_count(delivery: &Delivery) -> u32 {
    header(delivery, "x-delivery-count")
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
}

fn value_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Why a message is in a dead-letter queue: the farm's own reason, or the broker's (from
/// `x-death`, e.g. `delivery_limit` or `rejected`).
pub fn dead_reason(delivery: &Delivery) -> String {
    if let Some(reason) = header(delivery, REASON_HEADER).and_then(value_text) {
        return header_text(&reason).into_owned();
    }
    if let Some(AMQPValue::FieldArray(deaths)) = header(delivery, "x-death") {
        for death in deaths.as_slice() {
            if let AMQPValue::FieldTable(t) = death {
                if let Some(reason) = t.inner().get("reason").and_then(value_text) {
                    let queue = t
                        .inner()
                        .get("queue")
                        .and_then(value_text)
                        .unwrap_or_default();
                    return header_text(&format!("{reason} (from {queue})")).into_owned();
                }
            }
        }
    }
    "unknown".into()
}

/// Consumes `queue` for ever: connects with backoff, declares the queue, hands each message to
/// `handle`, and acts on its [`Disposition`]. A lost connection is re-established; messages
/// that were not acknowledged are redelivered by the broker.
pub async fn run_consumer<F, Fut>(
    settings: &BrokerSettings,
    queue: &QueueName,
    prefetch: u16,
    mut handle: F,
) -> !
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = (Delivery, Disposition)>,
{
    let name = queue.to_string();
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(settings.reconnect_max_secs.max(1)),
    );
    loop {
        let broker = Broker::connect_with_backoff(settings).await;
        let consumer = match broker.declare(queue).await {
            Ok(()) => broker.consume(&name, prefetch).await,
            Err(e) => Err(e),
        };
        let (_channel, mut consumer) = match consumer {
            Ok(c) => c,
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(queue = %name, error = %e, retry_in = ?delay, "cannot consume");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        info!(queue = %name, "consuming");
        backoff.reset();
        while let Some(next) = consumer.next().await {
            let delivery = match next {
                Ok(d) => d,
                Err(e) => {
                    warn!(queue = %name, error = %e, "consumer stopped");
                    break;
                }
            };
            let (delivery, disposition) = if let Some(why) = poisoned(&delivery, settings) {
                (delivery, Disposition::DeadLetter(why))
            } else {
                handle_holding(&name, delivery, &mut handle).await
            };
            let done = broker.settle(&name, &delivery, &disposition).await;
            if let Err(e) = done {
                warn!(queue = %name, error = %e, "could not settle message; it will be redelivered");
                break;
            }
        }
        let delay = backoff.next_delay();
        warn!(queue = %name, retry_in = ?delay, "lost the broker; reconnecting");
        tokio::time::sleep(delay).await;
    }
}

/// Hands a delivery to `handle`, and again after a backoff for as long as the answer is
/// [`Disposition::Later`], up to [`HOLD_LIMIT`]; returns the last answer.
async fn handle_holding<F, Fut>(
    queue: &str,
    delivery: Delivery,
    handle: &mut F,
) -> (Delivery, Disposition)
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = (Delivery, Disposition)>,
{
    let since = std::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_secs(2), LATER_MAX_DELAY);
    let (mut delivery, mut disposition) = handle(delivery).await;
    while let Disposition::Later(reason) = &disposition {
        let delay = backoff.next_delay();
        if since.elapsed() + delay > HOLD_LIMIT {
            break;
        }
        warn!(%queue, %reason, retry_in = ?delay, "cannot handle the message now; trying again");
        tokio::time::sleep(delay).await;
        (delivery, disposition) = handle(delivery).await;
    }
    (delivery, disposition)
}

/// The `x-consumer-timeout` of `queue`: a build holds its job for up to `build.timeout_secs`
/// plus [`BUILD_CONSUMER_MARGIN`]; other queues keep the broker's.
pub fn consumer_timeout(farm: &FarmConfig, queue: &QueueName) -> Option<Duration> {
    (queue.stage == crate::queues::Stage::Build)
        .then(|| Duration::from_secs(farm.build.timeout_secs) + BUILD_CONSUMER_MARGIN)
}

/// This host's name, for connection names and consumer tags.
pub fn hostname() -> String {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_virtual_hosts_of_urls() {
        assert_eq!(user_of("amqp://farm:pw@h:5672/%2f"), "farm");
        assert_eq!(user_of("amqps://h/"), "guest");
        assert_eq!(vhost_of("amqp://u:p@h:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://u:p@h:5672/farm?heartbeat=10"), "farm");
        assert_eq!(vhost_of("amqp://u:p@h:5672"), "/");
    }

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            strip_credentials("amqp://user:secret@host:5672/%2f"),
            "amqp://host:5672/%2f"
        );
        assert_eq!(strip_credentials("amqp://host/"), "amqp://host/");
    }

    #[test]
    fn header_text_is_capped_on_a_char_boundary_with_a_marker() {
        assert_eq!(header_text("short reason"), "short reason");
        let fits = "x".repeat(MAX_HEADER_TEXT);
        assert_eq!(header_text(&fits), fits);
        // Two-byte chars, so that the cut falls inside one unless it is moved.
        for long in [
            "é".repeat(MAX_HEADER_TEXT),
            format!("a{}", "é".repeat(600_000)),
        ] {
            let capped = header_text(&long);
            assert!(capped.len() <= MAX_HEADER_TEXT, "{}", capped.len());
            assert!(capped.len() > MAX_HEADER_TEXT - 16, "{}", capped.len());
            assert!(capped.ends_with(" … [cut]"));
            let kept = capped.strip_suffix(" … [cut]").unwrap();
            assert!(long.starts_with(kept));
        }
    }
}
