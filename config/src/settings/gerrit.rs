//! The `[gerrit]` section: the Gerrit server the reactor listens to and reports to.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::deadline::Deadline;

/// The Gerrit server the reactor listens to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GerritSettings {
    pub host: String,
    #[serde(default = "default_gerrit_port")]
    pub port: u16,
    pub user: String,
    /// Private key for the SSH session.
    pub key_file: PathBuf,
    /// known_hosts file holding the server's host key; an unknown or changed key is refused.
    pub known_hosts: PathBuf,
    /// Base URL that project names are appended to for cloning; defaults to
    /// `ssh://<user>@<host>:<port>`.
    #[serde(default)]
    pub git_url: Option<String>,
    /// A review comment containing this phrase asks for a rebuild.
    #[serde(default = "default_recheck_phrase")]
    pub recheck_phrase: String,
    /// At most this many rechecks of one change are built within `recheck_window_secs`;
    /// more are refused with a review message on the change. 0 turns rechecks off.
    #[serde(default = "default_recheck_limit")]
    pub recheck_limit: u32,
    /// The window of `recheck_limit`, in seconds (by the rechecks' Gerrit times).
    #[serde(default = "default_recheck_window_secs")]
    pub recheck_window_secs: u64,
    /// How far before the last handled event a catch-up query reaches back, in seconds.
    #[serde(default = "default_catchup_margin_secs")]
    pub catchup_margin_secs: u64,
    /// Seconds between SSH keepalives; a session missing three is considered dead.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// How long one command over the session (`gerrit review`, `gerrit query`, the ref
    /// advertisement of `git-upload-pack`) may take, in seconds; one that takes longer is
    /// abandoned and tried again later.
    #[serde(default = "default_ssh_command_timeout_secs")]
    pub command_timeout_secs: u64,
    /// How long a branch update (`ref-updated`) waits for the `change-merged` of the submit
    /// that made it, in milliseconds, so that one submit is one build that reports to its
    /// change; a branch update without a change (a direct push) is built after this wait.
    #[serde(default = "default_submit_wait_ms")]
    pub submit_wait_ms: u64,
    /// Report each build's outcome on its change with `gerrit review`.
    #[serde(default = "default_true")]
    pub feedback: bool,
    /// Vote on this label (`--label NAME=±1`) instead of `--verified ±1`.
    #[serde(default)]
    pub vote_label: Option<String>,
    /// Base URL of the public tree for the links in feedback; defaults to the first mirror's
    /// `http_url`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl GerritSettings {
    /// The limit of one SSH command (`gerrit.command_timeout_secs`).
    pub fn command_deadline(&self) -> Deadline {
        Deadline::new(
            Duration::from_secs(self.command_timeout_secs),
            "gerrit.command_timeout_secs",
        )
    }

    /// The URL a project is cloned from.
    pub fn clone_url(&self, project: &str) -> String {
        let base = self
            .git_url
            .clone()
            .unwrap_or_else(|| format!("ssh://{}@{}:{}", self.user, self.host, self.port));
        format!("{}/{}", base.trim_end_matches('/'), project)
    }
}
