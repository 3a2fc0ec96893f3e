//! Why a publish, a promotion or a snapshot mark did not happen.

use std::path::{Path, PathBuf};

use perestroika_formats::release_index::ReleaseError;
use perestroika_formats::rpm_header::QueryError;
use perestroika_protocol::messages::LOG_NAME;

use crate::deb::DebError;
use crate::rpm::RpmError;
use crate::signing::SignError;
use crate::tree::TreeError;

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{name}: checksum differs from the job's manifest (expected sha256 {expected}, found {found}); nothing was published")]
    Checksum {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{name}: missing from the staging directory {dir}")]
    Missing { name: String, dir: PathBuf },
    /// A staged file or directory is a link, or not of the kind it should be.
    #[error("{}: {what} is a link or not what it should be; staged files are taken only as regular files in a real directory", path.display())]
    StagedLink { path: PathBuf, what: &'static str },
    #[error("{}: not a regular file; nothing was published", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: {size} bytes, the job's manifest says {expected}; nothing was published", path.display())]
    Size {
        path: PathBuf,
        size: u64,
        expected: u64,
    },
    #[error("{customer} {version} is not in the configuration")]
    UnknownRelease { customer: String, version: String },
    /// `of` names the release (`acme 9.0`) or the tree (`acme/9.0`).
    #[error("{distro} is not a distro of {of}")]
    UnknownDistro { distro: String, of: String },
    #[error("{}: architecture {arch} is not one of the release's ({})", file.display(), arches.join(", "))]
    ForeignArch {
        file: PathBuf,
        arch: String,
        arches: Vec<String>,
    },
    #[error("the failed build left no log at {}", path.display())]
    NoLog { path: PathBuf },
    #[error("the job names no {} within build.max_log_bytes", LOG_NAME)]
    LogNotInJob,
    #[error("the staged {log}: {source}", log = LOG_NAME)]
    StagedLog {
        #[source]
        source: Box<PublishError>,
    },
    #[error("{suite} is not a suite of this farm (publish.suites: {})", suites.join(", "))]
    UnknownSuite { suite: String, suites: Vec<String> },
    #[error("--from and --to name the same suite")]
    SameSuite,
    #[error("{tree} has nothing published yet")]
    NothingPublished { tree: String },
    /// A promotion's package is not in its `from` suite; `advice` says where it is and what
    /// to do instead.
    #[error("{what} is not published in the {from} suite of {tree}{advice}")]
    NotInSuite {
        what: String,
        from: String,
        tree: String,
        advice: String,
    },
    #[error(transparent)]
    RpmQuery(#[from] QueryError),
    #[error("{tree} has no snapshot {snapshot} (see `snapshot list`)")]
    NoSnapshot { tree: String, snapshot: u64 },
    /// A `Release` file (reprepro's, or a published one) that does not parse.
    #[error("{}: {source}", path.display())]
    Release {
        path: PathBuf,
        #[source]
        source: ReleaseError,
    },
    /// A snapshot's record (`snapshot.json`) that does not parse.
    #[error("{}: {source}", path.display())]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the review repository {tree} was retired (its change was merged, abandoned or deleted); a late build of it is not published")]
    Retired { tree: String },
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Rpm(#[from] RpmError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PublishError {
    /// Whether a tool or a signature ran out of `publish.command_timeout_secs`: the farm could
    /// not do it now, and the job is tried again rather than refused.
    pub fn is_timeout(&self) -> bool {
        match self {
            PublishError::Deb(e) => e.is_timeout(),
            PublishError::Rpm(e) => e.is_timeout(),
            PublishError::Sign(e) => e.is_timeout(),
            _ => false,
        }
    }

    /// Whether the request itself is at fault (a release, distro, suite, snapshot or file it
    /// names): asking again changes nothing, so it is refused rather than tried again.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PublishError::StagedLink { .. }
                | PublishError::NotAFile { .. }
                | PublishError::Size { .. }
                | PublishError::UnknownRelease { .. }
                | PublishError::UnknownDistro { .. }
                | PublishError::ForeignArch { .. }
                | PublishError::NoLog { .. }
                | PublishError::LogNotInJob
                | PublishError::StagedLog { .. }
                | PublishError::UnknownSuite { .. }
                | PublishError::SameSuite
                | PublishError::NothingPublished { .. }
                | PublishError::NotInSuite { .. }
                | PublishError::RpmQuery(_)
                | PublishError::NoSnapshot { .. }
                | PublishError::Fetch(_)
        )
    }
}

/// Wraps an I/O error with the path it is about.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_owned(),
        source,
    }
}
