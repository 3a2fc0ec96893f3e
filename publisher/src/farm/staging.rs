//! The hand-over of a job's staged files: copied into the publisher's own directory and checked,
//! and the staging directory removed once the job is done.

use perestroika_config::FarmConfig;
use perestroika_protocol::messages::PublishJob;
use tracing::warn;

use crate::error::PublishError;
use crate::fetch::fetch;
use crate::staged::take_staged;

/// The publisher's private copy of a job's staged files, taken by [`take_staged`].
pub(super) fn incoming_dir(farm: &FarmConfig, job_id: &str) -> std::path::PathBuf {
    farm.paths.state.join("publisher/incoming").join(job_id)
}

/// Where a job's files fetched from a worker land before they are checked into
/// [`incoming_dir`].
fn fetched_dir(farm: &FarmConfig, job_id: &str) -> std::path::PathBuf {
    farm.paths.state.join("publisher/fetched").join(job_id)
}

/// The job's files and its build log (when the job names one, within `max_log_bytes`), copied
/// from staging and checked; returns the files and the log's copy. Nothing is left in the
/// incoming directory when this fails; the caller removes it after publishing.
pub(super) fn take_job_files(
    farm: &FarmConfig,
    job: &PublishJob,
) -> Result<(Vec<std::path::PathBuf>, Option<std::path::PathBuf>), PublishError> {
    let mut wanted = job.artifacts.clone();
    let log = match &job.log {
        Some(log) if log.size <= farm.build.max_log_bytes => {
            wanted.push(log.clone());
            true
        }
        Some(log) => {
            warn!(job = %job.job_id, size = log.size, cap = farm.build.max_log_bytes, "the build log is larger than build.max_log_bytes; not published");
            false
        }
        None => false,
    };
    let incoming = incoming_dir(farm, &job.job_id);
    // Files staged on another host are fetched first, then checked like local ones.
    let fetched = job
        .staged_on
        .as_ref()
        .map(|worker| {
            let dir = fetched_dir(farm, &job.job_id);
            fetch(farm, worker, &job.job_id, &wanted, &dir).map(|()| dir)
        })
        .transpose()
        .inspect_err(|_| {
            let _ = fs_err::remove_dir_all(fetched_dir(farm, &job.job_id));
        })?;
    let staged = fetched
        .clone()
        .unwrap_or_else(|| farm.paths.staging.join(&job.job_id));
    let taken = take_staged(&staged, &wanted, &incoming);
    if let Some(dir) = fetched {
        let _ = fs_err::remove_dir_all(dir);
    }
    let mut files = taken.inspect_err(|_| {
        let _ = fs_err::remove_dir_all(&incoming);
    })?;
    let log = log.then(|| files.pop()).flatten();
    Ok((files, log))
}

/// Removes `<staging>/<job id>` once what the job asked for is durable (published, recorded,
/// announced and reported), just before the acknowledgement. The job id is a checked name;
/// a link there is removed, never followed.
pub(super) fn release_staging(farm: &FarmConfig, job_id: &str) {
    let dir = farm.paths.staging.join(job_id);
    let removed = match fs_err::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => fs_err::remove_dir_all(&dir),
        Ok(_) => fs_err::remove_file(&dir),
        Err(_) => return,
    };
    if let Err(e) = removed {
        warn!(job = %job_id, error = %e, "could not remove the staged files of a published job");
    }
}
