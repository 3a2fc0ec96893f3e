//! What can keep a build from having its sources: git, or the disk they are laid out on.

use std::path::{Path, PathBuf};

use super::git::GitError;

/// The sources could not be fetched or laid out. Whether the farm or the sources are at fault
/// is [`SourceError::is_transient`]'s to say; what is wrong with the sources themselves is
/// each family's own error.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    /// Whether the farm could not get the sources now (their host unreachable, a full disk)
    /// rather than the sources being broken: the job is tried again later, and nothing is
    /// said about the change.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Git(e) => e.is_transient(),
            SourceError::Io { source, .. } => is_resource_shortage(source),
        }
    }
}

/// Whether an I/O error is the host running short (space, quota, memory, files) rather than
/// something about the file.
pub fn is_resource_shortage(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    [
        Errno::NOSPC,
        Errno::DQUOT,
        Errno::NOMEM,
        Errno::MFILE,
        Errno::NFILE,
        Errno::IO,
    ]
    .iter()
    .any(|errno| errno.raw_os_error() == code)
}

/// Turns an I/O error about `path` into a [`SourceError::Io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}
