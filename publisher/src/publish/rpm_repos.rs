//! A tree's rpm side: rpms signed into the shared pool and indexed, and each repository's
//! metadata in a generation, `repomd.xml` signed.

use perestroika_tree::suite_name;
use std::path::{Path, PathBuf};

use perestroika_config::{Family, Release};

use super::signatures::Signature;
use crate::error::{io, PublishError};
use crate::links::{link_dir, link_or_copy};
use crate::publisher::Publisher;
use crate::rpm;
use crate::signing::Signer;
use crate::tree::Tree;

/// One rpm repository of a tree: `<suite>/<arch>`.
#[derive(Debug, Clone)]
pub(super) struct RpmRepo {
    /// Path within a generation: `rpm/<suite>/<arch>`.
    pub(super) public: PathBuf,
    /// The shared pool directory holding `Packages/`.
    pub(super) pool: PathBuf,
    /// Where createrepo_c keeps this repository's `repodata/`.
    pub(super) output: PathBuf,
}

impl Publisher<'_> {
    /// Every rpm repository (`<suite>/<arch>`) of a tree's releases, with where its index is
    /// kept.
    pub(super) fn rpm_repos(
        &self,
        tree: &Tree,
        tree_name: &str,
        releases: &[&Release],
    ) -> Vec<RpmRepo> {
        let mut out: Vec<RpmRepo> = Vec::new();
        for release in releases {
            self.release_rpm_repos(tree, tree_name, release, &mut out);
        }
        out
    }

    /// Adds the rpm repositories of one release to `out`, each once.
    fn release_rpm_repos(
        &self,
        tree: &Tree,
        tree_name: &str,
        release: &Release,
        out: &mut Vec<RpmRepo>,
    ) {
        let mut arches: Vec<String> = release
            .arches
            .iter()
            .map(|a| rpm::rpm_arch(a).to_owned())
            .collect();
        arches.push("source".into());
        for (family, distro) in release.distros() {
            if family != Family::Rpm {
                continue;
            }
            let suites = std::iter::once(distro.to_owned()).chain(
                self.farm
                    .publish
                    .suites
                    .iter()
                    .map(|s| suite_name(distro, Some(s))),
            );
            for suite in suites {
                for arch in &arches {
                    let public = PathBuf::from("rpm").join(&suite).join(arch);
                    if out.iter().any(|r| r.public == public) {
                        continue;
                    }
                    out.push(RpmRepo {
                        pool: tree.pool().join(&public),
                        output: self.rpm_state(tree_name).join(&suite).join(arch),
                        public,
                    });
                }
            }
        }
    }

    /// Signs rpms into the shared pool of `suite` and reindexes the repositories they went to.
    pub(super) fn include_rpms(
        &self,
        tree: &Tree,
        tree_name: &str,
        deb_arches: &[String],
        suite: &str,
        files: &[PathBuf],
    ) -> Result<(), PublishError> {
        let arches: Vec<&str> = deb_arches.iter().map(|a| rpm::rpm_arch(a)).collect();
        let passphrase = self
            .farm
            .signing
            .as_ref()
            .and_then(|s| s.passphrase_file.clone());
        let mut touched = std::collections::BTreeSet::new();
        let rpms: Vec<&Path> = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rpm"))
            .map(PathBuf::as_path)
            .collect();
        let mut plan = Vec::new();
        for (file, arch) in rpms.iter().zip(rpm::file_arches(&rpms)?) {
            let targets: Vec<String> = match arch.as_str() {
                "noarch" => arches.iter().map(|a| a.to_string()).collect(),
                "src" => vec!["source".into()],
                a if arches.contains(&a) => vec![a.to_owned()],
                a => {
                    return Err(PublishError::ForeignArch {
                        file: file.to_path_buf(),
                        arch: a.to_owned(),
                        arches: arches.iter().map(|a| a.to_string()).collect(),
                    })
                }
            };
            for arch in targets {
                let public = PathBuf::from("rpm").join(suite).join(&arch);
                plan.push((
                    file.to_path_buf(),
                    tree.pool().join(&public).join("Packages"),
                ));
                touched.insert(arch);
            }
        }
        let signer = self.signer_for(tree_name);
        rpm::add_to_pool(
            &plan,
            signer.home(),
            signer.fingerprint(),
            passphrase.as_deref(),
            self.farm.publish.command_deadline(),
        )?;
        for arch in touched {
            let public = PathBuf::from("rpm").join(suite).join(&arch);
            rpm::index(
                &tree.pool().join(&public),
                &self.rpm_state(tree_name).join(suite).join(&arch),
                self.farm.publish.command_deadline(),
            )?;
        }
        Ok(())
    }

    /// Links each rpm repository's metadata into the generation `dir` (with the files of
    /// recent generations' `repomd.xml`), signs `repomd.xml` and links `Packages` to the pool.
    pub(super) fn write_rpm(
        &self,
        signer: &Signer,
        tree: &Tree,
        dir: &Path,
        repos: &[RpmRepo],
        previous: &[PathBuf],
        same_keys: Option<&Path>,
    ) -> Result<(), PublishError> {
        for r in repos {
            let repomd_src = r.output.join("repodata/repomd.xml");
            if !repomd_src.is_file() {
                continue;
            }
            let dest = dir.join(&r.public);
            link_dir(&r.output.join("repodata"), &dest.join("repodata"))?;
            // The metadata of recent generations stays, for clients holding an older repomd.xml.
            for old in previous {
                let old_repo = old.join(&r.public);
                let Ok(text) = fs_err::read_to_string(old_repo.join("repodata/repomd.xml")) else {
                    continue;
                };
                for location in rpm::repomd_locations(&text) {
                    let (from, to) = (old_repo.join(&location), dest.join(&location));
                    if from.is_file() && !to.exists() {
                        link_or_copy(&from, &to)?;
                    }
                }
            }
            let repomd = fs_err::read(dest.join("repodata/repomd.xml")).map_err(io(&dest))?;
            self.write_signatures(
                signer,
                dir,
                same_keys,
                &r.public.join("repodata/repomd.xml"),
                &repomd,
                &[("repomd.xml.asc", Signature::Detached)],
            )?;
            let link = dest.join("Packages");
            let depth = r.public.components().count();
            let target =
                tree.pool_link_from(depth, &r.public.join("Packages").display().to_string());
            std::os::unix::fs::symlink(target, &link).map_err(io(&link))?;
        }
        Ok(())
    }
}
