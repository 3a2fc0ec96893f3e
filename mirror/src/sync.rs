//! Syncing one public tree (`<customer>/<version>` or `<customer>/review/<name>`) at one
//! generation to one target, in the order the Debian mirror network's ftpsync keeps:
//!
//! 1. packages first: the shared pool and the generations (each generation holds its indexes,
//!    signatures and `by-hash/` files, but no client reads a generation until the link points
//!    at it), added without deleting anything;
//! 2. then the indexes become visible: the tree's link is switched to the generation (rsync
//!    replaces a symlink with a temporary name and rename(2), so a client sees the old tree or
//!    the new one);
//! 3. then what is no longer referenced is deleted.
//!
//! A sync stopped anywhere leaves the target's live tree as it was or as it should be: stage 1
//! only adds files nobody reads yet, stage 2 is one rename, stage 3 removes only what the new
//! tree does not need.

use std::path::{Path, PathBuf};

use crate::rsync::{relative, Moved, RsyncError, Target};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("tree {0:?} is not <customer>/<version> or <customer>/review/<name>")]
    Tree(String),
    #[error("generation {generation} of {tree} is not in the public tree {root}")]
    Missing {
        tree: String,
        generation: u64,
        root: PathBuf,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Rsync(#[from] RsyncError),
}

/// A tree of the public root, split into the directory holding it and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRef {
    /// `acme` or `acme/review`.
    pub parent: String,
    /// `9.0` or a change number or topic.
    pub name: String,
}

impl TreeRef {
    pub fn parse(tree: &str) -> Result<Self, SyncError> {
        let bad = || SyncError::Tree(tree.to_owned());
        let (parent, name) = tree.rsplit_once('/').ok_or_else(bad)?;
        let parts: Vec<&str> = tree.split('/').collect();
        let shape_ok = matches!(parts.as_slice(), [_, _] | [_, "review", _]);
        if !shape_ok
            || parts
                .iter()
                .any(|p| p.is_empty() || p.starts_with('.') || p.contains(".."))
        {
            return Err(bad());
        }
        Ok(Self {
            parent: parent.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The live link, relative to the root.
    pub fn link(&self) -> String {
        format!("{}/{}", self.parent, self.name)
    }

    pub fn generations(&self) -> String {
        format!("{}/.{}.gen", self.parent, self.name)
    }

    pub fn pool(&self) -> String {
        format!("{}/.{}.pool", self.parent, self.name)
    }

    /// Generation `n`, relative to the root.
    pub fn generation(&self, n: u64) -> String {
        format!("{}/{n}", self.generations())
    }
}

impl std::fmt::Display for TreeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.link())
    }
}

/// Unfinished generations of the publisher, never copied.
const EXCLUDE_UNFINISHED: &str = "--exclude=*.tmp";

/// Copies generation `generation` of `tree` from `root` to `target` and makes it live there.
/// `scratch` is a private directory for the link to send.
pub async fn sync(
    root: &Path,
    tree: &TreeRef,
    generation: u64,
    target: &Target,
    scratch: &Path,
) -> Result<Moved, SyncError> {
    if !root.join(tree.generation(generation)).is_dir() {
        return Err(SyncError::Missing {
            tree: tree.to_string(),
            generation,
            root: root.to_owned(),
        });
    }
    let dirs = [
        relative(root, &format!("{}/", tree.pool())),
        relative(root, &format!("{}/", tree.generations())),
    ];
    let mut moved = target
        .run(
            "packages and generations",
            &["-rlt", "--relative", EXCLUDE_UNFINISHED],
            &dirs,
            "",
        )
        .await?;

    // The link to send: <scratch>/<parent>/<name> -> .<name>.gen/<N>
    let link_dir = scratch.join(&tree.parent);
    fs_err::create_dir_all(&link_dir).map_err(|source| SyncError::Io {
        path: link_dir.clone(),
        source,
    })?;
    let link = link_dir.join(&tree.name);
    let _ = fs_err::remove_file(&link);
    let dest = Path::new(&format!(".{}.gen", tree.name)).join(generation.to_string());
    std::os::unix::fs::symlink(&dest, &link).map_err(|source| SyncError::Io {
        path: link.clone(),
        source,
    })?;
    moved += target
        .run(
            "switch",
            &["-lt", "--relative"],
            &[relative(scratch, &tree.link())],
            "",
        )
        .await?;

    moved += target
        .run(
            "delete unreferenced",
            &["-rlt", "--relative", "--delete", EXCLUDE_UNFINISHED],
            &dirs,
            "",
        )
        .await?;
    Ok(moved)
}

/// Takes a retired tree off the target: the link first, then its generations and pool.
pub async fn remove(tree: &TreeRef, target: &Target, scratch: &Path) -> Result<Moved, SyncError> {
    let empty = scratch.join("empty");
    fs_err::create_dir_all(&empty).map_err(|source| SyncError::Io {
        path: empty.clone(),
        source,
    })?;
    let source = [PathBuf::from(format!("{}/", empty.display()))];
    let sub = format!("{}/", tree.parent);
    let name = &tree.name;
    let mut moved = target
        .run(
            "remove link",
            &[
                "-rl",
                "--delete",
                &format!("--include=/{name}"),
                "--exclude=*",
            ],
            &source,
            &sub,
        )
        .await?;
    moved += target
        .run(
            "remove generations and pool",
            &[
                "-rl",
                "--delete",
                &format!("--include=/.{name}.gen/***"),
                &format!("--include=/.{name}.pool/***"),
                "--exclude=*",
            ],
            &source,
            &sub,
        )
        .await?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_names() {
        let t = TreeRef::parse("acme/9.0").unwrap();
        assert_eq!((t.parent.as_str(), t.name.as_str()), ("acme", "9.0"));
        assert_eq!(t.generation(3), "acme/.9.0.gen/3");
        let r = TreeRef::parse("acme/review/1234").unwrap();
        assert_eq!(r.pool(), "acme/review/.1234.pool");
        for bad in [
            "acme",
            "acme/../x",
            "acme/.9.0.gen",
            "a/b/c",
            "/acme/9.0",
            "acme/review/",
        ] {
            assert!(TreeRef::parse(bad).is_err(), "{bad}");
        }
    }
}
