//! What can go wrong with a build container.

use super::buildlog::LogFull;
use super::relay::RelayError;

/// A container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Docker: {what}: {source}; is the Docker engine running (`docker info`)?")]
    Docker {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    LogFull(#[from] LogFull),
    /// The command giving the build root `/proc`, `/dev` and `/sys` failed, with its output.
    #[error("preparing the build root in the container failed: {output}")]
    Setup { output: String },
    #[error("preparing the build root in the container failed: the build container has no running process")]
    NoProcess,
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A command's output went beyond what the worker reads back.
    #[error("{what} is larger than {limit} bytes ({setting})")]
    TooLarge {
        what: String,
        limit: u64,
        setting: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Turns Docker's error about `what` into a [`SandboxError::Docker`].
pub(super) fn docker_err(
    what: impl Into<String>,
) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Docker { what, source }
}
