//! The publish queues consumed, one active consumer each, and every message handed to what
//! handles its kind.

use std::sync::Arc;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{run_consumer, Disposition};
use perestroika_protocol::messages::{
    Message, Promotion, PublishJob, ReviewRetirement, SignatureRefresh,
};
use perestroika_protocol::{QueueName, Stage};

use super::job::publish;
use super::promote::promote;
use super::refresh::{ask_for_refreshes, refresh, refresh_interval};
use super::retire::retire_review;
use crate::signing::Signer;

/// Consumes every publish queue of the configuration until the process is stopped, and asks
/// for signature refreshes on a timer (see `ask_for_refreshes`).
pub async fn run(farm: Arc<FarmConfig>, signer: Arc<Signer>) {
    let mut tasks = Vec::new();
    if let Some(every) = refresh_interval(&farm) {
        tasks.push(tokio::spawn(ask_for_refreshes(farm.clone(), every)));
    }
    for (customer, release) in farm.releases() {
        let queue = QueueName::new(Stage::Publish, &customer.name, &release.name);
        let (farm, signer) = (farm.clone(), signer.clone());
        tasks.push(tokio::spawn(async move {
            let settings = farm.broker.clone();
            run_consumer(&settings, &queue.clone(), 1, |delivery| {
                let (farm, signer, queue) = (farm.clone(), signer.clone(), queue.clone());
                async move {
                    let disposition = handle(farm, signer, &queue, delivery.data.clone()).await;
                    (delivery, disposition)
                }
            })
            .await
        }));
    }
    futures_util::future::join_all(tasks).await;
}

/// Hands a message to what handles its kind: a publish job, a review retirement, a promotion
/// or a signature refresh; anything else is dead-lettered.
async fn handle(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    data: Vec<u8>,
) -> Disposition {
    match PublishJob::from_bytes(&data) {
        Ok(job) => publish(farm, signer, queue, job).await,
        Err(e) => {
            if let Ok(retire) = ReviewRetirement::from_bytes(&data) {
                return retire_review(farm, signer, queue, retire).await;
            }
            if let Ok(promotion) = Promotion::from_bytes(&data) {
                return promote(farm, signer, queue, promotion).await;
            }
            if let Ok(request) = SignatureRefresh::from_bytes(&data) {
                return refresh(farm, signer, queue, request).await;
            }
            Disposition::DeadLetter(format!("not a valid publish job: {e}"))
        }
    }
}
