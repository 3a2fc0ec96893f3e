//! Reading the top of `debian/changelog` and adding the farm's entry inside a build.

use chrono::{DateTime, Utc};
use perestroika_config::names::NameError;

use crate::version::DebVersion;

/// The first entry's header line: `source (version) distributions; urgency=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogHead {
    pub source: String,
    pub version: DebVersion,
}

/// What is wrong with the top of a `debian/changelog`.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("debian/changelog is empty")]
    Empty,
    #[error("debian/changelog: first line {line:?} is not `source (version) …`")]
    NotAHeader { line: String },
    #[error("debian/changelog: first line {line:?} has no closing `)`")]
    Unclosed { line: String },
    #[error("debian/changelog: {0}")]
    Source(#[source] NameError),
    #[error("debian/changelog: {version:?} is not a Debian version")]
    Version { version: String },
}

/// Parses the first line of a changelog, or says what is wrong with it.
pub fn parse_head(changelog: &str) -> Result<ChangelogHead, ChangelogError> {
    let line = changelog
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or(ChangelogError::Empty)?;
    let (source, rest) = line
        .split_once(" (")
        .ok_or_else(|| ChangelogError::NotAHeader {
            line: line.to_owned(),
        })?;
    let (version, _) = rest
        .split_once(')')
        .ok_or_else(|| ChangelogError::Unclosed {
            line: line.to_owned(),
        })?;
    perestroika_config::names::check_token("source package", source)
        .map_err(ChangelogError::Source)?;
    let version = DebVersion::parse(version).ok_or_else(|| ChangelogError::Version {
        version: version.to_owned(),
    })?;
    Ok(ChangelogHead {
        source: source.to_owned(),
        version,
    })
}

/// A new top entry recording what the farm built. Its date is the sources' commit time, so
/// `SOURCE_DATE_EPOCH` (which dpkg takes from the changelog) is the same for every rebuild.
pub fn farm_entry(
    source: &str,
    version: &DebVersion,
    distro: &str,
    built_from: &[String],
    date: DateTime<Utc>,
) -> String {
    let mut entry = format!("{source} ({version}) {distro}; urgency=medium\n\n");
    for line in built_from {
        entry.push_str(&format!("  * Built by Perestroika from {line}.\n"));
    }
    entry.push_str(&format!(
        "\n -- Perestroika Build Farm <builds@perestroika.invalid>  {}\n\n",
        date.format("%a, %d %b %Y %H:%M:%S +0000")
    ));
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn head_of_a_real_changelog() {
        let text = "hello (2.10-3) unstable; urgency=medium\n\n  * x\n\n -- A <a@b>  Sun, 01 Jan 2023 00:00:00 +0000\n";
        let head = parse_head(text).unwrap();
        assert_eq!(head.source, "hello");
        assert_eq!(head.version.to_string(), "2.10-3");
        assert!(parse_head("").is_err());
        assert!(parse_head("hello 2.10 unstable")
            .unwrap_err()
            .to_string()
            .contains("first line"));
        assert!(parse_head("he llo (1.0) x").is_err());
        assert!(parse_head("hello (x1.0) x")
            .unwrap_err()
            .to_string()
            .contains("not a Debian version"));
    }

    #[test]
    fn entry_is_parseable_and_dated() {
        let date = Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap();
        let e = farm_entry(
            "hello",
            &DebVersion::parse("2.10+git4-3+p2.0").unwrap(),
            "bookworm",
            &["acme/hello@abc".into()],
            date,
        );
        assert!(e.starts_with("hello (2.10+git4-3+p2.0) bookworm; urgency=medium\n"));
        assert!(e.contains(" -- Perestroika Build Farm <builds@perestroika.invalid>  Tue, 05 Mar 2024 07:08:09 +0000\n"));
        assert_eq!(parse_head(&e).unwrap().source, "hello");
    }
}
