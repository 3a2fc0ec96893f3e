//! The `[public]` section: where parts without the public tree on their host read it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Reading published state over http, from a mirror.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicSettings {
    /// The public root as a mirror serves it (`http://mirror:8080/perestroika/`). When set,
    /// the worker's build dependencies and the CLI's readings of published state come from
    /// here, not from `[paths] public_root`.
    #[serde(default)]
    pub url: Option<String>,
    /// Armored public key files of the release trees (`perestroika-publisher export-key`):
    /// every `InRelease` and `repomd.xml.asc` read must be signed by one of their keys.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Armored public key files of review and topic trees: the review key
    /// (`[signing] review_fingerprint`, or a customer's own). Empty: the release's keys
    /// (review trees are then signed with them).
    #[serde(default)]
    pub review_keys: Vec<PathBuf>,
    /// Seconds a connection may take to open, to answer, or stall mid-transfer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    60
}

impl Default for PublicSettings {
    fn default() -> Self {
        Self {
            url: None,
            keys: Vec::new(),
            review_keys: Vec::new(),
            timeout_secs: default_timeout_secs(),
        }
    }
}
