//! Build logs in the pool's `logs/`, and a failed build's log published on its own.

use std::path::{Path, PathBuf};

use perestroika_protocol::messages::Target;

use super::generation::Published;
use crate::error::{io, PublishError};
use crate::publisher::Publisher;

impl Publisher<'_> {
    /// Publishes the log of a failed build into the tree its build was for, as
    /// `logs/<job id>.log`, in a generation of its own so that the mirrors carry it too; the
    /// repositories stay as they were. A tree that has no generation yet (a change's first
    /// patch set failed) gets one with empty signed indexes. A log already published (a job
    /// redelivered, or asked for again) changes nothing.
    pub fn publish_log(
        &self,
        customer: &str,
        version: &str,
        target: &Target,
        job_id: &str,
        log: &Path,
        requested_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Published, PublishError> {
        self.release(customer, version)?;
        if !log.is_file() {
            return Err(PublishError::NoLog {
                path: log.to_owned(),
            });
        }
        let (tree, tree_name, lock) = self.trees().lock_tree(customer, version, target)?;
        self.check_not_retired(&tree_name, requested_at)?;
        let logs = tree.pool().join("logs");
        // Published already when the live generation was written after the log was kept (a
        // publisher that stopped in between makes the generation on the job's redelivery).
        let modified = |p: PathBuf| fs_err::metadata(p).and_then(|m| m.modified()).ok();
        if let Some(current) = tree.current() {
            let kept = modified(logs.join(format!("{job_id}.log")));
            let written = modified(tree.generation_dir(current).record());
            if let (Some(kept), Some(written)) = (kept, written) {
                if kept <= written {
                    return Ok(Published {
                        tree: tree_name,
                        generation: current,
                        changed: false,
                    });
                }
            }
        }
        let (deb, deb_suites) =
            self.open_deb(&tree, &lock, &tree_name, customer, version, target)?;
        keep_log(&logs, job_id, log)?;
        let rpm_repos = self.rpm_repos(
            &tree,
            &tree_name,
            &self.tree_releases(customer, version, target)?,
        );
        let generation = self.write_generation(
            &tree,
            &tree_name,
            &lock,
            deb.as_ref(),
            &deb_suites,
            &rpm_repos,
        )?;
        Ok(Published {
            tree: tree_name,
            generation,
            changed: true,
        })
    }
}

/// Puts a build's log into the pool's `logs/` as `<job id>.log`, whole (copied beside, then
/// renamed) or not at all, and durable (before the generation that links `logs/` is switched
/// live). Like every pool file it is never rewritten: a job redone (a redelivery, a recheck of
/// the same sources) keeps the log first published, which is also the one the mirrors have.
pub(super) fn keep_log(logs: &Path, job_id: &str, log: &Path) -> Result<(), PublishError> {
    use perestroika_host::files::{create_dir_durable, sync_dir, sync_file};
    let dest = logs.join(format!("{job_id}.log"));
    if !log.is_file() || dest.exists() {
        return Ok(());
    }
    create_dir_durable(logs).map_err(io(logs))?;
    let part = logs.join(format!(".{job_id}.log.tmp"));
    fs_err::copy(log, &part).map_err(io(&part))?;
    sync_file(&part).map_err(io(&part))?;
    fs_err::rename(&part, &dest).map_err(io(&dest))?;
    sync_dir(logs).map_err(io(logs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_log_is_whole_and_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, staged) = (dir.path().join("pool/logs"), dir.path().join("build.log"));
        fs_err::write(&staged, "first build\n").unwrap();
        keep_log(&logs, "job1", &staged).unwrap();
        fs_err::write(&staged, "the same job, built again\n").unwrap();
        keep_log(&logs, "job1", &staged).unwrap();
        let read = |name: &str| fs_err::read_to_string(logs.join(name)).unwrap();
        assert_eq!(read("job1.log"), "first build\n");
        keep_log(&logs, "job2", &staged).unwrap();
        assert_eq!(read("job2.log"), "the same job, built again\n");
        // No partial copy is left, and a job without a log adds nothing.
        keep_log(&logs, "job3", &dir.path().join("missing.log")).unwrap();
        let mut names: Vec<String> = fs_err::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["job1.log", "job2.log"]);
    }
}
