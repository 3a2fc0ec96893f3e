//! Taking messages and settling them: acknowledgement, dead-lettering with a reason, and what a delivery says of its past.

use crate::queues::LATER_DELAY;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use perestroika_config::settings::BrokerSettings;
use std::time::Duration;
use tracing::warn;

use super::*;

impl Broker {
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
}

/// Acknowledges a delivery of `queue`; an error when its channel is gone (lapin answers
/// `false` rather than an error then).
pub(super) async fn ack(queue: &str, delivery: &Delivery) -> Result<(), BrokerError> {
    let acked = delivery
        .ack(BasicAckOptions::default())
        .await
        .map_err(queue_err("acknowledging", queue))?;
    settled(queue, acked)
}

pub(super) fn settled(queue: &str, done: bool) -> Result<(), BrokerError> {
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

pub(super) fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
}

pub(super) fn value_text(v: &AMQPValue) -> Option<String> {
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
