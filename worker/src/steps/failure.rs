//! How a build ends when it does not succeed: the build failed, the package's fault (a
//! `Failure`: the step and the reason, from the log), or it could not be attempted, the
//! farm's ([`InfraError`]: the job is tried again later).

use std::path::{Path, PathBuf};

use perestroika_config::Family;

use crate::container::buildlog::BuildLog;
use crate::container::rootfs::RootError;
use crate::container::SandboxError;
use crate::image::ImageError;
use crate::source::SourceError;

/// The build could not be attempted: the farm, not the package, is at fault (retry later).
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("job {job_id} is an {wanted} build, but the newest image of {distro} ({image}) builds {found} packages")]
    WrongFamily {
        job_id: String,
        distro: String,
        image: String,
        wanted: Family,
        found: Family,
    },
    /// The sources could not be had now ([`SourceError::is_transient`]: their host unreachable
    /// or too slow, a full disk); they may well be fine.
    #[error("{0}; the job will be tried again")]
    Source(#[source] SourceError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InfraError {
    /// Whether trying again later can succeed: not for a job whose family its distro's image
    /// does not build, which only a new image or a corrected job changes.
    pub fn is_transient(&self) -> bool {
        !matches!(self, InfraError::WrongFamily { .. })
    }
}

/// Turns an I/O error about `path` into an [`InfraError::Io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InfraError + '_ {
    move |source| InfraError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A build failure, with the step that failed.
pub(crate) struct Failure {
    pub step: &'static str,
    pub reason: String,
}

/// The build failed at `step` for `reason`.
pub(crate) fn fail(step: &'static str, reason: impl Into<String>) -> Failure {
    Failure {
        step,
        reason: reason.into(),
    }
}

/// How a step inside the container ends when it does not succeed.
pub(crate) enum Step {
    /// The build failed: the package's fault.
    Failed(Failure),
    /// The build could not go on: the farm's fault.
    Infra(InfraError),
}

impl Step {
    /// The build failed at `step`; the reason comes from the log, else `fallback`.
    pub(crate) fn failed(step: &'static str, log: &BuildLog, fallback: &str) -> Self {
        Step::Failed(fail(step, reason_from(log, fallback)))
    }

    /// An I/O error about `path`: the farm's.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Step::Infra(io(path)(e))
    }
}

impl From<SandboxError> for Step {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::LogFull(full) => Step::Failed(fail("log-limit", full.to_string())),
            too_large @ SandboxError::TooLarge { .. } => {
                Step::Failed(fail("limit", too_large.to_string()))
            }
            other => Step::Infra(other.into()),
        }
    }
}

/// The last lines of the log that say what went wrong.
fn reason_from(log: &BuildLog, fallback: &str) -> String {
    let tail = log.tail(40);
    let wanted: Vec<&str> = tail
        .lines()
        .filter(|l| {
            l.starts_with("E: ")
                || l.contains("but it is not installable")
                || l.contains("but it is not going to be installed")
                || l.contains("Unmet build dependencies")
                || l.contains("syntax error")
                || l.contains("error:")
                || l.starts_with("dpkg-buildpackage: error")
                || l.starts_with("make: ***")
                || l.starts_with("dpkg-source: error")
                || l.starts_with("Error: ")
                || l.starts_with("No matching package to install")
                || l.contains("nothing provides")
                || l.contains("is needed by")
                || l.starts_with("[perestroika] Source0")
        })
        .collect();
    if wanted.is_empty() {
        fallback.to_owned()
    } else {
        wanted.join("\n")
    }
}
