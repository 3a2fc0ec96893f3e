//! What a generation's deb suites hold, read from their indexes.

use perestroika_tree::GenerationDir;
use std::path::Path;

use perestroika_formats::release_index::{read_index, stanzas, Stanza};

/// Every stanza of a suite's indexes of one kind: `Packages` (debs and udebs) or `Sources`,
/// with the component each came from.
pub(crate) fn suite_stanzas(
    generation: &Path,
    suite: &str,
    sources: bool,
) -> Vec<(String, &'static str, Stanza)> {
    let mut out = Vec::new();
    let suite_dir = GenerationDir::new(generation).deb_suite(suite);
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
