//! One publish: check the staged files against their checksums, include them, write the next
//! generation of the public tree (indexes with by-hash copies, signed `Release`, the public
//! key), and switch it live. Running the same publish twice changes nothing the second time.

use std::path::{Path, PathBuf};

use perestroika_config::{Family, FarmConfig, Release};
use perestroika_protocol::messages::{review_tree_customer, Target};

use crate::deb::{DebError, DebRepo};
use crate::release_file::{by_hash_path, with_acquire_by_hash};
use crate::rpm::{self, RpmError};
use crate::signing::{SignError, Signer};
use crate::tree::{Tree, TreeError, TreeLock};
use perestroika_formats::release_index::{read_index, sha256_entries, stanzas, Stanza};

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{name}: checksum differs from the job's manifest (expected sha256 {expected}, found {found}); nothing was published")]
    Checksum {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{name}: missing from the staging directory {dir}")]
    Missing { name: String, dir: PathBuf },
    #[error("{0}")]
    Refused(String),
    #[error("the review repository {tree} was retired (its change was merged, abandoned or deleted); a late build of it is not published")]
    Retired { tree: String },
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Rpm(#[from] RpmError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PublishError {
    /// Whether a tool or a signature ran out of `publish.command_timeout_secs`: the farm could
    /// not do it now, and the job is tried again rather than refused.
    pub fn is_timeout(&self) -> bool {
        match self {
            PublishError::Deb(e) => e.is_timeout(),
            PublishError::Rpm(e) => e.is_timeout(),
            PublishError::Sign(e) => e.is_timeout(),
            _ => false,
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub customer: String,
    pub version: String,
    pub distro: String,
    pub target: Target,
    /// Verified files: .deb, .udeb, .dsc (with its tarballs beside it); others are ignored.
    pub files: Vec<PathBuf>,
    /// The build log to publish as `logs/<job id>.log`, if any.
    pub log: Option<(String, PathBuf)>,
    /// When the build was asked for, if known (see [`PublishError::Retired`]).
    pub requested_at: Option<chrono::DateTime<chrono::Utc>>,
}

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

/// Publishes into one farm's public tree with one signer.
pub struct Publisher<'a> {
    pub farm: &'a FarmConfig,
    pub signer: &'a Signer,
}

impl Publisher<'_> {
    /// The public tree a target publishes into, and its path relative to the public root.
    pub fn tree(&self, customer: &str, version: &str, target: &Target) -> (Tree, String) {
        let path = target.tree(customer, version);
        let (parent, name) = path
            .rsplit_once('/')
            .expect("a tree lies below its customer");
        let tree = Tree::new(&self.farm.paths.public_root.join(parent), name);
        (tree, path)
    }

    /// The tree a target publishes into, locked against every other writer (see
    /// [`Tree::lock`]) until the returned lock is dropped: the one way into a tree for
    /// writing, so publishes, failed builds' logs, promotions and retirements of one tree —
    /// from any release's queue or process — never interleave.
    pub fn lock_tree(
        &self,
        customer: &str,
        version: &str,
        target: &Target,
    ) -> Result<(Tree, String, TreeLock), PublishError> {
        let (tree, name) = self.tree(customer, version, target);
        let lock = tree.lock(&self.lock_path(&name))?;
        Ok((tree, name, lock))
    }

    /// Where the lock of the tree `name` (relative to the public root) is kept: in the
    /// publisher's state, not in the public tree the mirrors copy.
    fn lock_path(&self, name: &str) -> PathBuf {
        self.farm
            .paths
            .state
            .join("publisher/locks")
            .join(format!("{name}.lock"))
    }

    /// The releases whose repositories a tree holds: a topic's changes may sit on several
    /// releases' branches, so its tree holds every release of the customer (a generation
    /// written for one keeps the suites of the others); any other tree holds one release.
    fn tree_releases(
        &self,
        customer: &str,
        version: &str,
        target: &Target,
    ) -> Result<Vec<&Release>, PublishError> {
        let release = self.release(customer, version)?;
        Ok(match (target, self.farm.customer(customer)) {
            (Target::Topic { .. }, Some(c)) => c.versions.iter().collect(),
            _ => vec![release],
        })
    }

    /// A release of the configuration; refused when it is not there.
    pub(crate) fn release(&self, customer: &str, version: &str) -> Result<&Release, PublishError> {
        self.farm.release(customer, version).ok_or_else(|| {
            PublishError::Refused(format!("{customer} {version} is not in the configuration"))
        })
    }

    /// Every deb suite of the distros of a tree's releases: `<distro>` and `<distro>-<suite>`.
    fn deb_suites(&self, releases: &[&Release]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let distros = releases.iter().flat_map(|r| r.distros());
        for (family, distro) in distros {
            if family == Family::Deb && !out.iter().any(|s| s == distro) {
                out.push(distro.to_owned());
                out.extend(
                    self.farm
                        .publish
                        .suites
                        .iter()
                        .map(|s| format!("{distro}-{s}")),
                );
            }
        }
        out
    }

    /// The suite a merge publishes into: the release itself in development, `proposed` once
    /// it is in maintenance. Review repositories use the distro's own suite.
    pub fn suite_for(
        &self,
        customer: &str,
        version: &str,
        distro: &str,
        target: &Target,
    ) -> String {
        match target {
            Target::Release => self.farm.merge_suite(customer, version, distro),
            _ => distro.to_owned(),
        }
    }

    pub(crate) fn state_dir(&self, tree: &str) -> PathBuf {
        self.farm.paths.state.join("publisher/deb").join(tree)
    }

    /// The mark a retired review repository leaves (holding the retirement's time), so that a
    /// build of its change asked for before the retirement but finishing after it does not
    /// bring the repository back.
    fn retired_mark(&self, tree: &str) -> PathBuf {
        self.farm.paths.state.join("publisher/retired").join(tree)
    }

    /// Refuses a build asked for before its review repository was retired. A build asked for
    /// later (the change was restored), or at an unknown time (by hand), starts the repository
    /// afresh and clears the mark.
    fn check_not_retired(
        &self,
        tree: &str,
        requested_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), PublishError> {
        let mark = self.retired_mark(tree);
        let Ok(text) = fs_err::read_to_string(&mark) else {
            return Ok(());
        };
        let retired = chrono::DateTime::parse_from_rfc3339(text.trim()).ok();
        if let (Some(asked), Some(retired)) = (requested_at, retired) {
            if asked <= retired {
                return Err(PublishError::Retired {
                    tree: tree.to_owned(),
                });
            }
        }
        fs_err::remove_file(&mark).map_err(io(&mark))
    }

    /// Takes down the review repository of a change with its private state. Returns the
    /// tree's path relative to the public root, and whether there was anything to remove.
    pub fn retire_review(
        &self,
        customer: &str,
        change: u64,
        requested_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, bool), PublishError> {
        let target = Target::Review { change };
        let (tree, tree_name, lock) = self.lock_tree(customer, "", &target)?;
        let mark = self.retired_mark(&tree_name);
        fs_err::create_dir_all(mark.parent().expect("below the state")).map_err(io(&mark))?;
        perestroika_host::files::write_durable(&mark, requested_at.to_rfc3339().as_bytes())
            .map_err(io(&mark))?;
        let mut found = tree.remove(&lock)?;
        // The change may come back (a tree of the same name starts afresh and locks anew).
        lock.remove_file();
        for state in [self.state_dir(&tree_name), self.rpm_state(&tree_name)] {
            if state.exists() {
                fs_err::remove_dir_all(&state).map_err(io(&state))?;
                found = true;
            }
        }
        Ok((tree_name, found))
    }

    /// Includes the files and switches the tree to a new generation if anything changed.
    pub fn publish(&self, req: &PublishRequest) -> Result<Published, PublishError> {
        let release = self.release(&req.customer, &req.version)?;
        let family = release.family_of(&req.distro).ok_or_else(|| {
            PublishError::Refused(format!(
                "{} is not a distro of {} {}",
                req.distro, req.customer, req.version
            ))
        })?;
        let (tree, tree_name, lock) = self.lock_tree(&req.customer, &req.version, &req.target)?;
        self.check_not_retired(&tree_name, req.requested_at)?;
        let (deb, deb_suites) = self.open_deb(
            &tree,
            &lock,
            &tree_name,
            &req.customer,
            &req.version,
            &req.target,
        )?;
        let suite = self.suite_for(&req.customer, &req.version, &req.distro, &req.target);
        match (family, &deb) {
            (Family::Deb, Some(repo)) => {
                repo.include(&suite, None, &req.files)?;
                crate::crash::point("included");
                repo.export_missing(&deb_suites)?;
                // A release keeps every version; a review repository shows its change's
                // latest patch set only (reprepro's indexes name the newest version).
                if req.target == Target::Release {
                    let history = self.state_dir(&tree_name).join("history");
                    crate::history::keep_every_version(&repo.dists(), &history, &deb_suites)
                        .map_err(io(&history))?;
                }
                crate::crash::point("exported");
            }
            _ => {
                self.include_rpms(&tree, &tree_name, &release.arches, &suite, &req.files)?;
                crate::crash::point("included");
            }
        }
        if let Some((job_id, log)) = &req.log {
            keep_log(&tree.pool().join("logs"), job_id, log)?;
        }
        self.switch(
            &tree,
            &lock,
            tree_name,
            deb.as_ref(),
            &deb_suites,
            (&req.customer, &req.version, &req.target),
        )
    }

    /// Publishes the log of a failed build into the tree its build was for, as
    /// `logs/<job id>.log`, in a generation of its own so that the mirrors carry it too; the
    /// repositories stay as they were. A tree that has no generation yet (a change's first
    /// patch set failed) gets one with empty signed indexes. A log already published (a job
    /// redelivered, or asked for again) changes nothing.
    pub fn publish_log(
        &self,
        customer: &str,
        version: &str,
        target: &Target,
        job_id: &str,
        log: &Path,
        requested_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Published, PublishError> {
        self.release(customer, version)?;
        if !log.is_file() {
            return Err(PublishError::Refused(format!(
                "the failed build left no log at {}",
                log.display()
            )));
        }
        let (tree, tree_name, lock) = self.lock_tree(customer, version, target)?;
        self.check_not_retired(&tree_name, requested_at)?;
        let logs = tree.pool().join("logs");
        // Published already when the live generation was written after the log was kept (a
        // publisher that stopped in between makes the generation on the job's redelivery).
        let modified = |p: PathBuf| fs_err::metadata(p).and_then(|m| m.modified()).ok();
        if let Some(current) = tree.current() {
            let kept = modified(logs.join(format!("{job_id}.log")));
            let written = modified(tree.generation(current).join("snapshot.json"));
            if let (Some(kept), Some(written)) = (kept, written) {
                if kept <= written {
                    return Ok(Published {
                        tree: tree_name,
                        generation: current,
                        changed: false,
                    });
                }
            }
        }
        let (deb, deb_suites) =
            self.open_deb(&tree, &lock, &tree_name, customer, version, target)?;
        if let Some(repo) = &deb {
            repo.export_missing(&deb_suites)?;
        }
        keep_log(&logs, job_id, log)?;
        let rpm_repos = self.rpm_repos(
            &tree,
            &tree_name,
            &self.tree_releases(customer, version, target)?,
        );
        let generation = self.write_generation(
            &tree,
            &tree_name,
            &lock,
            deb.as_ref(),
            &deb_suites,
            &rpm_repos,
        )?;
        Ok(Published {
            tree: tree_name,
            generation,
            changed: true,
        })
    }

    /// The deb repository of a tree (none when the release has no deb distro), and its suites.
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
        Ok((deb, deb_suites))
    }

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
                same_indexes(&repo.dists(), &generation.join("deb/dists"), deb_suites)
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

    pub(crate) fn rpm_state(&self, tree: &str) -> PathBuf {
        self.farm.paths.state.join("publisher/rpm").join(tree)
    }

    /// Every rpm repository (`<suite>/<arch>`) of a tree's releases, with where its index is
    /// kept.
    fn rpm_repos(&self, tree: &Tree, tree_name: &str, releases: &[&Release]) -> Vec<RpmRepo> {
        let mut out: Vec<RpmRepo> = Vec::new();
        for release in releases {
            self.release_rpm_repos(tree, tree_name, release, &mut out);
        }
        out
    }

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
                    .map(|s| format!("{distro}-{s}")),
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
    fn include_rpms(
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
                    return Err(PublishError::Refused(format!(
                        "{}: architecture {a} is not one of the release's ({})",
                        file.display(),
                        arches.join(", ")
                    )))
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

    /// What signs a tree: the review key for review and topic repositories (when configured),
    /// the release's keys otherwise.
    fn signer_for(&self, tree_name: &str) -> &Signer {
        match review_tree_customer(tree_name) {
            Some(customer) => self.signer.for_review(customer),
            None => self.signer,
        }
    }

    /// Signs a release's deb indexes again (a new generation, same contents) when less than
    /// half of their validity (`publish.valid_for_secs`) is left, or they have none. Returns
    /// the new generation, or `None` when nothing was due.
    pub fn refresh_signatures(
        &self,
        customer: &str,
        version: &str,
    ) -> Result<Option<Published>, PublishError> {
        self.release(customer, version)?;
        let Some(valid_for) = self.valid_for() else {
            return Ok(None);
        };
        let (tree, tree_name, lock) = self.lock_tree(customer, version, &Target::Release)?;
        let Some(current) = tree.current() else {
            return Ok(None);
        };
        let (deb, deb_suites) = self.open_deb(
            &tree,
            &lock,
            &tree_name,
            customer,
            version,
            &Target::Release,
        )?;
        let Some(repo) = deb else {
            return Ok(None);
        };
        let now = chrono::Utc::now();
        let dists = tree.generation(current).join("deb/dists");
        let due = deb_suites.iter().any(|suite| {
            fs_err::read_to_string(dists.join(suite).join("Release"))
                .ok()
                .is_some_and(|release| {
                    crate::release_file::valid_until(&release)
                        .is_none_or(|until| until - now <= valid_for / 2)
                })
        });
        if !due {
            return Ok(None);
        }
        let rpm_repos = self.rpm_repos(
            &tree,
            &tree_name,
            &self.tree_releases(customer, version, &Target::Release)?,
        );
        let generation = self.write_generation(
            &tree,
            &tree_name,
            &lock,
            Some(&repo),
            &deb_suites,
            &rpm_repos,
        )?;
        Ok(Some(Published {
            tree: tree_name,
            generation,
            changed: true,
        }))
    }

    /// How long signed deb indexes of a release are valid; `None` when they carry no
    /// `Valid-Until`.
    fn valid_for(&self) -> Option<chrono::Duration> {
        let secs = self.farm.publish.valid_for_secs;
        (secs > 0).then(|| chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))
    }

    fn write_generation(
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
        let key = dir.join("KEY.asc");
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
            .filter(|g| fs_err::read(g.join("KEY.asc")).is_ok_and(|k| k == public))
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
        let record = dir.join("snapshot.json");
        fs_err::write(&record, serde_json::to_vec_pretty(&snapshot).expect("json"))
            .map_err(io(&record))?;
        crate::crash::point("generation-written");
        tree.commit(n, lock)?;
        crate::crash::point("switched");
        crate::retention::after_switch(self, tree, tree_name, lock, deb);
        Ok(n)
    }

    fn write_rpm(
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

    fn write_deb(
        &self,
        signing: &Signing<'_>,
        tree: &Tree,
        dir: &Path,
        repo: &DebRepo,
        suites: &[String],
        previous_gens: &[PathBuf],
    ) -> Result<(), PublishError> {
        let now = chrono::Utc::now();
        let dists = dir.join("deb/dists");
        link_dir(&repo.dists(), &dists)?;
        let previous: Vec<PathBuf> = previous_gens.iter().map(|g| g.join("deb/dists")).collect();
        for suite in suites {
            let suite_dir = dists.join(suite);
            let release_path = suite_dir.join("Release");
            let Ok(release) = fs_err::read_to_string(&release_path) else {
                continue;
            };
            for entry in sha256_entries(&release) {
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
                for entry in sha256_entries(&old_release) {
                    let from = by_hash_path(&old_suite, &entry);
                    let to = by_hash_path(&suite_dir, &entry);
                    if from.is_file() && !to.exists() {
                        link_or_copy(&from, &to)?;
                    }
                }
            }
            let mut signed = with_acquire_by_hash(&release);
            if let Some(valid_for) = signing.valid_for {
                let published = signing.same_keys.and_then(|g| {
                    fs_err::read_to_string(g.join("deb/dists").join(suite).join("Release")).ok()
                });
                signed = crate::release_file::dated(&signed, published.as_deref(), valid_for, now);
            }
            // A new file, not a rewrite: the Release may share its inode with reprepro's.
            let _ = fs_err::remove_file(&release_path);
            fs_err::write(&release_path, &signed).map_err(io(&release_path))?;
            self.write_signatures(
                signing.signer,
                dir,
                signing.same_keys,
                &Path::new("deb/dists").join(suite).join("Release"),
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

/// How a generation's deb indexes are signed.
struct Signing<'a> {
    signer: &'a Signer,
    /// The newest generation signed with the same keys (its signatures may be reused).
    same_keys: Option<&'a Path>,
    /// `Valid-Until` after the signing time, for a release's indexes.
    valid_for: Option<chrono::Duration>,
}

/// A signature the publisher writes beside a signed file.
#[derive(Debug, Clone, Copy)]
enum Signature {
    /// The file with its signature inline (`InRelease`).
    Inline,
    /// A detached armored signature (`Release.gpg`, `repomd.xml.asc`).
    Detached,
}

impl Publisher<'_> {
    /// Writes the signatures of `data`, the file at `file` in the generation `dir`, beside it.
    /// Where `same_keys` (a generation signed with the same keys) signed the very same bytes,
    /// its signatures are linked: most suites and repositories of a release do not change in
    /// one publish. Otherwise they are made anew, side by side.
    fn write_signatures(
        &self,
        signer: &Signer,
        dir: &Path,
        same_keys: Option<&Path>,
        file: &Path,
        data: &[u8],
        signatures: &[(&str, Signature)],
    ) -> Result<(), PublishError> {
        let beside = |generation: &Path, name: &str| {
            generation
                .join(file)
                .parent()
                .expect("a file in a directory")
                .join(name)
        };
        if let Some(old) = same_keys {
            let signed_before = fs_err::read(old.join(file)).is_ok_and(|d| d == data)
                && signatures.iter().all(|(n, _)| beside(old, n).is_file());
            if signed_before {
                for (name, _) in signatures {
                    link_or_copy(&beside(old, name), &beside(dir, name))?;
                }
                return Ok(());
            }
        }
        for (name, kind) in signatures {
            let signature = match kind {
                Signature::Inline => signer.clearsign(data)?,
                Signature::Detached => signer.detach_sign(data)?,
            };
            let path = beside(dir, name);
            fs_err::write(&path, signature).map_err(io(&path))?;
        }
        Ok(())
    }
}

/// One rpm repository of a tree: `<suite>/<arch>`.
#[derive(Debug, Clone)]
struct RpmRepo {
    /// Path within a generation: `rpm/<suite>/<arch>`.
    public: PathBuf,
    /// The shared pool directory holding `Packages/`.
    pool: PathBuf,
    /// Where createrepo_c keeps this repository's `repodata/`.
    output: PathBuf,
}

/// Whether every suite's unsigned indexes equal those of a published generation.
fn same_indexes(fresh: &Path, published: &Path, suites: &[String]) -> bool {
    suites.iter().all(|suite| {
        let read = |base: &Path| fs_err::read_to_string(base.join(suite).join("Release")).ok();
        match (read(fresh), read(published)) {
            (Some(a), Some(b)) => sha256_entries(&a) == sha256_entries(&b),
            _ => false,
        }
    })
}

/// Puts a build's log into the pool's `logs/` as `<job id>.log`, whole (copied beside, then
/// renamed) or not at all, and durable (before the generation that links `logs/` is switched
/// live). Like every pool file it is never rewritten: a job redone (a redelivery, a recheck of
/// the same sources) keeps the log first published, which is also the one the mirrors have.
fn keep_log(logs: &Path, job_id: &str, log: &Path) -> Result<(), PublishError> {
    use perestroika_host::files::{create_dir_durable, sync_dir, sync_file};
    let dest = logs.join(format!("{job_id}.log"));
    if !log.is_file() || dest.exists() {
        return Ok(());
    }
    create_dir_durable(logs).map_err(io(logs))?;
    let part = logs.join(format!(".{job_id}.log.tmp"));
    fs_err::copy(log, &part).map_err(io(&part))?;
    sync_file(&part).map_err(io(&part))?;
    fs_err::rename(&part, &dest).map_err(io(&dest))?;
    sync_dir(logs).map_err(io(logs))
}

pub(crate) fn link_or_copy(from: &Path, to: &Path) -> Result<(), PublishError> {
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).map_err(io(parent))?;
    }
    if fs_err::hard_link(from, to).is_err() {
        fs_err::copy(from, to).map_err(io(to))?;
    }
    Ok(())
}

/// [`link_or_copy`] into the pool: the new name (and a copy's content) on disk before a
/// generation naming it can be switched live.
pub(crate) fn link_or_copy_durable(from: &Path, to: &Path) -> Result<(), PublishError> {
    use perestroika_host::files::{create_dir_durable, sync_dir, sync_file};
    if let Some(parent) = to.parent() {
        create_dir_durable(parent).map_err(io(parent))?;
    }
    link_or_copy(from, to)?;
    sync_file(to).map_err(io(to))?;
    let dir = to.parent().expect("a file in a directory");
    sync_dir(dir).map_err(io(dir))
}

fn link_dir(from: &Path, to: &Path) -> Result<(), PublishError> {
    fs_err::create_dir_all(to).map_err(io(to))?;
    for entry in fs_err::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io(&src))?.is_dir() {
            link_dir(&src, &dst)?;
        } else if fs_err::hard_link(&src, &dst).is_err() {
            // reprepro and the history step replace indexes by renaming new files over them,
            // so a generation can share the inode; a copy where linking is not possible.
            fs_err::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

/// Every stanza of a suite's indexes of one kind: `Packages` (debs and udebs) or `Sources`,
/// with the component each came from.
pub(crate) fn suite_stanzas(
    generation: &Path,
    suite: &str,
    sources: bool,
) -> Vec<(String, &'static str, Stanza)> {
    let mut out = Vec::new();
    let suite_dir = generation.join("deb/dists").join(suite);
    for component in crate::deb::COMPONENTS {
        let dir = suite_dir.join(component);
        if sources {
            if let Some(text) = read_index(&dir.join("source/Sources")) {
                out.extend(
                    stanzas(&text)
                        .into_iter()
                        .map(|s| (component.to_owned(), "dsc", s)),
                );
            }
            continue;
        }
        for (sub, kind) in [(dir.clone(), "deb"), (dir.join("debian-installer"), "udeb")] {
            let Ok(entries) = fs_err::read_dir(&sub) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("binary-") {
                    continue;
                }
                if let Some(text) = read_index(&entry.path().join("Packages")) {
                    out.extend(
                        stanzas(&text)
                            .into_iter()
                            .map(|s| (component.to_owned(), kind, s)),
                    );
                }
            }
        }
    }
    out
}

/// `component package version architecture` of every binary package a generation's deb suite
/// indexes (debs and udebs), read from its `Packages` files.
pub fn deb_contents(generation: &Path, suite: &str) -> Vec<String> {
    let field = |s: &Stanza, name: &str| s.get(name).cloned().unwrap_or_default();
    let mut out: Vec<String> = suite_stanzas(generation, suite, false)
        .into_iter()
        .filter(|(_, _, s)| s.contains_key("Package"))
        .map(|(component, _, s)| {
            format!(
                "{component} {} {} {}",
                field(&s, "Package"),
                field(&s, "Version"),
                field(&s, "Architecture")
            )
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_log_is_whole_and_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, staged) = (dir.path().join("pool/logs"), dir.path().join("build.log"));
        fs_err::write(&staged, "first build\n").unwrap();
        keep_log(&logs, "job1", &staged).unwrap();
        fs_err::write(&staged, "the same job, built again\n").unwrap();
        keep_log(&logs, "job1", &staged).unwrap();
        let read = |name: &str| fs_err::read_to_string(logs.join(name)).unwrap();
        assert_eq!(read("job1.log"), "first build\n");
        keep_log(&logs, "job2", &staged).unwrap();
        assert_eq!(read("job2.log"), "the same job, built again\n");
        // No partial copy is left, and a job without a log adds nothing.
        keep_log(&logs, "job3", &dir.path().join("missing.log")).unwrap();
        let mut names: Vec<String> = fs_err::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["job1.log", "job2.log"]);
    }
}
