//! Staged files fetched from a worker on another host: the publisher pulls (it opens no
//! port) from the worker's read-only rsync module, only the files the job names, regular
//! files only, within `fetch.max_bytes` and rsync's connect and I/O timeouts, into a
//! directory of its own. What arrives is still hostile: [`crate::staged::take_staged`] checks
//! it as it checks files staged on this host.
//!
//! The worker is named by the job (`staged_on`) and mapped through the publisher's own
//! `[fetch.workers]`: a message never chooses the address fetched from.

use std::path::{Path, PathBuf};
use std::process::Command;

use perestroika_config::FarmConfig;
use perestroika_protocol::messages::Artifact;

/// Why a job's files could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the job's files are staged on worker {name:?}, which [fetch.workers] does not know; add it there if it is one of the farm's workers")]
    UnknownWorker { name: String },
    #[error("the job names {total} bytes of files, more than fetch.max_bytes ({max}); raise it if builds are that large")]
    TooLarge { total: u64, max: u64 },
    /// The worker cannot be reached, refuses us, or has none of the job's files: it may come
    /// back, or the job is built again elsewhere.
    #[error("cannot fetch the job's files from worker {worker} ({url}): {reason}")]
    Unreachable {
        worker: String,
        url: String,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The rsync URL of worker `name`'s staging module, from `[fetch.workers]`.
pub fn worker_url<'a>(farm: &'a FarmConfig, name: &str) -> Result<&'a str, FetchError> {
    farm.fetch
        .workers
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| FetchError::UnknownWorker {
            name: name.to_owned(),
        })
}

/// rsync's exit code for a partial transfer: some named files were not there.
const PARTIAL: i32 = 23;
/// rsync's exit code for files that vanished while being sent.
const VANISHED: i32 = 24;

/// Fetches the `wanted` files of job `job_id` from worker `worker` into `into` (emptied
/// first). Files the worker does not have, or that are not regular files, are left out with
/// no error here: the check of the copies names them. A worker that cannot be reached, refuses
/// this host, or has none of the files is [`FetchError::Unreachable`].
pub fn fetch(
    farm: &FarmConfig,
    worker: &str,
    job_id: &str,
    wanted: &[Artifact],
    into: &Path,
) -> Result<(), FetchError> {
    let url = worker_url(farm, worker)?;
    let max = farm.fetch.max_bytes;
    let total = wanted
        .iter()
        .fold(0u64, |sum, a| sum.saturating_add(a.size));
    if total > max {
        return Err(FetchError::TooLarge { total, max });
    }
    if into.exists() {
        fs_err::remove_dir_all(into).map_err(io(into))?;
    }
    fs_err::create_dir_all(into).map_err(io(into))?;
    // The names are checked file names (no `/`, no newline): one a line.
    let list = into.with_extension("list");
    let names: String = wanted.iter().map(|a| format!("{}\n", a.name)).collect();
    fs_err::write(&list, names).map_err(io(&list))?;
    let timeout = farm.fetch.timeout_secs.to_string();
    let mut cmd = Command::new("prlimit");
    // No file written may grow past the bound, whatever the worker's file list claimed.
    cmd.arg(format!("--fsize={max}"))
        .arg("--")
        .arg("rsync")
        .arg(format!("--files-from={}", list.display()))
        // Links arrive as links (munged, so harmless even if followed), never their targets;
        // the check of the copies refuses them. No devices, no specials, no permissions kept.
        .args(["--links", "--munge-links", "--no-devices", "--no-specials"])
        .args(["--no-motd", "--no-implied-dirs"])
        .arg(format!("--max-size={max}"))
        .arg(format!("--timeout={timeout}"))
        .arg(format!("--contimeout={timeout}"))
        .arg(format!("{}/{job_id}/", url.trim_end_matches('/')))
        .arg(format!("{}/", into.display()));
    let out = perestroika_host::command::output(&mut cmd, farm.publish.command_deadline());
    let _ = fs_err::remove_file(&list);
    let unreachable = |reason: String| FetchError::Unreachable {
        worker: worker.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let out = out.map_err(|e| unreachable(e.to_string()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = stderr.trim().lines().take(4).collect::<Vec<_>>().join("; ");
    match out.status.code() {
        Some(0) => Ok(()),
        Some(PARTIAL | VANISHED) => {
            let arrived = fs_err::read_dir(into)
                .map_err(io(into))?
                .filter_map(Result::ok)
                .count();
            if arrived == 0 {
                Err(unreachable(format!(
                    "the worker has none of the job's files ({said})"
                )))
            } else {
                tracing::warn!(job = %job_id, %worker, "some of the job's files did not arrive: {said}");
                Ok(())
            }
        }
        code => Err(unreachable(format!(
            "rsync exited with {}: {said}",
            code.map_or_else(|| "a signal".to_owned(), |c| c.to_string())
        ))),
    }
}
