//! A tree's deb side: its reprepro repository, and its indexes in a generation — by-hash
//! copies (those of recent generations too), `Release` dated and signed.

use perestroika_tree::GenerationDir;
use std::path::{Path, PathBuf};

use perestroika_formats::release_index::{sha256_entries, ReleaseError};
use perestroika_protocol::messages::Target;

use super::signatures::Signature;
use crate::deb::DebRepo;
use crate::error::{io, PublishError};
use crate::links::{link_dir, link_or_copy};
use crate::publisher::Publisher;
use crate::release_file::{by_hash_path, with_acquire_by_hash};
use crate::signing::Signer;
use crate::tree::{Tree, TreeLock};

/// How a generation's deb indexes are signed.
pub(super) struct Signing<'a> {
    pub(super) signer: &'a Signer,
    /// The newest generation signed with the same keys (its signatures may be reused).
    pub(super) same_keys: Option<&'a Path>,
    /// `Valid-Until` after the signing time, for a release's indexes.
    pub(super) valid_for: Option<chrono::Duration>,
}

impl Publisher<'_> {
    /// The deb repository of a tree (none when the release has no deb distro), and its suites,
    /// each with indexes (empty ones written for a suite that has none yet).
    pub(crate) fn open_deb(
        &self,
        tree: &Tree,
        lock: &TreeLock,
        tree_name: &str,
        customer: &str,
        version: &str,
        target: &Target,
    ) -> Result<(Option<DebRepo>, Vec<String>), PublishError> {
        let releases = self.tree_releases(customer, version, target)?;
        let deb_suites = self.deb_suites(&releases);
        let mut arches: Vec<String> = Vec::new();
        for arch in releases.iter().flat_map(|r| &r.arches) {
            if !arches.contains(arch) {
                arches.push(arch.clone());
            }
        }
        // A topic's tree serves several releases: its origin names none of them. Review
        // trees say so in their label.
        let origin = match target {
            Target::Topic { .. } => format!("{customer} review"),
            Target::Review { .. } => format!("{customer} {version} review"),
            Target::Release => format!("{customer} {version}"),
        };
        let deb = if deb_suites.is_empty() {
            None
        } else {
            Some(DebRepo::open(
                &self.state_dir(tree_name),
                &tree.pool().join("deb"),
                &deb_suites,
                &arches,
                &origin,
                self.farm.publish.command_deadline(),
                lock,
            )?)
        };
        // Every suite has indexes from the start, even while only the release's rpm side
        // has been published: each generation holds a signed (empty) deb side.
        if let Some(repo) = &deb {
            repo.export_missing(&deb_suites)?;
        }
        Ok((deb, deb_suites))
    }

    /// Links the repository's indexes into the generation `dir` with their by-hash copies
    /// (and those of `previous_gens`), dates and signs each suite's `Release`, and links the
    /// pool.
    pub(super) fn write_deb(
        &self,
        signing: &Signing<'_>,
        tree: &Tree,
        dir: &Path,
        repo: &DebRepo,
        suites: &[String],
        previous_gens: &[PathBuf],
    ) -> Result<(), PublishError> {
        let now = chrono::Utc::now();
        let dists = GenerationDir::new(dir).deb_dists();
        link_dir(&repo.dists(), &dists)?;
        let previous: Vec<PathBuf> = previous_gens
            .iter()
            .map(|g| GenerationDir::new(g).deb_dists())
            .collect();
        for suite in suites {
            let suite_dir = dists.join(suite);
            let release_path = suite_dir.join("Release");
            let Ok(release) = fs_err::read_to_string(&release_path) else {
                continue;
            };
            let entries = sha256_entries(&release).map_err(|source| PublishError::Release {
                path: release_path.clone(),
                source,
            })?;
            for entry in entries {
                let index = suite_dir.join(&entry.path);
                if index.is_file() {
                    link_or_copy(&index, &by_hash_path(&suite_dir, &entry))?;
                }
            }
            // Indexes of recent generations stay reachable by hash for clients that read an
            // older InRelease.
            for old in &previous {
                let old_suite = old.join(suite);
                let Ok(old_release) = fs_err::read_to_string(old_suite.join("Release")) else {
                    continue;
                };
                // An older generation's Release was checked when it was published.
                for entry in sha256_entries(&old_release).unwrap_or_default() {
                    let from = by_hash_path(&old_suite, &entry);
                    let to = by_hash_path(&suite_dir, &entry);
                    if from.is_file() && !to.exists() {
                        link_or_copy(&from, &to)?;
                    }
                }
            }
            let malformed = |e| PublishError::Release {
                path: release_path.clone(),
                source: ReleaseError::Syntax(e),
            };
            let mut signed = with_acquire_by_hash(&release).map_err(malformed)?;
            if let Some(valid_for) = signing.valid_for {
                let published = signing.same_keys.and_then(|g| {
                    fs_err::read_to_string(GenerationDir::new(g).deb_release(suite)).ok()
                });
                signed = crate::release_file::dated(&signed, published.as_deref(), valid_for, now)
                    .map_err(malformed)?;
            }
            // A new file, not a rewrite: the Release may share its inode with reprepro's.
            let _ = fs_err::remove_file(&release_path);
            fs_err::write(&release_path, &signed).map_err(io(&release_path))?;
            self.write_signatures(
                signing.signer,
                dir,
                signing.same_keys,
                &Path::new(GenerationDir::DEB_DISTS)
                    .join(suite)
                    .join("Release"),
                signed.as_bytes(),
                &[
                    ("InRelease", Signature::Inline),
                    ("Release.gpg", Signature::Detached),
                ],
            )?;
        }
        let pool_link = dir.join("deb/pool");
        std::os::unix::fs::symlink(tree.pool_link_from(1, "deb/pool"), &pool_link)
            .map_err(io(&pool_link))?;
        Ok(())
    }
}

/// Whether every suite's unsigned indexes equal those of a published generation.
pub(super) fn same_indexes(fresh: &Path, published: &Path, suites: &[String]) -> bool {
    suites.iter().all(|suite| {
        let read = |base: &Path| fs_err::read_to_string(base.join(suite).join("Release")).ok();
        match (read(fresh), read(published)) {
            (Some(a), Some(b)) => match (sha256_entries(&a), sha256_entries(&b)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
            _ => false,
        }
    })
}
