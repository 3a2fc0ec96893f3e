//! Publishing messages with confirms, and dead-lettering them with the farm's reason.

use crate::messages::Message;
use crate::queues::{exchange_of, DEAD_SUFFIX};
use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation};
use std::future::Future;
use std::time::Duration;
use tracing::warn;

use super::*;

impl Broker {
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

    pub(super) async fn send_raw(
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
}
