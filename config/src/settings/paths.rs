//! The `[paths]` section: where each part keeps its files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the farm keeps its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// The public tree: what the publisher switches live and mirrors copy.
    pub public_root: PathBuf,
    /// Where workers leave each job's artifacts (`<staging>/<job id>/`) for the publisher.
    pub staging: PathBuf,
    /// Private state of each daemon (keyring, repositories being built, reactor position).
    pub state: PathBuf,
    /// Free space, in bytes, below which a part takes no more work on a filesystem it writes
    /// (see `perestroika_host::disk::low_space`): the worker takes no job while staging's or its state's
    /// filesystem has less, the publisher lets publish jobs wait while the public tree's or its
    /// state's has less. 0 turns the check off.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
}

fn default_min_free_bytes() -> u64 {
    2 << 30
}
