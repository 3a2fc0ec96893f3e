//! Promotion: the exact published files of one source package (its source and every binary
//! built from it) copied from one suite of a release to another — the same bytes, never a
//! rebuild — then the release is re-signed and switched like any publish.
//!
//! Before copying, the promoted packages' runtime and build relations are judged against the
//! target suite as a client sees it: the release suite, the target suite and the promoted
//! packages themselves. Only names the release itself publishes (in any suite) are judged; the
//! rest come from the base distribution, which the publisher does not index.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use perestroika_config::settings::{Release, ReleaseState};
use perestroika_config::Family;
use perestroika_formats::relations::{self, Available, Order, Relation};
use perestroika_formats::release_index::{stanzas, Stanza};
use perestroika_formats::versions::{compare, rpm_compare, DebVersion};
use perestroika_protocol::messages::{Promotion, Target};

use crate::deb::COMPONENTS;
use crate::publish::{suite_stanzas, PublishError, Published, Publisher};

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

/// The files of one source package in one deb suite.
struct DebSelection {
    /// (component, kind `deb`/`udeb`/`dsc`, path relative to the tree's `deb/`).
    files: Vec<(String, &'static str, String)>,
    /// Section and priority of the source package, from its `Sources` entry.
    source_fields: (String, String),
    /// Runtime relations per binary package, and the source's build relations.
    relations: Vec<(String, Relation)>,
    /// (name, version, provides) of each promoted binary.
    binaries: Vec<(String, String, Option<String>)>,
}

/// The files of one source package in one rpm suite: (arch directory, path in the tree).
struct RpmSelection {
    files: Vec<(String, PathBuf)>,
}

fn refused(text: impl Into<String>) -> PublishError {
    PublishError::Refused(text.into())
}

impl Publisher<'_> {
    /// Promotes `p` (see the module's documentation).
    pub fn promote(&self, p: &Promotion) -> Result<Promoted, PublishError> {
        let release = self.release(&p.customer, &p.version)?;
        let suites = &self.farm.publish.suites;
        for s in [&p.from, &p.to] {
            if !suites.contains(s) {
                return Err(refused(format!(
                    "{s} is not a suite of this farm (publish.suites: {})",
                    suites.join(", ")
                )));
            }
        }
        if p.from == p.to {
            return Err(refused("--from and --to name the same suite"));
        }
        let (tree, tree_name, lock) = self.lock_tree(&p.customer, &p.version, &Target::Release)?;
        let live = tree
            .current()
            .map(|n| tree.generation(n))
            .ok_or_else(|| refused(format!("{tree_name} has nothing published yet")))?;
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
            return Err(refused(format!("{unknown} is not a distro of {tree_name}")));
        }

        let mut out = Promoted::default();
        let mut debs = Vec::new();
        let mut rpms = Vec::new();
        for (family, distro) in &distros {
            let (from, to) = (format!("{distro}-{}", p.from), format!("{distro}-{}", p.to));
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
            return Err(refused(not_in_from(
                p,
                release,
                &tree_name,
                &self.farm.publish.proposed,
                &found,
            )));
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
                fs_err::create_dir_all(&scratch).map_err(crate::publish::io(&scratch))?;
                for component in COMPONENTS {
                    let mut binaries = Vec::new();
                    for (c, kind, rel) in sel.files.iter().filter(|(c, _, _)| c == component) {
                        let name = Path::new(rel).file_name().expect("a file name");
                        let dest = scratch.join(component).join(name);
                        crate::publish::link_or_copy(&live.join("deb").join(rel), &dest)?;
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
                            crate::publish::link_or_copy(
                                &dir.join(&part),
                                &scratch.join(component).join(&part),
                            )?;
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
            repo.export_missing(&deb_suites)?;
            let history = self.state_dir(&tree_name).join("history");
            crate::history::keep_every_version(&repo.dists(), &history, &deb_suites)
                .map_err(crate::publish::io(&history))?;
        }
        for (to, sel) in &rpms {
            let mut touched = BTreeSet::new();
            for (arch, rel) in &sel.files {
                let name = rel.file_name().expect("a file name");
                let public = PathBuf::from("rpm").join(to).join(arch);
                let dest = tree.pool().join(&public).join("Packages").join(name);
                if !dest.exists() {
                    crate::publish::link_or_copy_durable(&live.join(rel), &dest)?;
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

/// One suite that has the package a promotion asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    distro: String,
    /// The suite's name from `[publish] suites`; `None` for the release suite `<distro>`.
    name: Option<String>,
    /// The version there: the one asked for, else the newest.
    version: String,
}

impl Found {
    fn suite(&self) -> String {
        match &self.name {
            Some(name) => format!("{}-{name}", self.distro),
            None => self.distro.clone(),
        }
    }
}

/// Every suite of `distros` — the release suite and `<distro>-<name>` for each of `suites` —
/// that publishes the promotion's package (its version, when one is asked for).
fn whereabouts(
    generation: &Path,
    distros: &[(Family, String)],
    suites: &[String],
    p: &Promotion,
) -> Result<Vec<Found>, PublishError> {
    let mut out = Vec::new();
    for (family, distro) in distros {
        for name in std::iter::once(None).chain(suites.iter().map(Some)) {
            let suite = match name {
                Some(name) => format!("{distro}-{name}"),
                None => distro.clone(),
            };
            let versions: Vec<String> = match family {
                Family::Deb => deb_versions(
                    &suite_stanzas(generation, &suite, true),
                    &suite_stanzas(generation, &suite, false),
                    &p.package,
                )
                .into_iter()
                .collect(),
                Family::Rpm => suite_rpms(generation, &suite, RPM_IDENTITY)?
                    .iter()
                    .filter_map(|(_, _, h)| rpm_origin(h))
                    .filter(|(source, _)| *source == p.package)
                    .map(|(_, v)| v)
                    .collect(),
            };
            let version = match (&p.package_version, family) {
                (Some(wanted), _) => versions.iter().find(|v| *v == wanted).cloned(),
                (None, Family::Deb) => newest_deb(versions.iter().map(String::as_str)),
                (None, Family::Rpm) => versions.into_iter().max_by(|a, b| rpm_compare(a, b)),
            };
            if let Some(version) = version {
                out.push(Found {
                    distro: distro.clone(),
                    name: name.cloned(),
                    version,
                });
            }
        }
    }
    Ok(out)
}

/// The refusal of a promotion whose package is not in its `from` suite: where the package is
/// (`found`), and what to do instead.
fn not_in_from(
    p: &Promotion,
    release: &Release,
    tree_name: &str,
    proposed: &str,
    found: &[Found],
) -> String {
    let (what, arg) = match &p.package_version {
        Some(v) => (format!("{} {v}", p.package), format!("{}={v}", p.package)),
        None => (p.package.clone(), p.package.clone()),
    };
    let mut text = format!(
        "{what} is not published in the {} suite of {tree_name}",
        p.from
    );
    if found.is_empty() {
        text.push_str(&format!(
            "; no suite of {tree_name} has it: a build publishes it first (a merge, or `perestroika-queue retrigger`)"
        ));
        return text;
    }
    let places: Vec<String> = found
        .iter()
        .map(|f| match f.name {
            Some(_) => format!("{} ({})", f.suite(), f.version),
            None => format!("{} ({}, the release suite)", f.suite(), f.version),
        })
        .collect();
    text.push_str(&format!("; it is published in {}", places.join(", ")));
    let promote = format!(
        "perestroika-queue promote {} {} {arg}",
        p.customer, p.version
    );
    let mut distros: Vec<&str> = found.iter().map(|f| f.distro.as_str()).collect();
    distros.dedup();
    let proposed_suites = distros
        .iter()
        .map(|d| format!("{d}-{proposed}"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(other) = found
        .iter()
        .filter_map(|f| f.name.as_deref())
        .find(|name| *name != p.to)
    {
        text.push_str(&format!(
            ". To promote it from there: {promote} --from {other} --to {}",
            p.to
        ));
    } else if found
        .iter()
        .any(|f| f.name.as_deref() == Some(p.to.as_str()))
    {
        text.push_str(&format!(". It is already in {}: nothing to promote", p.to));
    } else if release.state == ReleaseState::Development {
        text.push_str(&format!(
            ". {} {} is in development: its merges publish into the release suite, which every client of the release reads, so there is nothing to promote. Once the release ships, set state = \"maintenance\" for it in [[customers.versions]] and restart the farm's daemons: merges then publish into {proposed_suites}, from where `{promote} --to {}` promotes them",
            p.customer, p.version, p.to
        ));
    } else {
        text.push_str(&format!(
            ". The release suite is read by every client of the release, so there is nothing to promote; the next build of {} (a merge, or `perestroika-queue retrigger`) publishes into {proposed_suites}, from where `{promote} --to {}` promotes it",
            p.package, p.to
        ));
    }
    text
}

fn field<'a>(s: &'a Stanza, name: &str) -> &'a str {
    s.get(name).map(String::as_str).unwrap_or("")
}

/// The source package and version a binary stanza was built from.
fn source_of(s: &Stanza) -> (String, String) {
    let version = field(s, "Version").to_owned();
    match s.get("Source") {
        Some(src) => match src.split_once('(') {
            Some((name, v)) => (
                name.trim().to_owned(),
                v.trim_end_matches(')').trim().to_owned(),
            ),
            None => (src.trim().to_owned(), version),
        },
        None => (field(s, "Package").to_owned(), version),
    }
}

fn newest_deb<'a>(versions: impl Iterator<Item = &'a str>) -> Option<String> {
    versions
        .filter_map(|v| DebVersion::parse(v).map(|p| (p, v)))
        .max_by(|a, b| compare(&a.0, &b.0))
        .map(|(_, v)| v.to_owned())
}

/// The versions of source package `package` in a suite's `Sources` and `Packages` stanzas.
fn deb_versions(
    sources: &[(String, &'static str, Stanza)],
    binaries: &[(String, &'static str, Stanza)],
    package: &str,
) -> BTreeSet<String> {
    let from_sources = sources
        .iter()
        .filter(|(_, _, s)| field(s, "Package") == package)
        .map(|(_, _, s)| field(s, "Version").to_owned());
    let from_binaries = binaries
        .iter()
        .map(|(_, _, s)| source_of(s))
        .filter(|(name, _)| name == package)
        .map(|(_, v)| v);
    from_sources.chain(from_binaries).collect()
}

fn select_deb(
    generation: &Path,
    suite: &str,
    package: &str,
    wanted: Option<&str>,
) -> Result<Option<DebSelection>, PublishError> {
    let sources = suite_stanzas(generation, suite, true);
    let binaries = suite_stanzas(generation, suite, false);
    let version = match wanted {
        Some(v) => v.to_owned(),
        None => match newest_deb(
            deb_versions(&sources, &binaries, package)
                .iter()
                .map(String::as_str),
        ) {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    let mut sel = DebSelection {
        files: Vec::new(),
        source_fields: Default::default(),
        relations: Vec::new(),
        binaries: Vec::new(),
    };
    for (component, kind, s) in &binaries {
        if source_of(s) != (package.to_owned(), version.clone()) {
            continue;
        }
        let name = field(s, "Package").to_owned();
        let entry = (component.clone(), *kind, field(s, "Filename").to_owned());
        if sel.files.contains(&entry) {
            continue;
        }
        sel.files.push(entry);
        if *kind == "deb" {
            let depends = format!("{}, {}", field(s, "Depends"), field(s, "Pre-Depends"));
            sel.relations
                .push((name.clone(), relations::parse_deb(&depends)));
            sel.binaries.push((
                name,
                field(s, "Version").to_owned(),
                s.get("Provides").cloned(),
            ));
        }
    }
    for (component, _, s) in &sources {
        if field(s, "Package") != package || field(s, "Version") != version {
            continue;
        }
        let directory = field(s, "Directory");
        let dsc = field(s, "Files")
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .find(|n| n.ends_with(".dsc"));
        if let Some(dsc) = dsc {
            sel.files
                .push((component.clone(), "dsc", format!("{directory}/{dsc}")));
            sel.source_fields = (
                field(s, "Section").to_owned(),
                field(s, "Priority").to_owned(),
            );
        }
        let build = ["Build-Depends", "Build-Depends-Indep", "Build-Depends-Arch"]
            .map(|f| field(s, f))
            .join(", ");
        sel.relations.push((
            format!("{package} (to build)"),
            relations::parse_deb(&build),
        ));
    }
    if sel.files.is_empty() {
        return Ok(None);
    }
    Ok(Some(sel))
}

/// The files a `.dsc` names (its `Files` field).
fn dsc_files(dsc: &Path) -> Vec<String> {
    let text = fs_err::read_to_string(dsc).unwrap_or_default();
    let body = text
        .split("\n\n")
        .find(|block| block.contains("\nFiles:") || block.starts_with("Files:"))
        .unwrap_or("");
    stanzas(body)
        .first()
        .and_then(|s| s.get("Files").cloned())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// The suites of `distro` in a generation's `deb/dists` or `rpm` directory: `<distro>` and
/// `<distro>-<suite>`.
fn distro_suites(dir: &Path, distro: &str) -> Vec<String> {
    let prefix = format!("{distro}-");
    fs_err::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n == distro || n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The relations of a deb selection that `<distro>` + `to` + the selection leave unsatisfied.
fn deb_missing(generation: &Path, distro: &str, to: &str, sel: &DebSelection) -> Vec<String> {
    let mut known = BTreeSet::new();
    let all_suites = distro_suites(&generation.join("deb/dists"), distro);
    let mut available = Available::new(Order::Dpkg);
    for suite in &all_suites {
        for (_, kind, s) in suite_stanzas(generation, suite, false) {
            if kind != "deb" {
                continue;
            }
            known.insert(field(&s, "Package").to_owned());
            for provided in relations::parse_deb(field(&s, "Provides"))
                .into_iter()
                .flatten()
            {
                known.insert(provided.name);
            }
            if suite == distro || suite == to {
                available.add_deb(
                    field(&s, "Package"),
                    field(&s, "Version"),
                    s.get("Provides").map(String::as_str),
                );
            }
        }
    }
    for (name, version, provides) in &sel.binaries {
        available.add_deb(name, version, provides.as_deref());
    }
    let mut out = Vec::new();
    for (who, relation) in &sel.relations {
        for m in relations::unsatisfied(relation, &available, |n| known.contains(n)) {
            out.push(format!("{who}: {m}"));
        }
    }
    out
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
fn suite_rpms(
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
    let headers = perestroika_formats::rpm_header::query(&paths, format)
        .map_err(|e| refused(e.to_string()))?;
    Ok(files
        .into_iter()
        .zip(headers)
        .map(|((arch, path), h)| (arch, path, h))
        .collect())
}

/// `NAME VERSION-RELEASE SOURCERPM`, per file.
const RPM_IDENTITY: &str = "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\t%{SOURCERPM}";

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
fn rpm_origin(header: &str) -> Option<(String, String)> {
    let mut parts = header.split('\t');
    let (name, version, source) = (parts.next()?, parts.next()?, parts.next()?);
    if source == "(none)" {
        return Some((name.to_owned(), evr(version)));
    }
    Some((srpm_name(source)?.to_owned(), evr(version)))
}

fn select_rpm(
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

fn rpm_missing(
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
    let requires = perestroika_formats::rpm_header::query(&refs, RPM_REQUIRES)
        .map_err(|e| refused(e.to_string()))?;
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

    #[test]
    fn binary_stanzas_name_their_source() {
        let s = stanzas("Package: libgreet1\nSource: greet (1.0-1)\nVersion: 1.0-1+b1\n");
        assert_eq!(source_of(&s[0]), ("greet".into(), "1.0-1".into()));
        let s = stanzas("Package: greet\nVersion: 1.0-1\n");
        assert_eq!(source_of(&s[0]), ("greet".into(), "1.0-1".into()));
    }

    fn promotion(package: &str, version: Option<&str>) -> Promotion {
        Promotion::new(
            "demo",
            "1.0",
            package,
            version,
            "proposed",
            "updates",
            &[],
            false,
        )
    }

    fn release(state: ReleaseState) -> Release {
        Release {
            name: "1.0".into(),
            state,
            deb: vec!["bookworm".into()],
            rpm: Vec::new(),
            arches: vec!["amd64".into()],
        }
    }

    fn found(name: Option<&str>, version: &str) -> Found {
        Found {
            distro: "bookworm".into(),
            name: name.map(str::to_owned),
            version: version.into(),
        }
    }

    /// The demo's first promotion: a development release has its packages in the release
    /// suite only; the refusal says so and says how promotion starts.
    #[test]
    fn a_refusal_in_development_names_the_release_suite_and_the_maintenance_state() {
        let text = not_in_from(
            &promotion("greet", None),
            &release(ReleaseState::Development),
            "demo/1.0",
            "proposed",
            &[found(None, "1.0+git1-1+p1.0")],
        );
        assert!(
            text.starts_with("greet is not published in the proposed suite of demo/1.0; it is published in bookworm (1.0+git1-1+p1.0, the release suite)."),
            "{text}"
        );
        assert!(text.contains("demo 1.0 is in development"), "{text}");
        assert!(text.contains("state = \"maintenance\""), "{text}");
        assert!(text.contains("bookworm-proposed"), "{text}");
        assert!(
            text.contains("`perestroika-queue promote demo 1.0 greet --to updates`"),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_names_another_suite_to_promote_from() {
        let text = not_in_from(
            &promotion("greet", Some("1.1")),
            &release(ReleaseState::Maintenance),
            "demo/1.0",
            "proposed",
            &[found(None, "1.1"), found(Some("holdback"), "1.1")],
        );
        assert!(
            text.contains(
                "it is published in bookworm (1.1, the release suite), bookworm-holdback (1.1)"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("To promote it from there: perestroika-queue promote demo 1.0 greet=1.1 --from holdback --to updates"),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_says_what_is_already_promoted_or_not_built() {
        let p = promotion("greet", None);
        let maintenance = release(ReleaseState::Maintenance);
        let text = not_in_from(
            &p,
            &maintenance,
            "demo/1.0",
            "proposed",
            &[found(Some("updates"), "1.1")],
        );
        assert!(
            text.ends_with("It is already in updates: nothing to promote"),
            "{text}"
        );
        let text = not_in_from(
            &p,
            &maintenance,
            "demo/1.0",
            "proposed",
            &[found(None, "1.0")],
        );
        assert!(text.contains("the next build of greet"), "{text}");
        assert!(text.contains("publishes into bookworm-proposed"), "{text}");
        let text = not_in_from(&p, &maintenance, "demo/1.0", "proposed", &[]);
        assert!(text.contains("no suite of demo/1.0 has it"), "{text}");
    }
}
