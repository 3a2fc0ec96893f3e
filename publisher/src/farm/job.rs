//! A build's packages published: checked, taken from staging, published, recorded, announced
//! to the mirrors and reported to the change, then acknowledged.

use std::sync::Arc;
use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Disposition;
use perestroika_protocol::messages::{BuildOutcome, PublishJob};
use perestroika_protocol::validate;
use perestroika_protocol::QueueName;
use tracing::{error, info, warn};

use super::announce::{announce, feedback, send_feedback};
use super::failure::publish_failure;
use super::gone::{forget, worker_gone};
use super::records::{record, record_path, refused};
use super::staging::{incoming_dir, release_staging, take_job_files};
use crate::error::PublishError;
use crate::fetch::FetchError;
use crate::publish::PublishRequest;
use crate::publisher::Publisher;
use crate::signing::Signer;

/// The first filesystem the publisher writes (the public tree, its own state) that has less
/// free space than `paths.min_free_bytes`.
fn short_of_space(farm: &FarmConfig) -> Option<perestroika_host::disk::LowSpace> {
    let paths = [&farm.paths.public_root, &farm.paths.state];
    perestroika_host::disk::first_short(paths.map(|p| p.as_path()), farm.paths.min_free_bytes)
}

/// Whether a job whose staging directory is gone was published before as this job asks (its
/// packages, or for a failed build its log): a redelivery after the publisher removed
/// `<staging>/<job id>` but before its acknowledgement reached the broker. A failure's log
/// published before never stands for a build of the job that succeeded (a worker cut off
/// from the broker may report a failure while another builds the job).
fn done_before(farm: &FarmConfig, job: &PublishJob) -> bool {
    if farm.paths.staging.join(&job.job_id).exists() {
        return false;
    }
    let Ok(text) = fs_err::read(record_path(farm, &job.job_id)) else {
        return false;
    };
    let failed = matches!(job.outcome, BuildOutcome::Failed { .. });
    serde_json::from_slice::<serde_json::Value>(&text)
        .is_ok_and(|r| r["published"] == true || (failed && r["log_published"] == true))
}

/// Publishes a build's packages (or, for a failed build, its log) and tells whom it concerns.
pub(super) async fn publish(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    job: PublishJob,
) -> Disposition {
    let started = std::time::Instant::now();
    if let Err(e) = validate::publish_job(&farm, queue, &job) {
        return refused(&job.job_id, e);
    }
    if done_before(&farm, &job) {
        info!(job = %job.job_id, "published before (its staged files are gone); acknowledging");
        return Disposition::Ack;
    }
    // No publish starts that could fail midway for want of space: the job waits, uncounted.
    if let Some(low) = short_of_space(&farm) {
        warn!(job = %job.job_id, "{low}; the job waits");
        return Disposition::Later(low.to_string());
    }
    if matches!(job.outcome, BuildOutcome::Failed { .. }) {
        return publish_failure(farm, signer, job).await;
    }
    let (files, log) = match take_job_files(&farm, &job) {
        Ok(taken) => {
            forget(&farm, &job.job_id);
            taken
        }
        Err(PublishError::Fetch(e @ FetchError::Unreachable { .. })) => {
            return worker_gone(&farm, &job, e).await;
        }
        Err(e) => {
            forget(&farm, &job.job_id);
            error!(job = %job.job_id, error = %e, "refusing to publish");
            record(
                &farm,
                &job.job_id,
                serde_json::json!({"job_id": job.job_id, "published": false, "error": e.to_string()}),
            );
            return Disposition::DeadLetter(e.to_string());
        }
    };
    info!(job = %job.job_id, %queue, stage = "publish", files = files.len(), "publishing");
    let request = PublishRequest {
        customer: job.customer.clone(),
        version: job.version.clone(),
        distro: job.distro.clone(),
        target: job.target.clone(),
        files,
        log: log.map(|log| (job.job_id.clone(), log)),
        requested_at: job.requested_at,
    };
    let (f2, s2) = (farm.clone(), signer.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &f2,
            signer: &s2,
        }
        .publish(&request)
    })
    .await
    .expect("publish task");
    let _ = fs_err::remove_dir_all(incoming_dir(&farm, &job.job_id));
    let published = match outcome {
        Ok(p) => p,
        Err(e @ PublishError::Retired { .. }) => {
            info!(job = %job.job_id, reason = %e, "not published");
            record(
                &farm,
                &job.job_id,
                serde_json::json!({"job_id": job.job_id, "published": false, "reason": e.to_string()}),
            );
            release_staging(&farm, &job.job_id);
            return Disposition::Ack;
        }
        // A tool out of time says nothing about the files: the transient path below.
        Err(e)
            if !e.is_timeout()
                && (e.is_refusal() || matches!(e, PublishError::Deb(_) | PublishError::Rpm(_))) =>
        {
            error!(job = %job.job_id, error = %e, "refused");
            record(
                &farm,
                &job.job_id,
                serde_json::json!({"job_id": job.job_id, "published": false, "error": e.to_string()}),
            );
            let failed = BuildOutcome::Failed {
                step: "publish".into(),
                reason: e.to_string(),
            };
            if let Some(feedback) = feedback(&job, failed, None, None) {
                if let Err(e) = send_feedback(&farm, &feedback).await {
                    error!(job = %job.job_id, error = %e, "could not queue the feedback; the job will be redone");
                    return Disposition::Later(e.to_string());
                }
            }
            return Disposition::DeadLetter(e.to_string());
        }
        // A tool out of time: the farm could not do it now, tried again later, uncounted.
        Err(e) if e.is_timeout() => {
            error!(job = %job.job_id, error = %e, "publish timed out; the job waits");
            return Disposition::Later(e.to_string());
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "publish failed; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Disposition::Retry;
        }
    };
    record(
        &farm,
        &job.job_id,
        serde_json::json!({"job_id": job.job_id, "published": true, "tree": published.tree, "generation": published.generation}),
    );
    let sent = announce(
        &farm,
        &job.customer,
        &job.version,
        &published.tree,
        published.generation,
    )
    .await;
    if let Err(e) = sent {
        error!(job = %job.job_id, error = %e, "could not announce; the job will be redone");
        return Disposition::Later(e.to_string());
    }
    info!(job = %job.job_id, %queue, stage = "publish", secs = started.elapsed().as_secs_f64(), tree = %published.tree, generation = published.generation, changed = published.changed, "published");
    let suite = Publisher {
        farm: &farm,
        signer: &signer,
    }
    .suite_for(&job.customer, &job.version, &job.distro, &job.target);
    let log = format!("{}/logs/{}.log", published.tree, job.job_id);
    let sent = match feedback(&job, BuildOutcome::Succeeded, Some(suite), Some(log)) {
        Some(feedback) => send_feedback(&farm, &feedback).await,
        None => Ok(()),
    };
    crate::crash::point("feedback-sent");
    match sent {
        Ok(()) => {
            release_staging(&farm, &job.job_id);
            Disposition::Ack
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "could not queue the feedback; the job will be redone");
            Disposition::Later(e.to_string())
        }
    }
}
