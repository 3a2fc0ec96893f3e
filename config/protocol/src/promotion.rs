//! Asking the publisher for a promotion: the [`Promotion`] goes on its release's publish queue,
//! naming a private reply queue in `reply_to`, and the publisher answers there with a
//! [`PromotionResult`].

use std::time::Duration;

use crate::broker::{Broker, BrokerError};
use crate::messages::{Message, MessageError, Promotion, PromotionResult};
use crate::queues::{QueueName, Stage};

/// A promotion could not be asked for, or no answer came.
#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    /// The promotion names something no message may carry (a bad package or suite name, …).
    #[error(transparent)]
    Invalid(MessageError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("queueing the promotion on {queue}")]
    Queue {
        queue: String,
        #[source]
        source: BrokerError,
    },
    /// The publisher did not answer in time; the promotion stays queued.
    #[error("no answer from the publisher within {} s; the promotion {job_id} stays queued on {queue}", within.as_secs())]
    NoAnswer {
        job_id: String,
        queue: String,
        within: Duration,
    },
    /// The promotion was sent without a reply queue, so no answer comes.
    #[error("the promotion {job_id} was queued without a reply queue; no answer comes")]
    NotAwaited { job_id: String },
    #[error("reading the publisher's answer")]
    Answer(#[source] MessageError),
}

/// A promotion queued on its release's publish queue.
#[derive(Debug, Clone)]
pub struct Request {
    /// The publish queue it went to.
    pub queue: String,
    pub job_id: String,
    reply_to: Option<String>,
}

/// Queues `promotion` on the publish queue of its release; with `await_answer`, first declares
/// a private reply queue for the publisher's answer (see [`Request::answer`]).
pub async fn send(
    broker: &Broker,
    mut promotion: Promotion,
    await_answer: bool,
) -> Result<Request, PromotionError> {
    let reply_to = if await_answer {
        Some(broker.declare_reply_queue().await?)
    } else {
        None
    };
    promotion.reply_to = reply_to.clone();
    promotion.check().map_err(PromotionError::Invalid)?;
    let queue = QueueName::new(Stage::Publish, &promotion.customer, &promotion.version).to_string();
    broker
        .publish(&queue, &promotion, &promotion.job_id)
        .await
        .map_err(|source| PromotionError::Queue {
            queue: queue.clone(),
            source,
        })?;
    Ok(Request {
        queue,
        job_id: promotion.job_id,
        reply_to,
    })
}

impl Request {
    /// Waits up to `within` for the publisher's answer.
    pub async fn answer(
        &self,
        broker: &Broker,
        within: Duration,
    ) -> Result<PromotionResult, PromotionError> {
        let reply = self
            .reply_to
            .as_deref()
            .ok_or_else(|| PromotionError::NotAwaited {
                job_id: self.job_id.clone(),
            })?;
        let answer = broker
            .take(reply, within)
            .await?
            .ok_or_else(|| PromotionError::NoAnswer {
                job_id: self.job_id.clone(),
                queue: self.queue.clone(),
                within,
            })?;
        PromotionResult::from_bytes(&answer.data).map_err(PromotionError::Answer)
    }
}
