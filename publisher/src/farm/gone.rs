//! A worker that is gone before the publisher fetched a job's files: the job waits up to
//! `fetch.worker_gone_secs` (from the first failed fetch, kept in
//! `<state>/publisher/unreachable/<job id>`, so redeliveries do not restart the clock), then
//! the reactor is asked to queue the build again ([`RebuildRequest`] on the release's
//! feedback queue: the publisher may not send build jobs) and this publish job is
//! acknowledged, recorded as not published. The rebuilt job has the same id, so it is
//! published once, by the publish job the new build sends.

use chrono::{DateTime, Utc};
use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{Broker, Disposition};
use perestroika_protocol::messages::{PublishJob, RebuildRequest, SCHEMA_VERSION};
use tracing::{info, warn};

use super::records::record;
use crate::fetch::FetchError;

fn mark_path(farm: &FarmConfig, job_id: &str) -> std::path::PathBuf {
    farm.paths.state.join("publisher/unreachable").join(job_id)
}

/// When the job's files were first found unreachable (now, if this is the first time).
fn first_failure(farm: &FarmConfig, job_id: &str) -> DateTime<Utc> {
    let path = mark_path(farm, job_id);
    let read = fs_err::read_to_string(&path)
        .ok()
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok());
    if let Some(at) = read {
        return at.with_timezone(&Utc);
    }
    let now = Utc::now();
    if let Err(e) = perestroika_host::files::write_durable(&path, now.to_rfc3339().as_bytes()) {
        warn!(job = %job_id, error = %e, "could not record when the worker was first unreachable");
    }
    now
}

/// Removes the job's mark of an unreachable worker (its files arrived after all).
pub(super) fn forget(farm: &FarmConfig, job_id: &str) {
    let _ = fs_err::remove_file(mark_path(farm, job_id));
}

/// What becomes of a job whose worker could not give its files (`error`).
pub(super) async fn worker_gone(
    farm: &FarmConfig,
    job: &PublishJob,
    error: FetchError,
) -> Disposition {
    let since = first_failure(farm, &job.job_id);
    let waited = (Utc::now() - since).num_seconds().max(0).unsigned_abs();
    let window = farm.fetch.worker_gone_secs;
    if waited < window {
        warn!(job = %job.job_id, error = %error, waited, window, "the worker cannot give the job's files now; the job waits");
        return Disposition::Later(format!(
            "{error}; waiting up to fetch.worker_gone_secs ({window} s) before the job is built again"
        ));
    }
    let Some(build) = job.build_job() else {
        return Disposition::DeadLetter(format!(
            "{error}; the job cannot be built again: it does not carry its build job's trigger and request time"
        ));
    };
    let request = RebuildRequest {
        schema_version: SCHEMA_VERSION,
        rebuild: build,
        staged_on: job.staged_on.clone().unwrap_or_default(),
        reason: error.to_string(),
    };
    let id = format!("rebuild.{}.{}", job.job_id, since.timestamp());
    if let Err(e) = Broker::publish_once(&farm.broker, &request.queue(), &request, &id).await {
        warn!(job = %job.job_id, error = %e, "could not ask for the job to be built again; it waits");
        return Disposition::Later(format!("asking for a rebuild: {e}"));
    }
    record(
        farm,
        &job.job_id,
        serde_json::json!({"job_id": job.job_id, "published": false, "rebuild_requested": true, "reason": error.to_string()}),
    );
    forget(farm, &job.job_id);
    info!(job = %job.job_id, waited, reason = %error, "the worker is gone; asked the reactor to build the job again");
    Disposition::Ack
}
