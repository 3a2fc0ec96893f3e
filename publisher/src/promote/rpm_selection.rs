//! The files of one source package in an rpm suite (its source rpm and every rpm built from
//! it), and the requirements they leave unsatisfied in the target suite.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use perestroika_formats::relations::{self, Available, Order};
use perestroika_formats::versions::rpm_compare;

use crate::error::PublishError;
use perestroika_tree::distro_suites;

/// The files of one source package in one rpm suite: (arch directory, path in the tree).
pub(super) struct RpmSelection {
    pub(super) files: Vec<(String, PathBuf)>,
}

/// The rpm directories (`<arch>` → its `Packages` directory) of a suite in a generation.
fn rpm_arch_dirs(generation: &Path, suite: &str) -> BTreeMap<String, PathBuf> {
    fs_err::read_dir(generation.join("rpm").join(suite))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.path().join("Packages"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every rpm of a suite: (arch directory, path, header fields).
pub(super) fn suite_rpms(
    generation: &Path,
    suite: &str,
    format: &str,
) -> Result<Vec<(String, PathBuf, String)>, PublishError> {
    let mut files = Vec::new();
    for (arch, dir) in rpm_arch_dirs(generation, suite) {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().ends_with(".rpm") {
                files.push((arch.clone(), e.path()));
            }
        }
    }
    files.sort();
    let paths: Vec<&Path> = files.iter().map(|(_, p)| p.as_path()).collect();
    let headers = perestroika_formats::rpm_header::query(&paths, format)?;
    Ok(files
        .into_iter()
        .zip(headers)
        .map(|((arch, path), h)| (arch, path, h))
        .collect())
}

/// `NAME VERSION-RELEASE SOURCERPM`, per file.
pub(super) const RPM_IDENTITY: &str = "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\t%{SOURCERPM}";

/// The source package name of a source rpm file name (`greet-1.0-1.src.rpm` → `greet`).
fn srpm_name(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".src.rpm")?;
    let (rest, _release) = stem.rsplit_once('-')?;
    Some(rest.rsplit_once('-')?.0)
}

fn evr(text: &str) -> String {
    text.strip_prefix("(none):").unwrap_or(text).to_owned()
}

/// (source name, source version) of an rpm from its [`RPM_IDENTITY`] line: a source rpm is its
/// own source.
pub(super) fn rpm_origin(header: &str) -> Option<(String, String)> {
    let mut parts = header.split('\t');
    let (name, version, source) = (parts.next()?, parts.next()?, parts.next()?);
    if source == "(none)" {
        return Some((name.to_owned(), evr(version)));
    }
    Some((srpm_name(source)?.to_owned(), evr(version)))
}

pub(super) fn select_rpm(
    generation: &Path,
    suite: &str,
    package: &str,
    wanted: Option<&str>,
) -> Result<Option<RpmSelection>, PublishError> {
    let rpms = suite_rpms(generation, suite, RPM_IDENTITY)?;
    let mine: Vec<(String, PathBuf, String)> = rpms
        .into_iter()
        .filter_map(|(arch, path, h)| {
            let (name, version) = rpm_origin(&h)?;
            (name == package).then_some((arch, path, version))
        })
        .collect();
    let version = match wanted {
        Some(v) => v.to_owned(),
        None => match mine
            .iter()
            .map(|m| m.2.clone())
            .max_by(|a, b| rpm_compare(a, b))
        {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    let files: Vec<(String, PathBuf)> = mine
        .into_iter()
        .filter(|(_, _, v)| *v == version)
        .map(|(arch, path, _)| {
            let rel = path
                .strip_prefix(generation)
                .map(Path::to_path_buf)
                .unwrap_or(path);
            (arch, rel)
        })
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(RpmSelection { files }))
}

/// rpm's dependency lists as one line per file: `name flags version` entries joined by `@@`.
const RPM_REQUIRES: &str = "[%{REQUIRENAME} %{REQUIREFLAGS:depflags} %{REQUIREVERSION}@@]";
const RPM_PROVIDES: &str = "[%{PROVIDENAME} %{PROVIDEFLAGS:depflags} %{PROVIDEVERSION}@@]";

fn rpm_entries(line: &str) -> impl Iterator<Item = &str> {
    line.split("@@").map(str::trim).filter(|e| !e.is_empty())
}

pub(super) fn rpm_missing(
    generation: &Path,
    distro: &str,
    to: &str,
    sel: &RpmSelection,
) -> Result<Vec<String>, PublishError> {
    let suites = distro_suites(&generation.join("rpm"), distro);
    let mut known = BTreeSet::new();
    let mut available = Available::new(Order::Rpm);
    let add = |available: &mut Available, line: &str| {
        for entry in rpm_entries(line) {
            let mut words = entry.split_whitespace();
            let name = words.next().unwrap_or_default();
            let version = match (words.next(), words.next()) {
                (Some("="), Some(v)) => Some(v),
                _ => None,
            };
            available.add(name, version);
        }
    };
    // What each rpm of the distro's suites provides, by path (the promoted ones among them).
    let mut provided = BTreeMap::new();
    for suite in &suites {
        for (_, path, line) in suite_rpms(generation, suite, RPM_PROVIDES)? {
            for entry in rpm_entries(&line) {
                known.insert(
                    entry
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            if suite == distro || suite == to {
                add(&mut available, &line);
            }
            provided.insert(path, line);
        }
    }
    let paths: Vec<PathBuf> = sel.files.iter().map(|(_, p)| generation.join(p)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    for path in &paths {
        if let Some(line) = provided.get(path) {
            add(&mut available, line);
        }
    }
    let requires = perestroika_formats::rpm_header::query(&refs, RPM_REQUIRES)?;
    let mut out = Vec::new();
    for (path, line) in paths.iter().zip(&requires) {
        let relation = relations::parse_rpm(rpm_entries(line));
        let who = path.file_name().unwrap_or_default().to_string_lossy();
        for m in relations::unsatisfied(&relation, &available, |n| known.contains(n)) {
            out.push(format!("{who}: {m}"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_rpm_names() {
        assert_eq!(srpm_name("greet-1.0-git1.p1.0.src.rpm"), Some("greet"));
        assert_eq!(srpm_name("greet-motd-1.0-p2.0.src.rpm"), Some("greet-motd"));
        assert_eq!(srpm_name("greet.rpm"), None);
    }
}
