//! Processes on this host: whether one still runs, which tells the leftovers of a killed
//! process (a cut-short clone, export or build) from work in progress.

use std::path::Path;

/// Whether a process with this id exists on this host.
pub fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
