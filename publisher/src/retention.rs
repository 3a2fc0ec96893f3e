//! Retention of a tree's snapshots (generations): after each switch, the generations beyond
//! `publish.keep_snapshots` go — never the live one, the one before it (a mirror may still be
//! copying it) or one marked shipped — and then the pool files and build logs only they used.
//!
//! reprepro keeps its own record of the pool (its files database, with
//! `--keepunreferencedfiles` every file it ever put there). A pool file is removed only when
//! no remaining generation's indexes name it and reprepro refers to it from no distribution;
//! reprepro forgets it first, so that the same file published again is copied anew. rpm
//! pools are left alone: createrepo_c indexes every file of a repository's `Packages/`, so
//! each is in the live generation's metadata.

use perestroika_tree::GenerationDir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::deb::DebRepo;
use crate::error::{io, PublishError};
use crate::publisher::Publisher;
use crate::suite_contents::suite_stanzas;
use crate::tree::{Tree, TreeLock};

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The generations removed.
    pub snapshots: Vec<u64>,
    /// Pool files no remaining generation used.
    pub pool_files: usize,
    /// Build logs published before every remaining generation of the retention window.
    pub logs: usize,
}

impl Publisher<'_> {
    /// Removes the generations of a tree beyond `publish.keep_snapshots` (none when it is 0),
    /// then the pool files and logs only they used. Called with the tree locked, after a
    /// switch; what it removes was never the live tree's.
    pub(crate) fn prune(
        &self,
        tree: &Tree,
        tree_name: &str,
        lock: &TreeLock,
        deb: Option<&DebRepo>,
    ) -> Result<Pruned, PublishError> {
        let keep = self.farm.publish.keep_snapshots as usize;
        let mut pruned = Pruned::default();
        let Some(live) = tree.current() else {
            return Ok(pruned);
        };
        if keep == 0 {
            return Ok(pruned);
        }
        let generations = tree.generations();
        let shipped = self.trees().shipped(tree_name);
        // The newest `keep` (the live one among them, and the one before it, which a mirror
        // may still be copying: keep_snapshots is at least 2), and every shipped one.
        let window: Vec<u64> = generations.iter().rev().take(keep).copied().collect();
        let doomed: Vec<u64> = generations
            .iter()
            .copied()
            .filter(|g| *g < live && !window.contains(g) && !shipped.contains_key(g))
            .collect();
        let Some(&newest_doomed) = doomed.last() else {
            return Ok(pruned);
        };
        // Logs written up to the newest generation pruned belong to pruned generations.
        let cutoff = modified(&tree.generation_dir(newest_doomed).record());
        for g in &doomed {
            tree.remove_generation(*g, lock)?;
        }
        pruned.snapshots = doomed;
        if let Some(repo) = deb {
            pruned.pool_files = self.prune_deb_pool(tree, repo)?;
        }
        if let Some(cutoff) = cutoff {
            pruned.logs = prune_logs(&tree.pool().join("logs"), cutoff)?;
        }
        Ok(pruned)
    }

    /// Removes the deb pool files that no remaining generation names and reprepro refers to
    /// from no distribution (reprepro forgets them first), and files of neither (left by a
    /// removal cut short). Returns how many went.
    fn prune_deb_pool(&self, tree: &Tree, repo: &DebRepo) -> Result<usize, PublishError> {
        let base = tree.pool().join("deb");
        let pool = base.join("pool");
        if !pool.is_dir() {
            return Ok(0);
        }
        let mut used = BTreeSet::new();
        for g in tree.generations() {
            used.extend(files_named(&tree.generation(g)));
        }
        let mut on_disk = Vec::new();
        walk_files(&pool, &mut on_disk).map_err(io(&pool))?;
        let unused: Vec<String> = on_disk
            .iter()
            .filter_map(|path| {
                let key = path.strip_prefix(&base).ok()?.to_str()?.to_owned();
                (!used.contains(&key)).then_some(key)
            })
            .collect();
        // A release's indexes keep every version: usually nothing to ask reprepro about.
        if unused.is_empty() {
            return Ok(0);
        }
        let (referenced, unreferenced) = repo.pool_files()?;
        let doomed: Vec<String> = unused
            .into_iter()
            .filter(|key| !referenced.contains(key))
            .collect();
        let forget: Vec<String> = doomed
            .iter()
            .filter(|k| unreferenced.contains(*k))
            .cloned()
            .collect();
        repo.forget(&forget)?;
        for key in &doomed {
            let path = base.join(key);
            fs_err::remove_file(&path).map_err(io(&path))?;
            // Empty package directories go too (pool/main/g/greet).
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != pool) {
                if fs_err::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(doomed.len())
    }
}

/// Every pool file (`pool/…`, relative to the deb tree) a generation's deb indexes name:
/// `Filename` of each binary package, each source package's `Files` in its `Directory`.
fn files_named(generation: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(suites) = fs_err::read_dir(GenerationDir::new(generation).deb_dists()) else {
        return out;
    };
    for suite in suites.filter_map(Result::ok) {
        let suite = suite.file_name().to_string_lossy().into_owned();
        for (_, _, stanza) in suite_stanzas(generation, &suite, false) {
            if let Some(name) = stanza.get("Filename") {
                out.insert(name.clone());
            }
        }
        for (_, _, stanza) in suite_stanzas(generation, &suite, true) {
            let Some(dir) = stanza.get("Directory") else {
                continue;
            };
            for field in ["Files", "Checksums-Sha256"] {
                for line in stanza.get(field).into_iter().flat_map(|v| v.lines()) {
                    if let Some(name) = line.split_whitespace().nth(2) {
                        out.insert(format!("{dir}/{name}"));
                    }
                }
            }
        }
    }
    out
}

/// Removes the logs (and pieces of an interrupted copy) last changed at or before `cutoff`.
fn prune_logs(logs: &Path, cutoff: SystemTime) -> Result<usize, PublishError> {
    let Ok(entries) = fs_err::read_dir(logs) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if modified(&path).is_some_and(|m| m <= cutoff) {
            fs_err::remove_file(&path).map_err(io(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs_err::metadata(path).and_then(|m| m.modified()).ok()
}

/// Every regular file below `dir` (links are not followed).
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Logs what a prune removed and how long it took.
pub(crate) fn report(tree_name: &str, pruned: &Pruned, took: Duration) {
    if !pruned.snapshots.is_empty() {
        tracing::info!(
            tree = tree_name,
            snapshots = ?pruned.snapshots,
            pool_files = pruned.pool_files,
            logs = pruned.logs,
            took_ms = took.as_millis() as u64,
            "pruned snapshots beyond publish.keep_snapshots"
        );
    }
}

/// Prunes after a switch and reports; a failure is logged, never the publish's: the new
/// generation is live, and the next publish prunes again.
pub(crate) fn after_switch(
    publisher: &Publisher<'_>,
    tree: &Tree,
    tree_name: &str,
    lock: &TreeLock,
    deb: Option<&DebRepo>,
) {
    let start = Instant::now();
    match publisher.prune(tree, tree_name, lock, deb) {
        Ok(pruned) => report(tree_name, &pruned, start.elapsed()),
        Err(e) => tracing::warn!(
            tree = tree_name,
            error = %e,
            "could not prune old snapshots; the next publish tries again"
        ),
    }
}
