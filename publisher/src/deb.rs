//! Debian repositories, maintained with reprepro: one reprepro database per customer and
//! version, one distribution per suite (`<distro>`, `<distro>-proposed`, …), components `main`
//! and `restricted`, udebs in each component's `debian-installer` index. reprepro signs
//! nothing: the publisher signs the final `Release` itself.
//!
//! Indexes are written plain and gzip-compressed (xz would triple the time of a publish into a
//! large repository for no gain to apt).
//!
//! Debian 12's reprepro (5.3.1) has no `Limit:` field, so its indexes hold the newest version
//! of each package; older versions stay in the pool (`--keepunreferencedfiles`) and
//! [`crate::history`] puts them back into the indexes.
//!
//! Every reprepro and dpkg-deb run has the deadline of `publish.command_timeout_secs`.
//! reprepro runs only while the publisher holds the tree's [`TreeLock`], so a `db/lockfile`
//! found then was left by a reprepro that was killed (a timeout, a crash) and is removed
//! when the repository is opened.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use perestroika_host::command::{self, CommandError, Deadline};
use tracing::warn;

use crate::tree::TreeLock;

/// The components of every suite.
pub const COMPONENTS: [&str; 2] = ["main", "restricted"];

/// reprepro failed or a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("reprepro {action} failed: {detail}")]
    Reprepro { action: String, detail: String },
    /// A tool could not be started or did not finish in time.
    #[error("{action}: {source}")]
    Command {
        action: String,
        #[source]
        source: CommandError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One release's reprepro repository: private database and unsigned indexes under `base`,
/// package files in the shared public pool under `out` (`out/pool/…`).
#[derive(Debug, Clone)]
pub struct DebRepo {
    base: PathBuf,
    /// The shared pool's `deb` directory (reprepro's `outdir`).
    out: PathBuf,
    deadline: Deadline,
}

impl DebError {
    /// Whether a tool ran out of time (the farm could not do it now; the files may be fine).
    pub fn is_timeout(&self) -> bool {
        matches!(self, DebError::Command { source, .. } if source.is_timeout())
    }
}

impl DebRepo {
    /// Writes reprepro's configuration for `suites` (each `(codename, description)`) and
    /// `architectures`; safe to call on every start. The tree's lock is held, so no reprepro
    /// runs on this database: a lock file reprepro left behind is stale and removed. Each
    /// reprepro run may take up to `deadline`.
    pub fn open(
        base: &Path,
        out: &Path,
        suites: &[String],
        architectures: &[String],
        origin: &str,
        deadline: Deadline,
        _lock: &TreeLock,
    ) -> Result<Self, DebError> {
        let stale = base.join("db").join("lockfile");
        if stale.exists() {
            fs_err::remove_file(&stale).map_err(|source| DebError::Io {
                path: stale.clone(),
                source,
            })?;
            warn!(path = %stale.display(), "removed reprepro's lock file left by a run that was killed (a timeout or a crash); no reprepro runs while the tree's lock is held");
        }
        let conf = base.join("conf");
        fs_err::create_dir_all(&conf).map_err(|source| DebError::Io {
            path: conf.clone(),
            source,
        })?;
        let mut text = String::new();
        let arches = architectures.join(" ");
        let components = COMPONENTS.join(" ");
        for suite in suites {
            text.push_str(&format!(
                "Origin: {origin}\nLabel: {origin}\nCodename: {suite}\nSuite: {suite}\n\
                 Architectures: {arches} source\nComponents: {components}\nUDebComponents: {components}\n\
                 DebIndices: Packages Release . .gz\nUDebIndices: Packages . .gz\n\
                 DscIndices: Sources Release . .gz\nDescription: {origin} {suite}\n\n"
            ));
        }
        let write = |name: &str, content: &str| {
            let path = conf.join(name);
            fs_err::write(&path, content).map_err(|source| DebError::Io { path, source })
        };
        write("distributions", &text)?;
        write(
            "options",
            &format!(
                "outdir {}\ndistdir {}\n",
                out.display(),
                base.join("dists").display()
            ),
        )?;
        Ok(Self {
            base: base.to_owned(),
            out: out.to_owned(),
            deadline,
        })
    }

    /// Where reprepro writes the (unsigned) indexes: `dists/<suite>/…`.
    pub fn dists(&self) -> PathBuf {
        self.base.join("dists")
    }

    fn run(&self, action: &str, args: &[&str]) -> Result<String, DebError> {
        let out = command::output(
            Command::new("reprepro")
                .arg("--basedir")
                .arg(&self.base)
                .args(["--keepunreferencedfiles"])
                .args(args),
            self.deadline,
        )
        .map_err(|source| DebError::Command {
            action: format!("reprepro {action}"),
            source,
        })?;
        if !out.status.success() {
            return Err(DebError::Reprepro {
                action: action.to_owned(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Includes packages into `suite`: `.deb` as debs, `.udeb` as udebs, `.dsc` with its
    /// files, and rewrites that suite's indexes. Without a `component`, each binary goes into
    /// the component its `Section` names as a prefix (`restricted/net`), else `main`, and the
    /// source into its first binary's.
    pub fn include(
        &self,
        suite: &str,
        component: Option<&str>,
        files: &[PathBuf],
    ) -> Result<(), DebError> {
        // One reprepro run per kind of file: reprepro takes many .debs or .udebs at once.
        let of_kind = |ext: &str| -> Vec<String> {
            files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == ext))
                .map(|f| f.to_string_lossy().into_owned())
                .collect()
        };
        let mut added = false;
        for (action, ext) in [("includedeb", "deb"), ("includeudeb", "udeb")] {
            let paths = of_kind(ext);
            if paths.is_empty() {
                continue;
            }
            added = true;
            let mut args = Vec::new();
            if let Some(c) = component {
                args.extend(["-C", c]);
            }
            args.extend([action, suite]);
            args.extend(paths.iter().map(String::as_str));
            self.run(action, &args)
                .map_err(|e| name_files(e, action, suite, &paths))?;
        }
        let dscs = of_kind("dsc");
        if !dscs.is_empty() {
            added = true;
            let component = match component {
                Some(c) => c,
                None => source_component(files, self.deadline)?,
            };
            for dsc in dscs {
                self.run("includedsc", &["-C", component, "includedsc", suite, &dsc])
                    .map_err(|e| name_files(e, "includedsc", suite, std::slice::from_ref(&dsc)))?;
            }
        }
        if added {
            self.sync_pool()?;
        }
        Ok(())
    }

    /// Makes the pool files reprepro added durable: reprepro (5.3.1) syncs its database but
    /// writes pool files (and the directories it makes for them) without fsync, so a power cut
    /// after a switch could leave the live indexes naming empty `.deb`s.
    ///
    /// One syncfs(2) on the pool's filesystem, rather than an fsync of each file added: the
    /// names are reprepro's (`pool/<component>/<prefix>/<source>/`, derived from the source
    /// package), so finding them again would mean re-deriving its layout or diffing indexes,
    /// while syncfs covers exactly what was written, however reprepro placed it, in one call.
    /// Its cost is whatever else is dirty on that filesystem: on the publisher's host, given a
    /// filesystem of its own, only the publisher's writes, which the switch that follows syncs
    /// anyway (measured in docs/benchmarks.md, "What durability costs").
    fn sync_pool(&self) -> Result<(), DebError> {
        perestroika_host::files::sync_filesystem(&self.out).map_err(|source| DebError::Io {
            path: self.out.clone(),
            source,
        })
    }

    /// Includes a source package whose section and priority are known from an index (a
    /// `.dsc` names neither; reprepro otherwise takes them from binaries included with it).
    pub fn include_source(
        &self,
        suite: &str,
        component: &str,
        dsc: &Path,
        section: &str,
        priority: &str,
    ) -> Result<(), DebError> {
        let dsc = dsc.to_string_lossy().into_owned();
        let mut args = vec!["-C", component];
        if !section.is_empty() {
            args.extend(["-S", section]);
        }
        if !priority.is_empty() {
            args.extend(["-P", priority]);
        }
        args.extend(["includedsc", suite, &dsc]);
        self.run("includedsc", &args)
            .map_err(|e| name_files(e, "includedsc", suite, std::slice::from_ref(&dsc)))?;
        self.sync_pool()
    }

    /// Writes the indexes (`dists/…`, unsigned) of suites that have none yet. Inclusion
    /// rewrites the indexes of the suite it changed by itself.
    pub fn export_missing(&self, suites: &[String]) -> Result<(), DebError> {
        if suites
            .iter()
            .all(|s| self.dists().join(s).join("Release").is_file())
        {
            return Ok(());
        }
        self.run("export", &["export"]).map(drop)
    }

    /// The pool files reprepro knows, as file keys (`pool/main/g/greet/greet_1.0_amd64.deb`):
    /// those its distributions refer to, and those no distribution does (kept by
    /// `--keepunreferencedfiles`: the older versions the publisher keeps in the indexes, or
    /// a review repository's earlier patch sets).
    pub fn pool_files(&self) -> Result<(BTreeSet<String>, BTreeSet<String>), DebError> {
        let referenced = self
            .run("dumpreferences", &["dumpreferences"])?
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        let unreferenced = self
            .run("dumpunreferenced", &["dumpunreferenced"])?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok((referenced, unreferenced))
    }

    /// Makes reprepro forget pool files no distribution refers to, before they are removed
    /// from disk: a file it still believed in would never be copied into the pool again,
    /// and an index would name a file that is not there.
    pub fn forget(&self, file_keys: &[String]) -> Result<(), DebError> {
        for chunk in file_keys.chunks(500) {
            let mut args = vec!["_forget"];
            args.extend(chunk.iter().map(String::as_str));
            self.run("_forget", &args)?;
        }
        Ok(())
    }
}

/// The component of a build's source package: the one the `Section` of its first binary names
/// as a prefix (`restricted/net` → `restricted`), `main` otherwise — the rule reprepro applies
/// to each binary package it is given without `-C`, as Debian writes `non-free/net`.
fn source_component(files: &[PathBuf], deadline: Deadline) -> Result<&'static str, DebError> {
    let first = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "deb"))
        .or_else(|| {
            files
                .iter()
                .find(|f| f.extension().is_some_and(|e| e == "udeb"))
        });
    let Some(first) = first else {
        return Ok(COMPONENTS[0]);
    };
    let out = command::output(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(first)
            .arg("Section"),
        deadline,
    )
    .map_err(|source| DebError::Command {
        action: format!("reading the section of {}", first.display()),
        source,
    })?;
    let section = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(COMPONENTS
        .iter()
        .copied()
        .find(|c| section.starts_with(&format!("{c}/")))
        .unwrap_or(COMPONENTS[0]))
}

/// Names the files of a failed inclusion in its error.
fn name_files(e: DebError, action: &str, suite: &str, paths: &[String]) -> DebError {
    match e {
        DebError::Reprepro { detail, .. } => {
            let names: Vec<&str> = paths
                .iter()
                .map(|p| p.rsplit('/').next().unwrap_or(p))
                .collect();
            DebError::Reprepro {
                action: format!("{action} {} into {suite}", names.join(" ")),
                detail,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn deadline() -> Deadline {
        Deadline::new(Duration::from_secs(60), "publish.command_timeout_secs")
    }

    /// A deb of one package, built with dpkg-deb.
    fn make_deb(dir: &Path) -> PathBuf {
        let root = dir.join("pkg");
        fs_err::create_dir_all(root.join("DEBIAN")).unwrap();
        fs_err::write(
            root.join("DEBIAN/control"),
            "Package: stale\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.invalid>\n\
             Section: misc\nPriority: optional\nDescription: a test package\n",
        )
        .unwrap();
        let deb = dir.join("stale_1.0_all.deb");
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&root)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        deb
    }

    /// reprepro killed mid-run leaves `db/lockfile`, which stops every later run; found while
    /// the tree's lock is held it is stale, and opening the repository clears it.
    #[test]
    fn a_lock_file_left_by_a_killed_reprepro_no_longer_stops_a_publish() {
        let dir = tempfile::tempdir().unwrap();
        let (base, out) = (dir.path().join("state"), dir.path().join("pool"));
        let suites = vec!["bookworm".to_owned()];
        let arches = vec!["amd64".to_owned()];
        let tree = crate::tree::Tree::new(dir.path(), "acme/9.0");
        let lock = tree.lock(&dir.path().join("tree.lock")).unwrap();
        let repo =
            DebRepo::open(&base, &out, &suites, &arches, "acme 9.0", deadline(), &lock).unwrap();
        repo.export_missing(&suites).unwrap();
        let stale = base.join("db/lockfile");
        fs_err::write(&stale, "").unwrap();
        let deb = make_deb(dir.path());
        // The leftover really stops reprepro.
        let refused = repo
            .include("bookworm", None, std::slice::from_ref(&deb))
            .unwrap_err();
        assert!(refused.to_string().contains("lock"), "{refused}");
        let repo =
            DebRepo::open(&base, &out, &suites, &arches, "acme 9.0", deadline(), &lock).unwrap();
        assert!(!stale.exists());
        repo.include("bookworm", None, &[deb]).unwrap();
        let packages =
            fs_err::read_to_string(repo.dists().join("bookworm/main/binary-amd64/Packages"))
                .unwrap();
        assert!(packages.contains("Package: stale\n"), "{packages}");
    }
}
