//! The files of one source package in a deb suite (its source and every binary built from
//! it), and the relations they leave unsatisfied in the target suite.

use perestroika_tree::GenerationDir;
use std::collections::BTreeSet;
use std::path::Path;

use perestroika_formats::deb822;
use perestroika_formats::relations::{self, Available, Order, Relation};
use perestroika_formats::release_index::{stanzas, Stanza};
use perestroika_formats::versions::{compare, DebVersion};

use crate::error::PublishError;
use crate::suite_contents::suite_stanzas;
use perestroika_tree::distro_suites;

/// The files of one source package in one deb suite.
pub(super) struct DebSelection {
    /// (component, kind `deb`/`udeb`/`dsc`, path relative to the tree's `deb/`).
    pub(super) files: Vec<(String, &'static str, String)>,
    /// Section and priority of the source package, from its `Sources` entry.
    pub(super) source_fields: (String, String),
    /// Runtime relations per binary package, and the source's build relations.
    relations: Vec<(String, Relation)>,
    /// (name, version, provides) of each promoted binary.
    binaries: Vec<(String, String, Option<String>)>,
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

pub(super) fn newest_deb<'a>(versions: impl Iterator<Item = &'a str>) -> Option<String> {
    versions
        .filter_map(|v| DebVersion::parse(v).map(|p| (p, v)))
        .max_by(|a, b| compare(&a.0, &b.0))
        .map(|(_, v)| v.to_owned())
}

/// The versions of source package `package` in a suite's `Sources` and `Packages` stanzas.
pub(super) fn deb_versions(
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

pub(super) fn select_deb(
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
pub(super) fn dsc_files(dsc: &Path) -> Vec<String> {
    let text = fs_err::read_to_string(dsc).unwrap_or_default();
    // A signed .dsc's armour lines are paragraphs of their own.
    let body = deb822::raw_paragraphs(&text)
        .find(|block| deb822::raw_field(block, "Files").is_some())
        .unwrap_or("");
    stanzas(body)
        .first()
        .and_then(|s| s.get("Files").cloned())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// The relations of a deb selection that `<distro>` + `to` + the selection leave unsatisfied.
pub(super) fn deb_missing(
    generation: &Path,
    distro: &str,
    to: &str,
    sel: &DebSelection,
) -> Vec<String> {
    let mut known = BTreeSet::new();
    let all_suites = distro_suites(&GenerationDir::new(generation).deb_dists(), distro);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_stanzas_name_their_source() {
        let s = stanzas("Package: libgreet1\nSource: greet (1.0-1)\nVersion: 1.0-1+b1\n");
        assert_eq!(source_of(&s[0]), ("greet".into(), "1.0-1".into()));
        let s = stanzas("Package: greet\nVersion: 1.0-1\n");
        assert_eq!(source_of(&s[0]), ("greet".into(), "1.0-1".into()));
    }
}
