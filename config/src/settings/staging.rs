//! Staged files across hosts: the `[worker]` section (how a worker serves its staging area)
//! and the publisher's side of it in `[publish]` (which workers it fetches from, and bounds).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A worker's identity and how it serves its staging area to the publisher.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// The worker's name, as the publisher's `[publish.workers]` knows it; publish jobs name
    /// it (`staged_on`) when `serve_staging` is set.
    #[serde(default)]
    pub name: Option<String>,
    /// Address the worker's read-only rsync daemon listens on (e.g. `10.0.0.5:8730`). Unset:
    /// the publisher reads `paths.staging` on the same host, as a single-host farm does.
    #[serde(default)]
    pub serve_staging: Option<SocketAddr>,
    /// The publisher's address(es) (IP addresses or networks, as rsync's `hosts allow`
    /// takes them): nobody else may connect to the staging daemon.
    #[serde(default)]
    pub publisher_hosts: Vec<String>,
    /// Connections the staging daemon takes at once.
    #[serde(default = "default_staging_connections")]
    pub max_connections: u32,
    /// How long a job's staged files are kept, in seconds, before the worker removes them
    /// (published or not: an unfetched job is rebuilt, see `publish.worker_gone_secs`).
    #[serde(default = "default_staging_keep_secs")]
    pub staging_keep_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            name: None,
            serve_staging: None,
            publisher_hosts: Vec::new(),
            max_connections: default_staging_connections(),
            staging_keep_secs: default_staging_keep_secs(),
        }
    }
}

impl WorkerSettings {
    /// Whether this worker serves its staging area over rsync (publish jobs then name it).
    pub fn serves_staging(&self) -> bool {
        self.serve_staging.is_some() && self.name.is_some()
    }
}

/// The rsync module a worker's staging area is served as.
pub const STAGING_MODULE: &str = "staging";

fn default_staging_connections() -> u32 {
    4
}

fn default_staging_keep_secs() -> u64 {
    24 * 3600
}

/// The publisher's fetches from workers' staging daemons.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSettings {
    /// Known workers by name → the rsync URL of their staging module
    /// (`rsync://host:port/staging`). A publish job naming another worker is refused.
    #[serde(default)]
    pub workers: BTreeMap<String, String>,
    /// Most bytes one job may fetch, all files together (and so any one file).
    #[serde(default = "default_fetch_max_bytes")]
    pub max_bytes: u64,
    /// Connect and I/O timeout of a fetch, in seconds (rsync's `--contimeout`, `--timeout`);
    /// the whole fetch gets `publish.command_timeout_secs`.
    #[serde(default = "default_fetch_timeout_secs")]
    pub timeout_secs: u64,
    /// How long a worker may stay unreachable (or without the job's files) before the job is
    /// built again elsewhere, in seconds.
    #[serde(default = "default_worker_gone_secs")]
    pub worker_gone_secs: u64,
}

impl FetchSettings {
    /// The connect and I/O timeout of one fetch.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            workers: BTreeMap::new(),
            max_bytes: default_fetch_max_bytes(),
            timeout_secs: default_fetch_timeout_secs(),
            worker_gone_secs: default_worker_gone_secs(),
        }
    }
}

fn default_fetch_max_bytes() -> u64 {
    8 << 30
}

fn default_fetch_timeout_secs() -> u64 {
    60
}

fn default_worker_gone_secs() -> u64 {
    600
}
