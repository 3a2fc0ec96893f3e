//! What a worker removes when it starts, so that its disk does not fill up over months: the
//! `.incoming-<job id>-<pid>` directories of workers killed mid-build, git mirrors unused for
//! `build.git_cache_days`, and the exported build roots of images that are gone.
//!
//! The worker's intake asks [`perestroika_host::disk::low_space`] before taking a job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use perestroika_config::settings::BuildSettings;
use perestroika_config::FarmConfig;

use crate::image;
use crate::process;
use crate::source::git::GitCache;

/// Removes the `.incoming-<job id>-<pid>` directories in `staging` whose worker process is
/// gone (not this process, and no process has that id): builds cut short by a kill. The
/// staging directory is this host's own. Returns the directories removed.
pub fn remove_dead_incoming(staging: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs_err::read_dir(staging) else {
        return removed;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".incoming-")
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process::alive(pid) {
            continue;
        }
        let path = entry.path();
        match fs_err::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => tracing::warn!(error = %e, "could not remove a killed build's leftovers"),
        }
    }
    removed
}

/// Removes the git mirrors under `<state>/worker/git` not used for `build.git_cache_days`
/// days (0: none).
pub fn prune_git_cache(git: &Path, settings: &BuildSettings) -> Vec<PathBuf> {
    let days = settings.git_cache_days;
    if days == 0 {
        return Vec::new();
    }
    GitCache::new(git, settings.git_deadline())
        .prune_unused(Duration::from_secs(u64::from(days) * 24 * 3600))
}

/// Removes the exported roots under `roots` of images Docker no longer has. Nothing is
/// removed when the images cannot be listed.
pub async fn prune_roots(docker: &Docker, roots: &Path) -> usize {
    match image::prune_roots(docker, &[roots.to_owned()]).await {
        Ok(removed) => removed,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the base images; build roots are kept");
            0
        }
    }
}

/// Removes the staged job directories in `staging` (not the `.incoming-…` of builds under
/// way) last changed more than `keep` ago: a worker serving its staging to a publisher on
/// another host, which cannot delete over the read-only module, keeps each job's files this
/// long. Returns the directories removed.
pub fn remove_old_staged(staging: &Path, keep: Duration) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs_err::read_dir(staging) else {
        return removed;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Never follows a link: its own metadata, and a link is removed as a link.
        let Ok(meta) = fs_err::symlink_metadata(entry.path()) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > keep);
        if !old {
            continue;
        }
        let path = entry.path();
        let gone = if meta.is_dir() {
            fs_err::remove_dir_all(&path)
        } else {
            fs_err::remove_file(&path)
        };
        match gone {
            Ok(()) => removed.push(path),
            Err(e) => tracing::warn!(error = %e, "could not remove old staged files"),
        }
    }
    removed
}

/// While the worker serves its staging area, removes staged jobs older than
/// `worker.staging_keep_secs`, looking every tenth of that (at most every ten minutes).
pub async fn prune_staged(farm: std::sync::Arc<FarmConfig>) {
    let keep = Duration::from_secs(farm.worker.staging_keep_secs);
    let every = (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        let removed = remove_old_staged(&farm.paths.staging, keep);
        if !removed.is_empty() {
            tracing::info!(
                removed = removed.len(),
                keep_secs = keep.as_secs(),
                "removed staged jobs older than worker.staging_keep_secs"
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Everything a worker removes when it starts, with `state` its `<state>/worker`; logs what
/// went.
pub async fn at_start(farm: &FarmConfig, docker: &Docker, state: &Path) {
    let incoming = remove_dead_incoming(&farm.paths.staging);
    let mirrors = prune_git_cache(&state.join("git"), &farm.build);
    let roots = prune_roots(docker, &state.join("roots")).await;
    if !incoming.is_empty() || !mirrors.is_empty() || roots > 0 {
        tracing::info!(
            incoming = incoming.len(),
            git_mirrors = mirrors.len(),
            build_roots = roots,
            git_cache_days = farm.build.git_cache_days,
            "removed leftovers of killed builds, unused git mirrors and roots of removed images"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_incoming_directories_of_gone_processes_are_removed() {
        let staging = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) is no process.
        let dead = staging.path().join(".incoming-job-7-1-4999999");
        let mine = staging
            .path()
            .join(format!(".incoming-job-8-{}", std::process::id()));
        let published = staging.path().join("job-9");
        for dir in [&dead, &mine, &published] {
            fs_err::create_dir_all(dir.join("sub")).unwrap();
            fs_err::write(dir.join("sub/build.log"), "log").unwrap();
        }
        assert_eq!(
            remove_dead_incoming(staging.path()),
            std::slice::from_ref(&dead)
        );
        assert!(!dead.exists());
        assert!(mine.join("sub/build.log").is_file());
        assert!(published.join("sub/build.log").is_file());
    }

    #[test]
    fn only_staged_jobs_older_than_the_keep_time_are_removed() {
        let staging = tempfile::tempdir().unwrap();
        let job = staging.path().join("job-1");
        let building = staging.path().join(".incoming-job-2-1");
        for dir in [&job, &building] {
            fs_err::create_dir_all(dir).unwrap();
            fs_err::write(dir.join("a.deb"), "deb").unwrap();
        }
        let secret = staging.path().join("..").join("outside");
        std::os::unix::fs::symlink(&secret, staging.path().join("link")).unwrap();
        assert!(remove_old_staged(staging.path(), Duration::from_secs(3600)).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        let removed = remove_old_staged(staging.path(), Duration::from_millis(1));
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!job.exists());
        assert!(fs_err::symlink_metadata(staging.path().join("link")).is_err());
        assert!(building.join("a.deb").is_file());
    }
}
