//! Review retirements: a change's review repository taken down, and the mirrors told.

use std::sync::Arc;
use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Disposition;
use perestroika_protocol::messages::ReviewRetirement;
use perestroika_protocol::validate;
use perestroika_protocol::QueueName;
use tracing::{error, info};

use super::announce::announce;
use super::records::refused;
use crate::publisher::Publisher;
use crate::signing::Signer;

/// Takes down a change's review repository (the change was merged, abandoned or deleted).
pub(super) async fn retire_review(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    retire: ReviewRetirement,
) -> Disposition {
    if let Err(e) = validate::retirement(&farm, queue, &retire) {
        return refused(&retire.job_id, e);
    }
    let (farm2, customer, version) = (
        farm.clone(),
        retire.customer.clone(),
        retire.version.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &farm,
            signer: &signer,
        }
        .retire_review(&retire.customer, retire.change, retire.requested_at)
    })
    .await
    .expect("retire task");
    match outcome {
        Ok((tree, removed)) => {
            info!(%tree, removed, "review repository retired");
            // Generation 0 tells the mirrors to take the tree down too.
            match announce(&farm2, &customer, &version, &tree, 0).await {
                Ok(()) => Disposition::Ack,
                Err(e) => {
                    error!(error = %e, "could not announce the retirement; the job will be redone");
                    Disposition::Later(e.to_string())
                }
            }
        }
        Err(e) => {
            error!(error = %e, "could not retire the review repository; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Disposition::Retry
        }
    }
}
