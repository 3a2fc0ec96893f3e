//! The `[build]` section and the rpm build root: how workers build.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::deadline::Deadline;

/// An rpm distro's build root, installed the way mock does it: `dnf --installroot` from the
/// distro's own repositories at its release version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RpmRoot {
    /// The distro's `$releasever`, e.g. "9".
    pub releasever: String,
    /// Base URLs of the repositories the root comes from (and build dependencies later),
    /// e.g. the BaseOS and AppStream trees of a local mirror.
    pub repos: Vec<String>,
    /// Keys the repositories' packages are signed with (`file://` or `https://` URLs); without
    /// any, package signatures are not checked while bootstrapping.
    #[serde(default)]
    pub gpgkeys: Vec<String>,
    /// Packages of the build root (mock's `buildsys-build` set by default).
    #[serde(default = "default_rpm_root_packages")]
    pub packages: Vec<String>,
}

fn default_rpm_root_packages() -> Vec<String> {
    [
        "bash",
        "bzip2",
        "coreutils",
        "cpio",
        "diffutils",
        "dnf",
        "dnf-plugins-core",
        "findutils",
        "gawk",
        "gcc",
        "gcc-c++",
        "grep",
        "gzip",
        "info",
        "make",
        "patch",
        "redhat-rpm-config",
        "rpm-build",
        "sed",
        "shadow-utils",
        "tar",
        "unzip",
        "util-linux",
        "which",
        "xz",
    ]
    .map(String::from)
    .to_vec()
}

/// Limits and resources of builds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSettings {
    /// A build running longer is stopped and reported, in seconds.
    #[serde(default = "default_build_timeout_secs")]
    pub timeout_secs: u64,
    /// A build log growing beyond this is cut and the build stopped.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: u64,
    /// Builds one worker runs at once.
    #[serde(default = "default_slots")]
    pub slots: u16,
    /// URL of the upstream package cache builds fetch through (apt-cacher-ng), if any.
    #[serde(default)]
    pub package_cache: Option<String>,
    /// Size of the tmpfs that holds a build's tree (it counts against memory), e.g. "8g".
    #[serde(default = "default_tmpfs_size")]
    pub tmpfs_size: String,
    /// Size of a build's `/tmp` (a tmpfs, counted against memory), e.g. "2g".
    #[serde(default = "default_tmp_size")]
    pub tmp_size: String,
    /// Memory a build container may use, its tmpfs contents included, e.g. "12g".
    #[serde(default = "default_memory")]
    pub memory: String,
    /// The sources of one build (each repository's `git archive`) may not exceed this.
    #[serde(default = "default_max_source_bytes")]
    pub max_source_bytes: u64,
    /// What one build leaves as its results may not exceed this in all.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: u64,
    /// Nor this many files.
    #[serde(default = "default_max_results")]
    pub max_results: u32,
    /// How long one git command fetching or reading a build's sources (clone, fetch,
    /// archive) may take, in seconds; one that takes longer is killed and the job is tried
    /// again later (it does not fail the build).
    #[serde(default = "default_git_timeout_secs")]
    pub git_timeout_secs: u64,
    /// A repository of the worker's git cache not used for this many days is removed when the
    /// worker starts (it is cloned again when a build needs it). 0 keeps them all.
    #[serde(default = "default_git_cache_days")]
    pub git_cache_days: u32,
    /// Build on a kernel overlay of the base image mounted by the worker (true), or on the
    /// image's own root file system (false). Turn it off where the worker's mounts do not reach
    /// the Docker engine: a worker in a container of its own using the host's engine.
    #[serde(default = "default_overlay_roots")]
    pub overlay_roots: bool,
}

fn default_overlay_roots() -> bool {
    true
}

fn default_git_cache_days() -> u32 {
    30
}

impl BuildSettings {
    /// The limit of one git command (`build.git_timeout_secs`).
    pub fn git_deadline(&self) -> Deadline {
        Deadline::new(
            Duration::from_secs(self.git_timeout_secs),
            "build.git_timeout_secs",
        )
    }
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            timeout_secs: default_build_timeout_secs(),
            max_log_bytes: default_max_log_bytes(),
            slots: default_slots(),
            package_cache: None,
            tmpfs_size: default_tmpfs_size(),
            tmp_size: default_tmp_size(),
            memory: default_memory(),
            max_source_bytes: default_max_source_bytes(),
            max_result_bytes: default_max_result_bytes(),
            max_results: default_max_results(),
            git_timeout_secs: default_git_timeout_secs(),
            git_cache_days: default_git_cache_days(),
            overlay_roots: default_overlay_roots(),
        }
    }
}
