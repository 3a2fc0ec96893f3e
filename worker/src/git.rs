//! Fetching sources from git: a bare mirror per repository URL under the worker's state,
//! updated on demand, read with `git archive`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// A git operation failed.
#[derive(Debug, thiserror::Error)]
#[error("git {action} for {url}: {detail}")]
pub struct GitError {
    pub action: String,
    pub url: String,
    pub detail: String,
}

/// Bare mirrors of the repositories builds come from.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
}

/// One repository's mirror.
#[derive(Debug, Clone)]
pub struct Repo {
    path: PathBuf,
    url: String,
}

impl GitCache {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The mirror of `url`, holding `commit` (fetching `fetch_ref` and the branches if needed).
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
        };
        if !repo.path.join("HEAD").is_file() {
            fs_err::create_dir_all(&self.root).map_err(|e| repo.err("clone", e.to_string()))?;
            let tmp = self.root.join(format!(".{key}.{}.tmp", std::process::id()));
            let _ = fs_err::remove_dir_all(&tmp);
            let out = Command::new("git")
                .args(["clone", "--quiet", "--bare", "--", url])
                .arg(&tmp)
                .output()
                .map_err(|e| repo.err("clone", e.to_string()))?;
            if !out.status.success() {
                return Err(repo.err(
                    "clone",
                    String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                ));
            }
            fs_err::rename(&tmp, &repo.path).map_err(|e| repo.err("clone", e.to_string()))?;
        }
        if !repo.has_commit(commit) {
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
        if !repo.has_commit(commit) {
            return Err(repo.err("fetch", format!("commit {commit} is not in the repository")));
        }
        Ok(repo)
    }
}

impl Repo {
    fn err(&self, action: &str, detail: String) -> GitError {
        GitError {
            action: action.to_owned(),
            url: self.url.clone(),
            detail,
        }
    }

    fn git(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.path)
            .args(args)
            .output()
            .map_err(|e| self.err(args[0], e.to_string()))?;
        if !out.status.success() {
            return Err(self.err(
                args[0],
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(out.stdout)
    }

    fn has_commit(&self, commit: &str) -> bool {
        self.git(&["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .is_ok()
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

    /// A file's content at `commit`, if it exists.
    pub fn read(&self, commit: &str, path: &str) -> Option<String> {
        self.git(&["show", &format!("{commit}:{path}")])
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
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
            Err(_) if !dir.is_empty() => return Ok(Vec::new()),
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

    /// A tar of the tree at `commit`, limited to `paths` (git pathspecs; empty for all).
    pub fn archive(
        &self,
        commit: &str,
        format: &str,
        prefix: &str,
        paths: &[&str],
    ) -> Result<Vec<u8>, GitError> {
        let fmt = format!("--format={format}");
        let prefix = format!("--prefix={prefix}");
        let mut args = vec!["archive", &fmt, &prefix, commit, "--"];
        args.extend_from_slice(paths);
        self.git(&args)
    }
}
