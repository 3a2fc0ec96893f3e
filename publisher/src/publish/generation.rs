//! A tree's next generation: written beside the live one (the public key, the deb and rpm
//! indexes with their signatures, `snapshot.json`, links into the pool), switched live, and
//! followed by the pruning of old ones.

use perestroika_tree::GenerationDir;
use std::path::PathBuf;

use perestroika_protocol::messages::{review_tree_customer, Target};

use super::deb_indexes::{same_indexes, Signing};
use super::rpm_repos::RpmRepo;
use crate::deb::DebRepo;
use crate::error::{io, PublishError};
use crate::publisher::Publisher;
use crate::rpm;
use crate::tree::{Tree, TreeLock};

/// The result of a publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// Path of the tree relative to the public root (`acme/9.0`, `acme/review/1234`).
    pub tree: String,
    /// The generation (snapshot) now live.
    pub generation: u64,
    /// Whether this publish made a new generation (false when nothing changed).
    pub changed: bool,
}

impl Publisher<'_> {
    /// Switches the tree to a new generation holding the repositories' current state, unless
    /// it equals the live one.
    pub(crate) fn switch(
        &self,
        tree: &Tree,
        lock: &TreeLock,
        tree_name: String,
        deb: Option<&DebRepo>,
        deb_suites: &[String],
        (customer, version, target): (&str, &str, &Target),
    ) -> Result<Published, PublishError> {
        let releases = self.tree_releases(customer, version, target)?;
        let rpm_repos = self.rpm_repos(tree, &tree_name, &releases);
        if let Some(current) = tree.current() {
            let generation = tree.generation(current);
            let deb_same = deb.is_none_or(|repo| {
                same_indexes(
                    &repo.dists(),
                    &GenerationDir::new(&generation).deb_dists(),
                    deb_suites,
                )
            });
            let rpm_same = rpm_repos.iter().all(|r| {
                let read = |p: PathBuf| {
                    fs_err::read_to_string(p)
                        .ok()
                        .map(|t| rpm::repomd_locations(&t))
                };
                read(r.output.join("repodata/repomd.xml"))
                    == read(generation.join(&r.public).join("repodata/repomd.xml"))
            });
            if deb_same && rpm_same {
                return Ok(Published {
                    tree: tree_name,
                    generation: current,
                    changed: false,
                });
            }
        }
        let generation =
            self.write_generation(tree, &tree_name, lock, deb, deb_suites, &rpm_repos)?;
        Ok(Published {
            tree: tree_name,
            generation,
            changed: true,
        })
    }

    /// Writes the next generation of a tree, switches it live and prunes the old ones;
    /// returns its number.
    pub(super) fn write_generation(
        &self,
        tree: &Tree,
        tree_name: &str,
        lock: &TreeLock,
        deb: Option<&DebRepo>,
        suites: &[String],
        rpm_repos: &[RpmRepo],
    ) -> Result<u64, PublishError> {
        let signer = self.signer_for(tree_name);
        // Review and topic repositories are short-lived and carry no Valid-Until.
        let valid_for = self
            .valid_for()
            .filter(|_| review_tree_customer(tree_name).is_none());
        let (n, dir) = tree.begin(lock)?;
        let key = GenerationDir::new(&dir).key();
        fs_err::write(&key, signer.export_public()?).map_err(io(&key))?;
        let previous: Vec<PathBuf> = tree
            .generations()
            .iter()
            .rev()
            .take(self.farm.publish.keep_generations as usize)
            .map(|g| tree.generation(*g))
            .collect();
        // The newest generation signed with the same keys: its signatures of files that did
        // not change are reused.
        let public = fs_err::read(&key).map_err(io(&key))?;
        let same_keys = previous
            .first()
            .filter(|g| fs_err::read(GenerationDir::new(g).key()).is_ok_and(|k| k == public))
            .map(PathBuf::as_path);
        self.write_rpm(signer, tree, &dir, rpm_repos, &previous, same_keys)?;
        let mut snapshot = serde_json::Map::new();
        snapshot.insert("generation".into(), n.into());
        snapshot.insert("created".into(), chrono::Utc::now().to_rfc3339().into());
        if let Some(repo) = deb {
            let signing = Signing {
                signer,
                same_keys,
                valid_for,
            };
            self.write_deb(&signing, tree, &dir, repo, suites, &previous)?;
            snapshot.insert("deb_suites".into(), suites.to_vec().into());
        }
        let mut rpms = serde_json::Map::new();
        for r in rpm_repos {
            let packages: Vec<String> = fs_err::read_dir(r.pool.join("Packages"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".rpm"))
                        .collect()
                })
                .unwrap_or_default();
            if !packages.is_empty() {
                rpms.insert(r.public.display().to_string(), packages.into());
            }
        }
        snapshot.insert("rpm".into(), rpms.into());
        let logs_link = dir.join("logs");
        std::os::unix::fs::symlink(tree.pool_link_from(0, "logs"), &logs_link)
            .map_err(io(&logs_link))?;
        let record = GenerationDir::new(&dir).record();
        fs_err::write(&record, serde_json::to_vec_pretty(&snapshot).expect("json"))
            .map_err(io(&record))?;
        crate::crash::point("generation-written");
        tree.commit(n, lock)?;
        crate::crash::point("switched");
        crate::retention::after_switch(self, tree, tree_name, lock, deb);
        Ok(n)
    }
}
