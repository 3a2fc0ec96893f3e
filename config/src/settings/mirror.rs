//! The `[[mirror]]` targets and how a mirror serves.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

/// A host the mirror daemon copies the public tree to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorTarget {
    pub name: String,
    /// rsync destination: `rsync://host[:port]/module/`, `ssh://[user@]host[:port]/path/`,
    /// `[user@]host:/path/` (SSH) or a local `/path/`.
    pub target: String,
    /// Public http URL of the mirror, used in the lines printed for clients.
    #[serde(default)]
    pub http_url: Option<String>,
    /// For an rsync-over-SSH target: the private key to log in with.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// For an rsync-over-SSH target: the known_hosts file holding the host's key (an unknown
    /// or changed key is refused).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
}

/// Limits of the mirror host's http server, so idle or stalled clients cannot use it up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Connections served at once; further ones wait, unaccepted, until one ends. Each holds
    /// up to two file descriptors (its socket and the file it sends).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// A request's headers must arrive within this (also the idle limit between requests on
    /// a kept-alive connection), in seconds.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// A connection that moves no byte either way for this long is closed (a client that
    /// stops reading a response), in seconds.
    #[serde(default = "default_stall_timeout_secs")]
    pub stall_timeout_secs: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            header_timeout_secs: default_header_timeout_secs(),
            stall_timeout_secs: default_stall_timeout_secs(),
        }
    }
}
