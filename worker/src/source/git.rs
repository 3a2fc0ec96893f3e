//! Fetching sources from git: a bare mirror per repository URL under the worker's state,
//! updated on demand, read with `git archive`. Every git command runs with the deadline of
//! `build.git_timeout_secs` (see [`perestroika_host::command`]): a server that accepts and
//! never answers costs one timeout, a transient error, never a stuck build slot.

use std::path::{Path, PathBuf};
use std::process::Command;

use perestroika_host::command::{self, CommandError, Deadline};
use sha2::{Digest, Sha256};

/// A git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git ran and refused: a broken URL, a missing commit, a corrupt repository.
    #[error("git {action} for {url}: {detail}")]
    Failed {
        action: String,
        url: String,
        detail: String,
    },
    /// git could not be run, or did not finish within its deadline.
    #[error("git {action} for {url}: {source}")]
    Command {
        action: String,
        url: String,
        #[source]
        source: CommandError,
    },
}

impl GitError {
    /// Whether git ran out of time (the farm could not do it now; the sources may be fine).
    pub fn is_timeout(&self) -> bool {
        matches!(self, GitError::Command { source, .. } if source.is_timeout())
    }

    /// Whether the farm could not do it now — git ran out of time or could not run, or the
    /// repository's host could not be reached (a clone or fetch refused) — as opposed to what
    /// the repository holds being wrong (a missing commit, an archive over its limit).
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::Command { source, .. } => {
                !matches!(source, perestroika_host::command::CommandError::Io { .. })
            }
            GitError::Failed { action, .. } => matches!(action.as_str(), "clone" | "fetch"),
        }
    }
}

/// The largest file [`Repo::read`] reads (a changelog, a spec).
pub const MAX_READ: u64 = 16 << 20;

/// Bare mirrors of the repositories builds come from.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
    deadline: Deadline,
}

/// One repository's mirror.
#[derive(Debug, Clone)]
pub struct Repo {
    path: PathBuf,
    url: String,
    deadline: Deadline,
}

impl GitCache {
    /// The mirrors under `root`; each git command may take up to `deadline`.
    pub fn new(root: &Path, deadline: Deadline) -> Self {
        Self {
            root: root.to_owned(),
            deadline,
        }
    }

    /// The mirror of `url`, holding `commit` (fetching `fetch_ref` and the branches if needed).
    /// Builds running at once (several slots, several workers sharing the state) take turns
    /// on one repository's mirror: its clone and fetches happen under an flock of their own.
    pub fn fetch(
        &self,
        url: &str,
        commit: &str,
        fetch_ref: Option<&str>,
    ) -> Result<Repo, GitError> {
        let key = hex::encode(&Sha256::digest(url.as_bytes())[..10]);
        let repo = Repo {
            path: self.root.join(format!("{key}.git")),
            url: url.to_owned(),
            deadline: self.deadline,
        };
        fs_err::create_dir_all(&self.root).map_err(|e| repo.err("clone", e.to_string()))?;
        let lock_path = self.root.join(format!("{key}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|e| repo.err("clone", format!("{}: {e}", lock_path.display())))?;
        self.mark_used(&key);
        let fetched = self.fetch_locked(&repo, &key, commit, fetch_ref);
        drop(lock);
        fetched.map(|()| repo)
    }

    /// The stamp whose modification time says when the mirror `<key>.git` was last used.
    fn stamp(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.used"))
    }

    /// Touches the mirror's stamp (best effort: a missing stamp only makes the mirror look
    /// as old as its directory).
    fn mark_used(&self, key: &str) {
        let stamp = self.stamp(key);
        let touched = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&stamp)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        if let Err(e) = touched {
            tracing::debug!(stamp = %stamp.display(), error = %e, "could not mark a git mirror used");
        }
    }

    /// When the mirror `<key>.git` was last used: its stamp's time, or its directory's for a
    /// mirror made before stamps were kept.
    fn last_used(&self, key: &str) -> Option<std::time::SystemTime> {
        let modified = |p: PathBuf| fs_err::metadata(p).and_then(|m| m.modified()).ok();
        modified(self.stamp(key)).or_else(|| modified(self.root.join(format!("{key}.git"))))
    }

    /// Removes the mirrors not used for longer than `max_age`, each under its flock (a mirror
    /// in use by a build is left alone), and the temporary clones of processes that are gone.
    /// Returns the mirrors removed.
    pub fn prune_unused(&self, max_age: std::time::Duration) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        let Ok(entries) = fs_err::read_dir(&self.root) else {
            return removed;
        };
        let now = std::time::SystemTime::now();
        let stale = |key: &str| {
            self.last_used(key)
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() > max_age)
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `.<key>.<pid>.tmp`: a clone cut short.
            if let Some(pid) = name
                .strip_suffix(".tmp")
                .and_then(|n| n.rsplit_once('.'))
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
            {
                if name.starts_with('.') && !crate::process::alive(pid) {
                    let _ = fs_err::remove_dir_all(entry.path());
                }
                continue;
            }
            let Some(key) = name.strip_suffix(".git") else {
                continue;
            };
            if !stale(key) {
                continue;
            }
            let lock_path = self.root.join(format!("{key}.lock"));
            let Ok(lock) = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
            else {
                continue;
            };
            // In use: a build holds it. Not stale any more once the holder has touched it.
            if lock.try_lock().is_err() || !stale(key) {
                continue;
            }
            let path = entry.path();
            match fs_err::remove_dir_all(&path) {
                Ok(()) => {
                    let _ = fs_err::remove_file(self.stamp(key));
                    removed.push(path);
                }
                Err(e) => tracing::warn!(error = %e, "could not remove an unused git mirror"),
            }
            drop(lock);
        }
        removed
    }

    fn fetch_locked(
        &self,
        repo: &Repo,
        key: &str,
        commit: &str,
        fetch_ref: Option<&str>,
    ) -> Result<(), GitError> {
        let url = repo.url.as_str();
        if !repo.path.join("HEAD").is_file() {
            fs_err::create_dir_all(&self.root).map_err(|e| repo.err("clone", e.to_string()))?;
            let tmp = self.root.join(format!(".{key}.{}.tmp", std::process::id()));
            let _ = fs_err::remove_dir_all(&tmp);
            let out = command::output(
                Command::new("git")
                    .args(["clone", "--quiet", "--bare", "--", url])
                    .arg(&tmp),
                self.deadline,
            )
            .map_err(|e| {
                let _ = fs_err::remove_dir_all(&tmp);
                repo.command_err("clone", e)
            })?;
            if !out.status.success() {
                return Err(repo.err(
                    "clone",
                    String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                ));
            }
            fs_err::rename(&tmp, &repo.path).map_err(|e| repo.err("clone", e.to_string()))?;
        }
        if !repo.has_commit(commit)? {
            let mut refspecs = vec![
                "+refs/heads/*:refs/heads/*".to_owned(),
                "+refs/tags/*:refs/tags/*".to_owned(),
            ];
            if let Some(r) = fetch_ref {
                refspecs.push(format!("+{r}:refs/perestroika/{commit}"));
            }
            let mut args = vec![
                "fetch".to_owned(),
                "--quiet".into(),
                "--".into(),
                url.to_owned(),
            ];
            args.extend(refspecs);
            repo.git(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        if !repo.has_commit(commit)? {
            return Err(repo.err("find", format!("commit {commit} is not in the repository")));
        }
        Ok(())
    }
}

impl Repo {
    fn err(&self, action: &str, detail: String) -> GitError {
        GitError::Failed {
            action: action.to_owned(),
            url: self.url.clone(),
            detail,
        }
    }

    fn command_err(&self, action: &str, source: CommandError) -> GitError {
        GitError::Command {
            action: action.to_owned(),
            url: self.url.clone(),
            source,
        }
    }

    fn git(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let out = command::output(
            Command::new("git")
                .arg("--git-dir")
                .arg(&self.path)
                .args(args),
            self.deadline,
        )
        .map_err(|e| self.command_err(args[0], e))?;
        if !out.status.success() {
            return Err(self.err(
                args[0],
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(out.stdout)
    }

    /// Whether the mirror holds `commit`; git not answering in time is an error, not a no.
    fn has_commit(&self, commit: &str) -> Result<bool, GitError> {
        match self.git(&["cat-file", "-e", &format!("{commit}^{{commit}}")]) {
            Ok(_) => Ok(true),
            Err(GitError::Failed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Number of commits reachable from `commit`, itself included.
    pub fn count(&self, commit: &str) -> Result<u64, GitError> {
        let out = self.git(&["rev-list", "--count", commit])?;
        String::from_utf8_lossy(&out)
            .trim()
            .parse()
            .map_err(|_| self.err("rev-list", "unexpected output".into()))
    }

    /// Committer time of `commit`, seconds since the epoch.
    pub fn time(&self, commit: &str) -> Result<i64, GitError> {
        let out = self.git(&["log", "-1", "--format=%ct", commit])?;
        String::from_utf8_lossy(&out)
            .trim()
            .parse()
            .map_err(|_| self.err("log", "unexpected output".into()))
    }

    /// A file's content at `commit`, if it exists and holds at most [`MAX_READ`] bytes; git
    /// not answering in time is an error.
    pub fn read(&self, commit: &str, path: &str) -> Result<Option<String>, GitError> {
        let object = format!("{commit}:{path}");
        let size = match self.git(&["cat-file", "-s", &object]) {
            Ok(out) => String::from_utf8_lossy(&out).trim().parse::<u64>().ok(),
            Err(GitError::Failed { .. }) => None,
            Err(e) => return Err(e),
        };
        if size.is_none_or(|size| size > MAX_READ) {
            return Ok(None);
        }
        match self.git(&["cat-file", "blob", &object]) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names of the files (not directories) directly in `dir` (`""` for the top) at `commit`.
    pub fn files(&self, commit: &str, dir: &str) -> Result<Vec<String>, GitError> {
        let tree = if dir.is_empty() {
            commit.to_owned()
        } else {
            format!("{commit}:{dir}")
        };
        let out = match self.git(&["ls-tree", "-z", &tree]) {
            Ok(out) => out,
            Err(GitError::Failed { .. }) if !dir.is_empty() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(out
            .split(|b| *b == 0)
            .filter_map(|entry| {
                let entry = std::str::from_utf8(entry).ok()?;
                let (meta, name) = entry.split_once('\t')?;
                meta.contains(" blob ").then(|| name.to_owned())
            })
            .collect())
    }

    /// Writes a `format` archive (`tar`, `tar.gz`) of the tree at `commit`, limited to `paths`
    /// (git pathspecs; empty for all), into the new file `dest`; more than `limit` bytes stops
    /// git and is an error (the sources of one build are bounded).
    pub fn archive_to(
        &self,
        commit: &str,
        format: &str,
        prefix: &str,
        paths: &[&str],
        dest: &Path,
        limit: u64,
    ) -> Result<(), GitError> {
        let fail = |detail: String| {
            let _ = fs_err::remove_file(dest);
            self.err("archive", detail)
        };
        let mut out = std::fs::File::create_new(dest)
            .map_err(|e| self.err("archive", format!("{}: {e}", dest.display())))?;
        let run = command::output_to(
            Command::new("git")
                .arg("--git-dir")
                .arg(&self.path)
                .args(["archive", &format!("--format={format}")])
                .arg(format!("--prefix={prefix}"))
                .args([commit, "--"])
                .args(paths),
            self.deadline,
            &mut out,
            limit,
        );
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                let _ = fs_err::remove_file(dest);
                return Err(self.command_err("archive", e));
            }
        };
        if run.too_large {
            return Err(fail(format!(
                "the sources at {commit} are larger than {limit} bytes (build.max_source_bytes)"
            )));
        }
        if !run.status.success() {
            return Err(fail(String::from_utf8_lossy(&run.stderr).trim().to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
