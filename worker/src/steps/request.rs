//! What to build: the input, the distro, and the repositories build dependencies may come
//! from.

use std::path::PathBuf;

use perestroika_config::Family;

use crate::source::SourceInput;

/// What to build and where the results go.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub job_id: String,
    pub input: SourceInput,
    pub distro: String,
    /// The family the build must make; `None` takes the family of the distro's image.
    pub family: Option<Family>,
    /// The repositories whose packages are available as build dependencies, besides the base:
    /// the release's suites, a topic's review repository. Each that has no signed repository
    /// of the distro yet is skipped. All lie below one customer's directory, or are one
    /// snapshot.
    pub dep_repos: Vec<DepRepo>,
    /// The base image digest the build must use (a release's pin); `None`: the distro's
    /// current base.
    pub base_digest: Option<String>,
    /// Where the artifacts, log and record are written.
    pub out_dir: PathBuf,
    /// Copy the build log to stdout as it comes.
    pub echo: bool,
}

/// One repository builds may take dependencies from: a public tree and one of its suites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepRepo {
    /// `<public root>/<customer>/<version>`, a review tree, or a snapshot of a release.
    pub tree: PathBuf,
    /// The deb suite or rpm repository name (`bookworm`, `bookworm-proposed`).
    pub suite: String,
}

impl DepRepo {
    /// The suite `suite` of the public tree `tree`.
    pub fn new(tree: impl Into<PathBuf>, suite: &str) -> Self {
        Self {
            tree: tree.into(),
            suite: suite.to_owned(),
        }
    }
}
