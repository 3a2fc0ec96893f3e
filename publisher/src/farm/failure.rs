//! A failed build: its log published and announced, the change told which step failed.

use std::sync::Arc;
use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Disposition;
use perestroika_protocol::messages::PublishJob;
use tracing::{error, info};

use super::announce::{announce, feedback, send_feedback};
use super::records::record;
use super::staging::{incoming_dir, release_staging, take_job_files};
use crate::error::PublishError;
use crate::publisher::Publisher;
use crate::signing::Signer;

/// A failed build: its log is published (see [`Publisher::publish_log`]) and announced, and
/// the change hears which step failed, with the link to the log.
pub(super) async fn publish_failure(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    job: PublishJob,
) -> Disposition {
    let outcome = match take_job_files(&farm, &job) {
        Ok((_, Some(log))) => {
            let (f2, s2, j2) = (farm.clone(), signer.clone(), job.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                Publisher {
                    farm: &f2,
                    signer: &s2,
                }
                .publish_log(
                    &j2.customer,
                    &j2.version,
                    &j2.target,
                    &j2.job_id,
                    &log,
                    j2.requested_at,
                )
            })
            .await
            .expect("publish task");
            let _ = fs_err::remove_dir_all(incoming_dir(&farm, &job.job_id));
            outcome
        }
        Ok((_, None)) => Err(PublishError::LogNotInJob),
        Err(e) => Err(PublishError::StagedLog {
            source: Box::new(e),
        }),
    };
    let published = match outcome {
        Ok(p) => Some(p),
        // The change is gone, or the log cannot be published: the failure is still reported.
        Err(e) if e.is_refusal() || matches!(e, PublishError::Retired { .. }) => {
            info!(job = %job.job_id, reason = %e, "log of the failed build not published");
            None
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "could not publish the log of a failed build; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Disposition::Retry;
        }
    };
    if let Some(p) = &published {
        if let Err(e) = announce(&farm, &job.customer, &job.version, &p.tree, p.generation).await {
            error!(job = %job.job_id, error = %e, "could not announce; the job will be redone");
            return Disposition::Later(e.to_string());
        }
        info!(job = %job.job_id, tree = %p.tree, generation = p.generation, changed = p.changed, "log of the failed build published");
        record(
            &farm,
            &job.job_id,
            serde_json::json!({"job_id": job.job_id, "published": false, "log_published": true, "tree": p.tree, "generation": p.generation}),
        );
    }
    let link = published.map(|p| format!("{}/logs/{}.log", p.tree, job.job_id));
    if let Some(feedback) = feedback(&job, job.outcome.clone(), None, link) {
        if let Err(e) = send_feedback(&farm, &feedback).await {
            error!(job = %job.job_id, error = %e, "could not queue the feedback; the job will be redone");
            return Disposition::Later(e.to_string());
        }
    }
    release_staging(&farm, &job.job_id);
    Disposition::Ack
}
