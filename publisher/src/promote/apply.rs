//! A promotion: the selected files judged against the target suite, copied into it,
//! re-indexed, and the release switched live.

use perestroika_tree::suite_name;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use perestroika_config::Family;
use perestroika_protocol::messages::{Promotion, Target};

use super::deb_selection::{deb_missing, dsc_files, select_deb};
use super::refusal::{not_in_from, whereabouts};
use super::rpm_selection::{rpm_missing, select_rpm};
use crate::deb::COMPONENTS;
use crate::error::{io, PublishError};
use crate::links::{link_or_copy, link_or_copy_durable};
use crate::publish::Published;
use crate::publisher::Publisher;

/// What a promotion did, or why it did nothing.
#[derive(Debug, Clone, Default)]
pub struct Promoted {
    /// One line per file copied (`bookworm-updates: pool/main/g/greet/greet_1.1_amd64.deb`).
    pub copied: Vec<String>,
    /// Unsatisfied relations (`bookworm-updates: greet-user: greet (>= 1.1)`); non-empty and
    /// not forced means nothing was promoted.
    pub missing: Vec<String>,
    /// The tree's state after the promotion (absent when refused).
    pub published: Option<Published>,
}

impl Publisher<'_> {
    /// Promotes `p` (see the module's documentation).
    pub fn promote(&self, p: &Promotion) -> Result<Promoted, PublishError> {
        let release = self.release(&p.customer, &p.version)?;
        let suites = &self.farm.publish.suites;
        for s in [&p.from, &p.to] {
            if !suites.contains(s) {
                return Err(PublishError::UnknownSuite {
                    suite: s.clone(),
                    suites: suites.clone(),
                });
            }
        }
        if p.from == p.to {
            return Err(PublishError::SameSuite);
        }
        let (tree, tree_name, lock) =
            self.trees()
                .lock_tree(&p.customer, &p.version, &Target::Release)?;
        let live = tree.current().map(|n| tree.generation(n)).ok_or_else(|| {
            PublishError::NothingPublished {
                tree: tree_name.clone(),
            }
        })?;
        let distros: Vec<(Family, String)> = release
            .distros()
            .filter(|(_, d)| p.distros.is_empty() || p.distros.iter().any(|w| w == d))
            .map(|(f, d)| (f, d.to_owned()))
            .collect();
        if let Some(unknown) = p
            .distros
            .iter()
            .find(|d| !distros.iter().any(|(_, have)| have == *d))
        {
            return Err(PublishError::UnknownDistro {
                distro: unknown.clone(),
                of: tree_name,
            });
        }

        let mut out = Promoted::default();
        let mut debs = Vec::new();
        let mut rpms = Vec::new();
        for (family, distro) in &distros {
            let (from, to) = (
                suite_name(distro, Some(&p.from)),
                suite_name(distro, Some(&p.to)),
            );
            match family {
                Family::Deb => {
                    let Some(sel) =
                        select_deb(&live, &from, &p.package, p.package_version.as_deref())?
                    else {
                        continue;
                    };
                    let missing = deb_missing(&live, distro, &to, &sel);
                    out.missing
                        .extend(missing.into_iter().map(|m| format!("{to}: {m}")));
                    debs.push((to, sel));
                }
                Family::Rpm => {
                    let Some(sel) =
                        select_rpm(&live, &from, &p.package, p.package_version.as_deref())?
                    else {
                        continue;
                    };
                    let missing = rpm_missing(&live, distro, &to, &sel)?;
                    out.missing
                        .extend(missing.into_iter().map(|m| format!("{to}: {m}")));
                    rpms.push((to, sel));
                }
            }
        }
        if debs.is_empty() && rpms.is_empty() {
            let found = whereabouts(&live, &distros, suites, p)?;
            return Err(not_in_from(
                p,
                release,
                &tree_name,
                &self.farm.publish.proposed,
                &found,
            ));
        }
        if !out.missing.is_empty() && !p.force {
            return Ok(out);
        }

        let (deb, deb_suites) = self.open_deb(
            &tree,
            &lock,
            &tree_name,
            &p.customer,
            &p.version,
            &Target::Release,
        )?;
        if let Some(repo) = &deb {
            let scratch = self.state_dir(&tree_name).join("promote");
            for (to, sel) in &debs {
                let _ = fs_err::remove_dir_all(&scratch);
                fs_err::create_dir_all(&scratch).map_err(io(&scratch))?;
                for component in COMPONENTS {
                    let mut binaries = Vec::new();
                    for (c, kind, rel) in sel.files.iter().filter(|(c, _, _)| c == component) {
                        let name = Path::new(rel).file_name().expect("a file name");
                        let dest = scratch.join(component).join(name);
                        link_or_copy(&live.join("deb").join(rel), &dest)?;
                        out.copied
                            .push(format!("{to}: {c}/{}", name.to_string_lossy()));
                        if *kind != "dsc" {
                            binaries.push(dest);
                            continue;
                        }
                        // The files the .dsc names lie beside it in the pool.
                        let dir = live
                            .join("deb")
                            .join(rel)
                            .parent()
                            .expect("in a directory")
                            .to_owned();
                        for part in dsc_files(&live.join("deb").join(rel)) {
                            link_or_copy(&dir.join(&part), &scratch.join(component).join(&part))?;
                        }
                        let (section, priority) = &sel.source_fields;
                        repo.include_source(to, component, &dest, section, priority)?;
                    }
                    if !binaries.is_empty() {
                        repo.include(to, Some(component), &binaries)?;
                    }
                }
            }
            let _ = fs_err::remove_dir_all(&scratch);
            let history = self.state_dir(&tree_name).join("history");
            crate::history::keep_every_version(&repo.dists(), &history, &deb_suites)
                .map_err(io(&history))?;
        }
        for (to, sel) in &rpms {
            let mut touched = BTreeSet::new();
            for (arch, rel) in &sel.files {
                let name = rel.file_name().expect("a file name");
                let public = PathBuf::from("rpm").join(to).join(arch);
                let dest = tree.pool().join(&public).join("Packages").join(name);
                if !dest.exists() {
                    link_or_copy_durable(&live.join(rel), &dest)?;
                }
                out.copied
                    .push(format!("{to}: {arch}/{}", name.to_string_lossy()));
                touched.insert(public);
            }
            for public in touched {
                crate::rpm::index(
                    &tree.pool().join(&public),
                    &self
                        .rpm_state(&tree_name)
                        .join(public.strip_prefix("rpm").expect("below rpm")),
                    self.farm.publish.command_deadline(),
                )?;
            }
        }
        out.published = Some(self.switch(
            &tree,
            &lock,
            tree_name,
            deb.as_ref(),
            &deb_suites,
            (&p.customer, &p.version, &Target::Release),
        )?);
        Ok(out)
    }
}
