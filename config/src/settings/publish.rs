//! The `[publish]` section: how the publisher writes the public tree.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::deadline::Deadline;

/// How the publisher lays out and keeps repositories.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Suites beside the release's own, e.g. `<distro>-proposed`.
    #[serde(default = "default_suites")]
    pub suites: Vec<String>,
    /// Previous states whose index files stay reachable (by-hash) after a switch.
    #[serde(default = "default_keep_generations")]
    pub keep_generations: u32,
    /// Snapshots (generations) of each tree kept after a publish, the live one included;
    /// older ones are removed unless marked shipped (`perestroika-publisher snapshot keep`).
    /// 0 keeps every snapshot. Otherwise more than `keep_generations`.
    #[serde(default)]
    pub keep_snapshots: u32,
    /// The suite merges of a release in maintenance publish into (one of `suites`).
    #[serde(default = "default_proposed")]
    pub proposed: String,
    /// How long a release's signed deb indexes are valid (`Valid-Until`), in seconds; the
    /// publisher signs them again when less than half of it is left. 0: no `Valid-Until`.
    #[serde(default = "default_valid_for_secs")]
    pub valid_for_secs: u64,
    /// How long one tool the publisher runs (reprepro, createrepo_c, rpmsign, dpkg-deb, a
    /// gpgme signature) may take, in seconds; one that takes longer is killed and the job is
    /// returned to its queue for another try.
    #[serde(default = "default_publish_command_timeout_secs")]
    pub command_timeout_secs: u64,
}

impl PublishSettings {
    /// The limit of one publisher tool (`publish.command_timeout_secs`).
    pub fn command_deadline(&self) -> Deadline {
        Deadline::new(
            Duration::from_secs(self.command_timeout_secs),
            "publish.command_timeout_secs",
        )
    }
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            suites: default_suites(),
            keep_generations: default_keep_generations(),
            keep_snapshots: 0,
            proposed: default_proposed(),
            valid_for_secs: default_valid_for_secs(),
            command_timeout_secs: default_publish_command_timeout_secs(),
        }
    }
}

fn default_publish_command_timeout_secs() -> u64 {
    600
}

fn default_valid_for_secs() -> u64 {
    7 * 24 * 3600
}

fn default_proposed() -> String {
    "proposed".into()
}
