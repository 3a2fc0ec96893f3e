//! Syncing one public tree (`<customer>/<version>` or `<customer>/review/<name>`) at one
//! generation to one target, in the order the Debian mirror network's ftpsync keeps:
//!
//! 1. packages first: new files of the shared pool, then the announced generation (it holds
//!    the indexes, signatures and `by-hash/` files, but no client reads a generation until the
//!    link points at it; what it shares with the previous generation is hard-linked on the
//!    target and its indexes are sent as deltas), adding without deleting anything;
//! 2. then the indexes become visible: the tree's link is switched to the generation (rsync
//!    replaces a symlink with a temporary name and rename(2), so a client sees the old tree or
//!    the new one);
//! 3. then what is no longer referenced is deleted (and generations the target missed, e.g.
//!    while it was down, are copied).
//!
//! A sync stopped anywhere leaves the target's live tree as it was or as it should be: stage 1
//! only adds files nobody reads yet, stage 2 is one rename, stage 3 removes only what the new
//! tree does not need.
//!
//! A power cut on the target loses nothing the switch made live: rsync fsyncs every file it
//! writes in stage 1 (`--fsync`, on any target); on a local target the mirror also flushes the
//! target's filesystem (syncfs) before the switch, for the directories, and the link's
//! directory after it. A remote target's directory entries are its own filesystem's affair.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use perestroika_host::files::write_atomic;
use perestroika_tree::{
    generations_dir_name, link_target, pool_dir_name, Generation, PublicTree, TreeName,
    TreeNameError,
};
use serde::{Deserialize, Serialize};

use crate::rsync::{relative, Moved, RsyncError, Target};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Tree(#[from] TreeNameError),
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

/// Unfinished generations of the publisher, never copied.
const EXCLUDE_UNFINISHED: &str = "--exclude=*.tmp";

/// What a target holds of a tree after the last complete sync: the pool's files and the
/// generations. With it the next sync sends and deletes exactly the difference instead of
/// listing the whole tree on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Pool files, relative to the public root.
    pub files: BTreeSet<String>,
    pub generations: BTreeSet<u64>,
}

impl Manifest {
    /// Where the manifest of `tree` on `target` is kept.
    pub fn path(state: &Path, target: &str, tree: &TreeName) -> PathBuf {
        state
            .join("mirror/manifests")
            .join(target)
            .join(format!("{}.json", tree.link().replace('/', "_")))
    }

    pub fn load(path: &Path) -> Option<Self> {
        serde_json::from_slice(&fs_err::read(path).ok()?).ok()
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(
            path,
            &serde_json::to_vec(self).expect("manifest serialises"),
        )
    }

    /// What this host has of the tree now.
    pub fn of_local(root: &Path, tree: &TreeName) -> Result<Self, SyncError> {
        let mut files = BTreeSet::new();
        walk(root, &root.join(tree.pool()), |_| true, &mut files)?;
        let generations = fs_err::read_dir(root.join(tree.generations()))
            .map_err(|source| SyncError::Io {
                path: root.join(tree.generations()),
                source,
            })?
            .filter_map(|e| Generation::from_dir_name(e.ok()?.file_name().to_str()?))
            .map(Generation::get)
            .collect();
        Ok(Self { files, generations })
    }
}

/// The entries under `dir` (not directories; links are not followed) of the kind `keep`
/// accepts, relative to `root`. A missing `dir` holds nothing.
fn walk(
    root: &Path,
    dir: &Path,
    keep: fn(&std::fs::FileType) -> bool,
    out: &mut BTreeSet<String>,
) -> Result<(), SyncError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SyncError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, keep, out)?;
        } else if keep(&kind) {
            if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.display().to_string());
            }
        }
    }
    Ok(())
}

fn write_list(scratch: &Path, name: &str, items: &[String]) -> Result<PathBuf, SyncError> {
    let path = scratch.join(name);
    fs_err::create_dir_all(scratch).map_err(|source| SyncError::Io {
        path: scratch.to_owned(),
        source,
    })?;
    let mut text = items.join("\n");
    text.push('\n');
    fs_err::write(&path, text).map_err(|source| SyncError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Copies generation `generation` of `tree` from `root` to `target` and makes it live there.
/// With the target's `known` manifest only the difference is sent and deleted; without it
/// (a first sync, or a full one) both sides are listed whole. Returns what moved and the
/// manifest the target now matches. `scratch` is a private working directory.
pub async fn sync(
    root: &Path,
    tree: &TreeName,
    generation: u64,
    target: &Target,
    scratch: &Path,
    known: Option<&Manifest>,
) -> Result<(Moved, Manifest), SyncError> {
    if !root.join(tree.generation(generation)).is_dir() {
        return Err(SyncError::Missing {
            tree: tree.to_string(),
            generation,
            root: root.to_owned(),
        });
    }
    let local = Manifest::of_local(root, tree)?;
    let dirs = [
        relative(root, &format!("{}/", tree.pool())),
        relative(root, &format!("{}/", tree.generations())),
    ];
    let root_arg = PathBuf::from(format!("{}/", root.display()));
    // 1a. New package files (the pool only grows), and the generations directory itself.
    // The generation's symlinks (into the pool) go with the packages, transferred from the
    // root: an rsync daemon without chroot would cut a link climbing out of a transfer that
    // starts inside the generation.
    let mut links = BTreeSet::new();
    walk(
        root,
        &root.join(tree.generation(generation)),
        std::fs::FileType::is_symlink,
        &mut links,
    )?;
    let mut new_files: Vec<String> = match known {
        Some(known) => local.files.difference(&known.files).cloned().collect(),
        None => Vec::new(),
    };
    new_files.extend(links);
    let new_list = write_list(scratch, "new-files", &new_files)?;
    let files_from = format!("--files-from={}", new_list.display());
    let exclude_generations = format!("--exclude=/{}/*", tree.generations());
    let listed = async {
        if new_files.is_empty() {
            return Ok(Moved::default());
        }
        target
            .run(
                "packages",
                &["-lt", "--fsync", &files_from],
                std::slice::from_ref(&root_arg),
                "",
            )
            .await
    };
    // 1b. The new generation. Most of it (by-hash copies of older indexes, KEY.asc) is already
    // on the target in the previous generation: hard-link that instead of sending it, and
    // send the new indexes as deltas against the previous ones.
    // Checksums, not size and time: an index keeps its name from one generation to the next
    // and may keep its size and second too.
    let mut args = vec!["-rtHc", "--fuzzy", "--fuzzy", "--fsync"];
    let link_dest;
    if let Some(previous) = previous_generation(root, tree, generation) {
        link_dest = format!("--link-dest=../{previous}");
        args.push(&link_dest);
    }
    let generation_dir = [PathBuf::from(format!(
        "{}/",
        root.join(tree.generation(generation)).display()
    ))];
    let generation_sub = format!("{}/", tree.generation(generation));
    let new_generation = target.run("generation", &args, &generation_dir, &generation_sub);
    // Once the target has the tree's directories (any sync but the first), the new generation
    // goes first and its links after it: run at once, both receivers made the generation's
    // directory, and one failed with "mkdir … File exists".
    let mut moved = if known.is_some() {
        let mut m = new_generation.await?;
        m += listed.await?;
        m
    } else {
        let mut m = target
            .run(
                "packages",
                &["-rlt", "--relative", "--fsync", &exclude_generations],
                &dirs,
                "",
            )
            .await?;
        m += new_generation.await?;
        m += listed.await?;
        m
    };

    // 2. The switch, of what is on disk, made durable itself.
    if let Some(dir) = target.local_dir() {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            perestroika_host::files::sync_filesystem(&dir)
                .map_err(|source| SyncError::Io { path: dir, source })
        })
        .await
        .expect("syncing the target")?;
    }
    let link = link_source(&scratch.join("link"), tree, generation)?;
    moved += target
        .run("switch", &["-lt", "--relative"], &[link], "")
        .await?;
    if let Some(dir) = target.local_dir() {
        let parent = dir.join(tree.parent());
        perestroika_host::files::sync_dir(&parent).map_err(|source| SyncError::Io {
            path: parent,
            source,
        })?;
    }

    // 3. Delete what is no longer referenced; copy generations the target missed.
    match known {
        None => {
            moved += target
                .run(
                    "delete unreferenced",
                    &["-rltH", "--relative", "--delete", EXCLUDE_UNFINISHED],
                    &dirs,
                    "",
                )
                .await?;
        }
        Some(known) => {
            let mut gone: Vec<String> = known.files.difference(&local.files).cloned().collect();
            gone.extend(
                known
                    .generations
                    .difference(&local.generations)
                    .map(|g| tree.generation(*g)),
            );
            if !gone.is_empty() {
                let list = write_list(scratch, "gone", &gone)?;
                moved += target
                    .run(
                        "delete unreferenced",
                        &[
                            "-r",
                            "--delete-missing-args",
                            "--force",
                            &format!("--files-from={}", list.display()),
                        ],
                        std::slice::from_ref(&root_arg),
                        "",
                    )
                    .await?;
            }
            let missed: Vec<String> = local
                .generations
                .iter()
                .filter(|g| **g < generation && !known.generations.contains(g))
                .map(|g| format!("{}/", tree.generation(*g)))
                .collect();
            if !missed.is_empty() {
                let sources: Vec<PathBuf> = missed.iter().map(|m| relative(root, m)).collect();
                moved += target
                    .run("missed generations", &["-rltH", "--relative"], &sources, "")
                    .await?;
            }
        }
    }
    // The target now has the pool as listed, and the generations sent (a generation finished
    // here during the sync was not necessarily sent).
    let generations = match known {
        None => local.generations.clone(),
        Some(known) => known
            .generations
            .intersection(&local.generations)
            .copied()
            .chain(
                local
                    .generations
                    .iter()
                    .copied()
                    .filter(|g| *g <= generation),
            )
            .collect(),
    };
    Ok((
        moved,
        Manifest {
            files: local.files,
            generations,
        },
    ))
}

/// [`sync`] with the target's manifest kept under `state`: read before (unless `full`) and
/// renewed after. A manifest that cannot be written is dropped, so that the next sync lists
/// everything (slower, still right).
pub async fn sync_tracked(
    root: &Path,
    state: &Path,
    tree: &TreeName,
    generation: u64,
    target: &Target,
    scratch: &Path,
    full: bool,
) -> Result<Moved, SyncError> {
    let path = Manifest::path(state, &target.name, tree);
    let known = if full { None } else { Manifest::load(&path) };
    let (moved, manifest) = sync(root, tree, generation, target, scratch, known.as_ref()).await?;
    if let Err(e) = manifest.save(&path) {
        tracing::warn!(error = %e, "cannot record what the target holds");
        let _ = fs_err::remove_file(&path);
    }
    Ok(moved)
}

/// Makes `<dir>/<parent>/<name>` the tree's link as it should be on a target (pointing at
/// `.<name>.gen/<generation>`); returns it as an rsync `--relative` source rooted at `dir`.
pub fn link_source(dir: &Path, tree: &TreeName, generation: u64) -> Result<PathBuf, SyncError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SyncError::Io { path, source }
    };
    let link_dir = dir.join(tree.parent());
    fs_err::create_dir_all(&link_dir).map_err(io(&link_dir))?;
    let link = link_dir.join(tree.leaf());
    let _ = fs_err::remove_file(&link);
    let points_at = link_target(tree.leaf(), Generation(generation));
    std::os::unix::fs::symlink(&points_at, &link).map_err(io(&link))?;
    Ok(relative(dir, &tree.link()))
}

/// The newest complete generation before `generation` on this host.
fn previous_generation(root: &Path, tree: &TreeName, generation: u64) -> Option<u64> {
    PublicTree::at(root, tree)
        .previous(Generation(generation))
        .map(Generation::get)
}

/// Takes a retired tree off the target: the link first, then its generations and pool.
pub async fn remove(tree: &TreeName, target: &Target, scratch: &Path) -> Result<Moved, SyncError> {
    let empty = scratch.join("empty");
    fs_err::create_dir_all(&empty).map_err(|source| SyncError::Io {
        path: empty.clone(),
        source,
    })?;
    let source = [PathBuf::from(format!("{}/", empty.display()))];
    let sub = format!("{}/", tree.parent());
    let name = tree.leaf();
    let mut moved = target
        .run(
            "remove link",
            &[
                "-rl",
                // A tree that never reached this target has no parent directory there.
                "--mkpath",
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
                "--mkpath",
                "--delete",
                &format!("--include=/{}/***", generations_dir_name(name)),
                &format!("--include=/{}/***", pool_dir_name(name)),
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
    fn tree_link_on_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let tree = TreeName::parse("acme/review/7").unwrap();
        let source = link_source(dir.path(), &tree, 3).unwrap();
        assert!(source.ends_with("acme/review/7"), "{}", source.display());
        assert_eq!(
            fs_err::read_link(dir.path().join("acme/review/7")).unwrap(),
            Path::new(".7.gen/3")
        );
    }
}
