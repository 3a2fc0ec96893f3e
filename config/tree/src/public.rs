//! One tree on disk: its link, generations and pool.

use std::path::{Path, PathBuf};

use crate::{Generation, GenerationDir, TreeName};

/// The live generation of a tree cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The link is not there: nothing was published yet.
    #[error("{tree} is not published here ({} is not a link)", link.display())]
    NotPublished {
        tree: String,
        link: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The link points somewhere else than a generation.
    #[error("{} points at {}, not a generation", link.display(), target.display())]
    NotAGeneration { link: PathBuf, target: PathBuf },
}

/// The tree `<dir>/<name>` on disk (see the crate documentation for its layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTree {
    dir: PathBuf,
    name: String,
    /// How messages name it: `acme/9.0` when known, else the link's name.
    title: String,
}

impl PublicTree {
    /// The tree `name` under the public root `root`.
    pub fn at(root: &Path, name: &TreeName) -> Self {
        Self {
            title: name.to_string(),
            ..Self::in_dir(&root.join(name.parent()), name.leaf())
        }
    }

    /// The tree whose link is `<dir>/<name>`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            title: name.to_owned(),
        }
    }

    /// The directory holding the link, the generations and the pool.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path clients read (a symlink).
    pub fn live(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// `.<name>.gen`.
    pub fn generations_dir(&self) -> PathBuf {
        self.dir.join(crate::generations_dir_name(&self.name))
    }

    /// `.<name>.pool`: shared package files and logs.
    pub fn pool(&self) -> PathBuf {
        self.dir.join(crate::pool_dir_name(&self.name))
    }

    /// Where a tree taken down parks its link on the way out.
    pub fn retired_link(&self) -> PathBuf {
        self.dir.join(format!(".{}.retired", self.name))
    }

    /// Where a switch writes the new link before renaming it over the live one.
    pub fn next_link(&self) -> PathBuf {
        self.dir.join(format!(".{}.next", self.name))
    }

    /// What the link holds when generation `n` is live.
    pub fn link_target(&self, n: Generation) -> PathBuf {
        crate::link_target(&self.name, n)
    }

    /// Path from inside a generation's `<sub>` directory `depth` levels down (0 for the
    /// generation itself) to the shared pool's `<sub>` directory, for relative symlinks.
    pub fn pool_link_from(&self, depth: usize, sub: &str) -> PathBuf {
        let mut p = PathBuf::new();
        for _ in 0..depth + 2 {
            p.push("..");
        }
        p.join(crate::pool_dir_name(&self.name)).join(sub)
    }

    /// The generation clients see now; `None` when nothing is published or the link points
    /// elsewhere.
    pub fn current(&self) -> Option<Generation> {
        self.live_generation().ok()
    }

    /// The generation clients see now, or why there is none.
    pub fn live_generation(&self) -> Result<Generation, LiveError> {
        let link = self.live();
        let target = fs_err::read_link(&link).map_err(|source| LiveError::NotPublished {
            tree: self.title.clone(),
            link: link.clone(),
            source,
        })?;
        target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(Generation::from_dir_name)
            .ok_or(LiveError::NotAGeneration { link, target })
    }

    /// Every complete generation, oldest first.
    pub fn generations(&self) -> Vec<Generation> {
        let mut out: Vec<Generation> = fs_err::read_dir(self.generations_dir())
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| Generation::from_dir_name(e.file_name().to_str()?))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// The newest complete generation before `n`.
    pub fn previous(&self, n: Generation) -> Option<Generation> {
        self.generations().into_iter().filter(|g| *g < n).max()
    }

    /// The directory of generation `n`.
    pub fn generation(&self, n: Generation) -> PathBuf {
        self.generations_dir().join(n.to_string())
    }

    /// Generation `n`, with its repository paths.
    pub fn generation_dir(&self, n: Generation) -> GenerationDir {
        GenerationDir::new(self.generation(n))
    }

    /// Where generation `n` is written until it is complete: `.<name>.gen/<n>.tmp`.
    pub fn unfinished(&self, n: Generation) -> PathBuf {
        self.generations_dir().join(format!("{n}.tmp"))
    }

    /// Where generation `n` is moved while it is removed: `.<name>.gen/<n>.pruned`.
    pub fn pruned(&self, n: Generation) -> PathBuf {
        self.generations_dir().join(format!("{n}.pruned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let name = TreeName::parse("acme/review/12").unwrap();
        let t = PublicTree::at(Path::new("/pub"), &name);
        assert_eq!(t.live(), Path::new("/pub/acme/review/12"));
        assert_eq!(t.generations_dir(), Path::new("/pub/acme/review/.12.gen"));
        assert_eq!(t.pool(), Path::new("/pub/acme/review/.12.pool"));
        assert_eq!(
            t.generation(Generation(2)),
            Path::new("/pub/acme/review/.12.gen/2")
        );
        assert_eq!(
            t.unfinished(Generation(2)),
            Path::new("/pub/acme/review/.12.gen/2.tmp")
        );
        assert_eq!(t.link_target(Generation(2)), Path::new(".12.gen/2"));
        assert_eq!(
            t.pool_link_from(1, "deb/pool"),
            Path::new("../../../.12.pool/deb/pool")
        );
    }

    #[test]
    fn live_and_listed_generations() {
        let dir = tempfile::tempdir().unwrap();
        let t = PublicTree::in_dir(dir.path(), "9.0");
        assert!(matches!(
            t.live_generation(),
            Err(LiveError::NotPublished { .. })
        ));
        assert_eq!(t.current(), None);
        assert!(t.generations().is_empty());
        for g in ["1", "3", "10", "11.tmp", "2.pruned"] {
            fs_err::create_dir_all(t.generations_dir().join(g)).unwrap();
        }
        std::os::unix::fs::symlink(t.link_target(Generation(3)), t.live()).unwrap();
        assert_eq!(t.current(), Some(Generation(3)));
        assert_eq!(
            t.generations(),
            [Generation(1), Generation(3), Generation(10)]
        );
        assert_eq!(t.previous(Generation(10)), Some(Generation(3)));
        assert_eq!(t.previous(Generation(1)), None);
        fs_err::remove_file(t.live()).unwrap();
        std::os::unix::fs::symlink("elsewhere", t.live()).unwrap();
        assert!(matches!(
            t.live_generation(),
            Err(LiveError::NotAGeneration { .. })
        ));
    }
}
