//! The public tree of one release (or review repository) and its atomic switch.
//!
//! ```text
//! <root>/<name>            symlink to .<name>.gen/<N>: what clients read
//! <root>/.<name>.gen/<N>/  generation N: KEY.asc, deb/dists, rpm/…/repodata, snapshot.json —
//!                          immutable once complete; every generation is a snapshot
//! <root>/.<name>.pool/     package files (deb/pool, rpm/<suite>/<arch>/Packages) and logs,
//!                          shared by all generations; a file name is never reused
//! ```
//!
//! A new generation is written as `.<name>.gen/<N>.tmp`, renamed to `<N>` when complete, and
//! made live by renaming a new symlink over `<name>` (rename(2): readers see the old tree or the
//! new one, never neither).
//!
//! A power cut loses nothing a switch made live: the generation is on disk (every file and
//! directory fsynced) before it is renamed complete, the rename before the link points at it,
//! and the switch itself (the root directory fsynced) before [`Tree::commit`] returns. The pool
//! files a generation names are made durable by whoever adds them, before the commit.
//!
//! Every writer of a tree holds its [`TreeLock`] (an flock on a lock file in the publisher's own
//! state, never in the public tree the mirrors copy) for the whole write: two publishers of one
//! tree — consumers of two releases' queues publishing one topic, or `include` beside the
//! daemon — take turns, across threads and processes alike.

use std::path::{Path, PathBuf};

use perestroika_host::files::{create_dir_durable, sync_dir, sync_tree};
use perestroika_tree::{Generation, GenerationDir, PublicTree};

/// A tree operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TreeError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError {
        path: path.to_owned(),
        source,
    }
}

/// The exclusive hold on a tree's writers, released when dropped. [`Tree::begin`],
/// [`Tree::commit`] and [`Tree::remove`] ask for it, so no generation is written without it.
#[derive(Debug)]
pub struct TreeLock {
    path: PathBuf,
    /// Holds the flock until dropped.
    _file: std::fs::File,
}

impl TreeLock {
    /// Removes the lock file (a tree taken down for good); the lock is held until dropped,
    /// and a writer waiting on the removed file takes the next one.
    pub fn remove_file(&self) {
        let _ = fs_err::remove_file(&self.path);
    }
}

/// The public tree `<root>/<name>`, for writing; its layout is [`PublicTree`]'s.
#[derive(Debug, Clone)]
pub struct Tree {
    layout: PublicTree,
}

impl Tree {
    pub fn new(root: &Path, name: &str) -> Self {
        Self {
            layout: PublicTree::in_dir(root, name),
        }
    }

    /// The tree's layout: its paths, generations and live link.
    pub fn layout(&self) -> &PublicTree {
        &self.layout
    }

    /// The path clients read (a symlink).
    pub fn live(&self) -> PathBuf {
        self.layout.live()
    }

    pub fn generations_dir(&self) -> PathBuf {
        self.layout.generations_dir()
    }

    /// Shared package files and logs.
    pub fn pool(&self) -> PathBuf {
        self.layout.pool()
    }

    /// Path from inside a generation's `<sub>` directory (e.g. `deb`) to the shared pool's
    /// `<sub>` directory, for relative symlinks.
    pub fn pool_link_from(&self, depth: usize, sub: &str) -> PathBuf {
        self.layout.pool_link_from(depth, sub)
    }

    /// The generation clients see now.
    pub fn current(&self) -> Option<u64> {
        self.layout.current().map(Generation::get)
    }

    /// Every complete generation, oldest first.
    pub fn generations(&self) -> Vec<u64> {
        self.layout
            .generations()
            .into_iter()
            .map(Generation::get)
            .collect()
    }

    /// The directory of generation `n`.
    pub fn generation(&self, n: u64) -> PathBuf {
        self.layout.generation(Generation(n))
    }

    /// Generation `n`, with its repository paths.
    pub fn generation_dir(&self, n: u64) -> GenerationDir {
        self.layout.generation_dir(Generation(n))
    }

    /// Waits for, then holds, the tree's exclusive lock (flock(2)) on the file `path`, taken
    /// by every writer before it changes the tree or its private state and held until the
    /// write is done. A lock file removed while it was awaited ([`TreeLock::remove_file`]) is
    /// not held: the next one is taken, so that two writers never hold two files.
    pub fn lock(&self, path: &Path) -> Result<TreeLock, TreeError> {
        use std::os::unix::fs::MetadataExt;
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir).map_err(err(dir))?;
        }
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(err(path))?;
            file.lock().map_err(err(path))?;
            let held = file.metadata().map_err(err(path))?;
            let same = fs_err::metadata(path).is_ok_and(|now| now.ino() == held.ino());
            if same {
                return Ok(TreeLock {
                    path: path.to_owned(),
                    _file: file,
                });
            }
        }
    }

    /// Starts generation N+1 in a temporary directory (removing any unfinished one).
    pub fn begin(&self, _lock: &TreeLock) -> Result<(u64, PathBuf), TreeError> {
        let gens = self.generations_dir();
        create_dir_durable(&gens).map_err(err(&gens))?;
        for entry in fs_err::read_dir(&gens)
            .map_err(err(&gens))?
            .filter_map(Result::ok)
        {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs_err::remove_dir_all(entry.path());
            }
        }
        let next = self
            .layout
            .generations()
            .last()
            .map_or(Generation(1), |n| n.next());
        let dir = self.layout.unfinished(next);
        fs_err::create_dir_all(&dir).map_err(err(&dir))?;
        Ok((next.get(), dir))
    }

    /// Takes the tree down: first the live link disappears (renamed away, so clients see
    /// the whole tree or none), then its generations and pool. Returns whether anything was
    /// there; running it again after a crash finishes the job.
    pub fn remove(&self, _lock: &TreeLock) -> Result<bool, TreeError> {
        let retired = self.layout.retired_link();
        let root = self.layout.dir();
        let live = self.live();
        let mut found = false;
        if fs_err::symlink_metadata(&live).is_ok() {
            fs_err::rename(&live, &retired).map_err(err(&live))?;
            sync_dir(root).map_err(err(root))?;
            found = true;
        }
        for path in [self.generations_dir(), self.pool()] {
            if path.exists() {
                fs_err::remove_dir_all(&path).map_err(err(&path))?;
                found = true;
            }
        }
        if fs_err::symlink_metadata(&retired).is_ok() {
            fs_err::remove_file(&retired).map_err(err(&retired))?;
        }
        Ok(found)
    }

    /// Removes generation `n` (never the live one): renamed away first, so that no half-removed
    /// generation is ever taken for a complete one, then deleted. Leftovers of a removal cut
    /// short are deleted too.
    pub fn remove_generation(&self, n: u64, _lock: &TreeLock) -> Result<(), TreeError> {
        let gens = self.generations_dir();
        if self.current() == Some(n) {
            return Ok(());
        }
        let dir = self.generation(n);
        let doomed = self.layout.pruned(Generation(n));
        if dir.exists() {
            fs_err::rename(&dir, &doomed).map_err(err(&dir))?;
            sync_dir(&gens).map_err(err(&gens))?;
        }
        for entry in fs_err::read_dir(&gens)
            .map_err(err(&gens))?
            .filter_map(Result::ok)
        {
            if entry.file_name().to_string_lossy().ends_with(".pruned") {
                let path = entry.path();
                fs_err::remove_dir_all(&path).map_err(err(&path))?;
            }
        }
        Ok(())
    }

    /// Completes generation `n` and makes it live, durably: the generation's files and
    /// directories are on disk before it is renamed complete, the rename and the tree's own
    /// directories before the switch, and the switch before this returns. The pool files it
    /// names must be durable already.
    pub fn commit(&self, n: u64, _lock: &TreeLock) -> Result<(), TreeError> {
        let gens = self.generations_dir();
        let tmp = self.layout.unfinished(Generation(n));
        let done = self.generation(n);
        sync_tree(&tmp).map_err(err(&tmp))?;
        fs_err::rename(&tmp, &done).map_err(err(&done))?;
        sync_dir(&gens).map_err(err(&gens))?;
        crate::crash::point("generation-renamed");
        let link = self.layout.next_link();
        let _ = fs_err::remove_file(&link);
        let target = self.layout.link_target(Generation(n));
        std::os::unix::fs::symlink(&target, &link).map_err(err(&link))?;
        // The generations and pool directories of a new tree are entries of the root.
        let root = self.layout.dir();
        sync_dir(root).map_err(err(root))?;
        fs_err::rename(&link, self.live()).map_err(err(&self.live()))?;
        sync_dir(root).map_err(err(root))?;
        Ok(())
    }
}
