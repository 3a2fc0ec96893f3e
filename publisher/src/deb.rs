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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The components of every suite.
pub const COMPONENTS: [&str; 2] = ["main", "restricted"];

/// reprepro failed or a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("reprepro {action} failed: {detail}")]
    Reprepro { action: String, detail: String },
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
}

impl DebRepo {
    /// Writes reprepro's configuration for `suites` (each `(codename, description)`) and
    /// `architectures`; safe to call on every start.
    pub fn open(
        base: &Path,
        out: &Path,
        suites: &[String],
        architectures: &[String],
        origin: &str,
    ) -> Result<Self, DebError> {
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
        })
    }

    /// Where reprepro writes the (unsigned) indexes: `dists/<suite>/…`.
    pub fn dists(&self) -> PathBuf {
        self.base.join("dists")
    }

    fn run(&self, action: &str, args: &[&str]) -> Result<String, DebError> {
        let out = Command::new("reprepro")
            .arg("--basedir")
            .arg(&self.base)
            .args(["--keepunreferencedfiles"])
            .args(args)
            .output()
            .map_err(|e| DebError::Reprepro {
                action: action.to_owned(),
                detail: format!("cannot run reprepro: {e}"),
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
        for (action, ext) in [("includedeb", "deb"), ("includeudeb", "udeb")] {
            let paths = of_kind(ext);
            if paths.is_empty() {
                continue;
            }
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
            let component = match component {
                Some(c) => c,
                None => source_component(files)?,
            };
            for dsc in dscs {
                self.run("includedsc", &["-C", component, "includedsc", suite, &dsc])
                    .map_err(|e| name_files(e, "includedsc", suite, std::slice::from_ref(&dsc)))?;
            }
        }
        Ok(())
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
            .map(drop)
            .map_err(|e| name_files(e, "includedsc", suite, std::slice::from_ref(&dsc)))
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
fn source_component(files: &[PathBuf]) -> Result<&'static str, DebError> {
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
    let out = Command::new("dpkg-deb")
        .arg("--field")
        .arg(first)
        .arg("Section")
        .output()
        .map_err(|source| DebError::Io {
            path: first.clone(),
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
