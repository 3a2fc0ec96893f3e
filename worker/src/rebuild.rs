//! Rebuilding a release snapshot from its own source packages, with nothing but that snapshot
//! (the build dependencies' only repository besides the base) and the distro's base image:
//! the proof that a release is self-contained and reproducible.
//!
//! Every source package of the snapshot's suite of a distro (the newest version of each) is
//! built from its published `.dsc` or `.src.rpm` into a scratch directory, one after the
//! other, and each binary package made is compared with the published file of the same name:
//! debs byte for byte, rpms by their header digest (which covers the payload: the publisher's
//! signature is the one part a rebuild cannot make).

use perestroika_tree::{Generation, GenerationDir, PublicTree};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perestroika_config::Family;
use perestroika_formats::release_index::{read_index, stanzas};
use perestroika_protocol::messages::BuildOutcome;
use regex::Regex;
use serde::Serialize;

use crate::build::{self, BuildEnv, BuildRequest, InfraError};
use crate::rpm_source::query;
use crate::source::SourceInput;
use crate::version::DebVersion;

/// A snapshot cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("{customer} {version} has no published tree at {path} (nothing was published yet?)")]
    NoTree {
        customer: String,
        version: String,
        path: PathBuf,
    },
    #[error("snapshot {snapshot} of {customer} {version} does not exist (see `perestroika-publisher snapshot list {customer} {version}`)")]
    NoSnapshot {
        customer: String,
        version: String,
        snapshot: u64,
    },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// A published source package to rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceToRebuild {
    pub name: String,
    pub version: String,
    /// Its `.dsc` or `.src.rpm`.
    pub file: PathBuf,
}

/// What became of one source package.
#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    pub source: String,
    pub version: String,
    pub distro: String,
    #[serde(flatten)]
    pub outcome: Rebuilt,
    /// Where the rebuild's files, log and record are.
    pub out_dir: PathBuf,
}

/// A rebuild's outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Rebuilt {
    /// Built; `identical` when every binary package equals the published one byte for byte.
    Succeeded {
        identical: bool,
        /// Binary packages whose bytes differ from the published ones.
        differing: Vec<String>,
        /// Binary packages the rebuild made that the snapshot does not hold, or the reverse.
        unmatched: Vec<String>,
    },
    /// Not built: the step, the log's reason, and the build dependencies the release lacks.
    Failed {
        step: String,
        reason: String,
        missing: Vec<String>,
    },
}

/// The generation directory of snapshot `snapshot` (default: the live one) of a release, and
/// its number.
pub fn snapshot_dir(
    public_root: &Path,
    customer: &str,
    version: &str,
    snapshot: Option<u64>,
) -> Result<(u64, PathBuf), RebuildError> {
    let tree = PublicTree::in_dir(&public_root.join(customer), version);
    let number = match snapshot {
        Some(n) => Generation(n),
        None => tree.live_generation().map_err(|_| RebuildError::NoTree {
            customer: customer.to_owned(),
            version: version.to_owned(),
            path: tree.live(),
        })?,
    };
    let dir = tree.generation(number);
    if !GenerationDir::new(&dir).record().is_file() {
        return Err(RebuildError::NoSnapshot {
            customer: customer.to_owned(),
            version: version.to_owned(),
            snapshot: number.get(),
        });
    }
    let number = number.get();
    Ok((number, dir))
}

/// The newest version of every source package in the snapshot's `distro` suite.
pub fn sources_of(snapshot: &Path, distro: &str) -> Vec<SourceToRebuild> {
    let generation = GenerationDir::new(snapshot);
    let mut newest: BTreeMap<String, (DebVersion, SourceToRebuild)> = BTreeMap::new();
    for component in generation.deb_components(distro) {
        let Some(text) = read_index(&generation.deb_sources(distro, &component)) else {
            continue;
        };
        for stanza in stanzas(&text) {
            let (Some(name), Some(version), Some(dir), Some(files)) = (
                stanza.get("Package"),
                stanza.get("Version"),
                stanza.get("Directory"),
                stanza.get("Files"),
            ) else {
                continue;
            };
            let Some(dsc) = files
                .lines()
                .filter_map(|l| l.split_whitespace().nth(2))
                .find(|f| f.ends_with(".dsc"))
            else {
                continue;
            };
            let Some(parsed) = DebVersion::parse(version) else {
                continue;
            };
            let candidate = SourceToRebuild {
                name: name.clone(),
                version: version.clone(),
                file: snapshot.join("deb").join(dir).join(dsc),
            };
            let newer = newest
                .get(name)
                .is_none_or(|(v, _)| crate::version::compare(&parsed, v).is_gt());
            if newer {
                newest.insert(name.clone(), (parsed, candidate));
            }
        }
    }
    newest.into_values().map(|(_, s)| s).collect()
}

/// The newest version of every source rpm in the snapshot's `distro` repository.
pub fn rpm_sources_of(snapshot: &Path, distro: &str) -> Vec<SourceToRebuild> {
    let dir = snapshot.join("rpm").join(distro).join("source/Packages");
    let mut newest: BTreeMap<String, SourceToRebuild> = BTreeMap::new();
    for entry in fs_err::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".src.rpm") {
            continue;
        }
        let Ok(nevr) = query(&path, "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}") else {
            continue;
        };
        let Some((name, evr)) = nevr.split_once(' ') else {
            continue;
        };
        let evr = evr.strip_prefix("0:").unwrap_or(evr).to_owned();
        let newer = newest
            .get(name)
            .is_none_or(|s| crate::version::rpm_compare(&evr, &s.version).is_gt());
        if newer {
            newest.insert(
                name.to_owned(),
                SourceToRebuild {
                    name: name.to_owned(),
                    version: evr,
                    file: path,
                },
            );
        }
    }
    newest.into_values().collect()
}

/// Every binary rpm of the snapshot's `distro` repositories, by file name, with its header
/// digest.
pub fn published_rpms(snapshot: &Path, distro: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let repos = snapshot.join("rpm").join(distro);
    for arch in fs_err::read_dir(&repos).into_iter().flatten().flatten() {
        if arch.file_name() == "source" {
            continue;
        }
        for entry in fs_err::read_dir(arch.path().join("Packages"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(digest) = query(&entry.path(), "%{SHA256HEADER}") {
                out.insert(name, digest);
            }
        }
    }
    out
}

/// Every binary package file of the snapshot's `distro` suite, by file name, with its sha256.
pub fn published_binaries(snapshot: &Path, distro: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let generation = GenerationDir::new(snapshot);
    let mut indexes = Vec::new();
    for component in generation.deb_components(distro) {
        let component = generation.deb_suite(distro).join(component);
        for arch in fs_err::read_dir(&component).into_iter().flatten().flatten() {
            indexes.push(arch.path().join("Packages"));
            // udebs live below debian-installer/.
            for sub in fs_err::read_dir(arch.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                indexes.push(sub.path().join("Packages"));
            }
        }
    }
    for index in indexes {
        let Some(text) = read_index(&index) else {
            continue;
        };
        for stanza in stanzas(&text) {
            if let (Some(file), Some(sum)) = (stanza.get("Filename"), stanza.get("SHA256")) {
                let name = file.rsplit('/').next().unwrap_or(file).to_owned();
                out.insert(name, sum.clone());
            }
        }
    }
    out
}

/// The build dependencies a failed build could not find, by name, from apt's words.
pub fn missing_dependencies(reason: &str) -> Vec<String> {
    let patterns = [
        r"Unable to locate package (\S+)",
        r"Depends: (\S+)(?: \([^)]*\))? but it is not (?:installable|going to be installed)",
        r"No matching package to install: '([^']+)'",
    ];
    let mut out = Vec::new();
    for p in patterns {
        let re = Regex::new(p).expect("valid regex");
        for c in re.captures_iter(reason) {
            let name = c[1].to_owned();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Rebuilds every source package of the snapshot's `family` repository of `distro` into
/// `out`, reporting each as it finishes through `progress`.
pub async fn rebuild(
    env: &BuildEnv,
    snapshot: &Path,
    family: Family,
    distro: &str,
    base_digest: Option<&str>,
    out: &Path,
    mut progress: impl FnMut(&PackageReport),
) -> Result<Vec<PackageReport>, RebuildError> {
    let (sources, published) = match family {
        Family::Deb => (
            sources_of(snapshot, distro),
            published_binaries(snapshot, distro),
        ),
        Family::Rpm => (
            rpm_sources_of(snapshot, distro),
            published_rpms(snapshot, distro),
        ),
    };
    let mut reports = Vec::new();
    for source in sources {
        let out_dir = out.join(format!("{}_{}", source.name, source.version));
        let _ = fs_err::remove_dir_all(&out_dir);
        let input = match family {
            Family::Deb => SourceInput::Dsc(source.file.clone()),
            Family::Rpm => SourceInput::Srpm(source.file.clone()),
        };
        let req = BuildRequest {
            job_id: format!(
                "rebuild-{}-{}-{}",
                std::process::id(),
                source.name,
                source.version.replace([':', '~', '+', '^'], "_")
            ),
            input,
            distro: distro.to_owned(),
            family: Some(family),
            dep_repos: vec![crate::build::DepRepo::new(snapshot, distro)],
            base_digest: base_digest.map(str::to_owned),
            out_dir: out_dir.clone(),
            echo: false,
        };
        let result = build::run(env, &req).await?.result;
        let outcome = match result.outcome {
            BuildOutcome::Failed { step, reason } => Rebuilt::Failed {
                missing: missing_dependencies(&reason),
                step,
                reason,
            },
            BuildOutcome::Succeeded => {
                let mut made = 0;
                let mut differing = Vec::new();
                let mut unmatched = Vec::new();
                for a in &result.artifacts {
                    let digest = match family {
                        Family::Deb if a.name.ends_with(".deb") || a.name.ends_with(".udeb") => {
                            a.sha256.clone()
                        }
                        Family::Rpm
                            if a.name.ends_with(".rpm") && !a.name.ends_with(".src.rpm") =>
                        {
                            query(&out_dir.join(&a.name), "%{SHA256HEADER}").unwrap_or_default()
                        }
                        _ => continue,
                    };
                    made += 1;
                    match published.get(&a.name) {
                        Some(theirs) if *theirs == digest => {}
                        Some(_) => differing.push(a.name.clone()),
                        None => unmatched.push(a.name.clone()),
                    }
                }
                Rebuilt::Succeeded {
                    identical: differing.is_empty() && unmatched.is_empty() && made > 0,
                    differing,
                    unmatched,
                }
            }
        };
        let report = PackageReport {
            source: source.name,
            version: source.version,
            distro: distro.to_owned(),
            outcome,
            out_dir,
        };
        progress(&report);
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dependencies_are_named() {
        let apt = "E: Unable to satisfy dependencies. Reached two conflicting decisions:\n\
                   builddeps:greet-user : Depends: greet but it is not installable\n\
                   E: Unable to locate package libfoo-dev\n\
                   x : Depends: bar (>= 2) but it is not going to be installed";
        assert_eq!(missing_dependencies(apt), ["libfoo-dev", "greet", "bar"]);
        assert_eq!(
            missing_dependencies("No matching package to install: 'greet'"),
            ["greet"]
        );
        assert!(missing_dependencies("make: *** [all] Error 2").is_empty());
    }

    #[test]
    fn the_newest_version_of_each_source_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("deb/dists/bookworm/main/source");
        fs_err::create_dir_all(&source).unwrap();
        let stanza = |v: &str| {
            format!(
                "Package: greet\nVersion: {v}\nDirectory: pool/main/g/greet\nFiles:\n a 1 greet_{v}.dsc\n b 2 greet_1.0.orig.tar.gz\n"
            )
        };
        fs_err::write(
            source.join("Sources"),
            format!(
                "{}\n{}\n{}",
                stanza("1.0+git2-1+p1.0"),
                stanza("1.0+git10-1+p1.0"),
                stanza("1.0+git9-1+p3.0")
            ),
        )
        .unwrap();
        let found = sources_of(dir.path(), "bookworm");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].version, "1.0+git10-1+p1.0");
        assert!(found[0]
            .file
            .ends_with("deb/pool/main/g/greet/greet_1.0+git10-1+p1.0.dsc"));
    }
}
