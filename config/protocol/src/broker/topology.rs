//! Declaring the farm's exchanges and queues with their arguments, and reading their depth.

use crate::queues::{QueueName, DEAD_EXCHANGE, LATER_DELAY, LATER_EXCHANGE, REPLY_EXCHANGE};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ExchangeKind};
use perestroika_config::settings::FarmConfig;
use std::time::Duration;

use super::*;

pub(super) fn queue_err(
    what: &'static str,
    queue: &str,
) -> impl FnOnce(lapin::Error) -> BrokerError {
    let queue = queue.to_owned();
    move |source| BrokerError::Queue {
        what,
        queue,
        source,
    }
}

pub(super) fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

impl Broker {
    /// Makes `exchange` (durable, direct) unless it exists.
    pub(super) async fn ensure_exchange(&self, exchange: &str) -> Result<(), BrokerError> {
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
    pub(super) async fn ensure_queue(
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
}
