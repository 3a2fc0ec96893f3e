//! Where a build's sources come from, what it publishes into, and what triggered it.

use serde::{Deserialize, Serialize};

/// One git repository at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    /// Gerrit project name.
    pub project: String,
    /// URL to fetch from.
    pub url: String,
    /// The branch the commit was taken from (without `refs/heads/`).
    pub branch: String,
    /// The exact commit built.
    pub commit: String,
    /// A ref to fetch that contains the commit when no branch does yet (a Gerrit change's
    /// `refs/changes/…`).
    #[serde(default)]
    pub fetch_ref: Option<String>,
}

/// Where a build's code and packaging come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "layout", rename_all = "lowercase")]
pub enum Sources {
    /// Code and packaging in two repositories.
    Split {
        code: GitSource,
        packaging: GitSource,
    },
    /// Code and packaging in one repository.
    Combined { repo: GitSource },
}

impl Sources {
    /// The repositories, code first.
    pub fn repos(&self) -> Vec<&GitSource> {
        match self {
            Sources::Split { code, packaging } => vec![code, packaging],
            Sources::Combined { repo } => vec![repo],
        }
    }
}

/// Which repository a build publishes into.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// The release itself: its own suite in development, `proposed` in maintenance.
    Release,
    /// A per-change review repository.
    Review { change: u64 },
    /// A review repository shared by the changes of one Gerrit topic.
    Topic { topic: String },
}

impl std::fmt::Display for Target {
    /// The repository in words: "the release", "review repository of change 1234",
    /// "topic repository foo".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Release => f.write_str("the release"),
            Target::Review { change } => write!(f, "review repository of change {change}"),
            Target::Topic { topic } => write!(f, "topic repository {topic}"),
        }
    }
}

impl Target {
    /// Where the repository lives, relative to the public root: `<customer>/<version>` for a
    /// release, `<customer>/review/<change or topic>` for a review repository.
    pub fn tree(&self, customer: &str, version: &str) -> String {
        match self {
            Target::Release => format!("{customer}/{version}"),
            Target::Review { change } => format!("{customer}/review/{change}"),
            Target::Topic { topic } => format!("{customer}/review/{topic}"),
        }
    }
}

/// The customer of a review or topic repository's tree path (relative to the public root, as
/// [`Target::tree`] makes it); `None` for a release's tree.
pub fn review_tree_customer(tree: &str) -> Option<&str> {
    let mut parts = tree.split('/');
    let customer = parts.next()?;
    (parts.next() == Some("review")).then_some(customer)
}

/// What made the farm build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    ChangeMerged,
    PatchsetCreated,
    RefUpdated,
    Recheck,
    Manual,
    CatchUp,
}

/// The event behind a build job, for the record (it does not enter the job id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    #[serde(default)]
    pub change: Option<u64>,
    #[serde(default)]
    pub patchset: Option<u32>,
    /// Gerrit's event time (seconds since the epoch), when the trigger was an event.
    #[serde(default)]
    pub event_time: Option<i64>,
}
