//! The Debian mirror of the host's own apt configuration, so that base images come from the
//! same place the host's packages do (and no mirror name lives in the code).

use perestroika_formats::deb822::{self, Paragraph};
use std::path::Path;

/// Mirrors found in the host's apt configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMirrors {
    /// The archive (serving `<codename>` and `<codename>-updates`).
    pub archive: Option<String>,
    /// The security archive (serving `<codename>-security`).
    pub security: Option<String>,
    /// Whether the host uses `-updates`.
    pub updates: bool,
}

impl HostMirrors {
    /// Reads `/etc/apt/sources.list` and `/etc/apt/sources.list.d/`.
    pub fn from_host() -> Self {
        let mut entries = Vec::new();
        let etc = Path::new("/etc/apt");
        if let Ok(text) = fs_err::read_to_string(etc.join("sources.list")) {
            entries.extend(one_line_entries(&text));
        }
        if let Ok(dir) = fs_err::read_dir(etc.join("sources.list.d")) {
            let mut paths: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let Ok(text) = fs_err::read_to_string(&path) else {
                    continue;
                };
                match path.extension().and_then(|e| e.to_str()) {
                    Some("list") => entries.extend(one_line_entries(&text)),
                    Some("sources") => entries.extend(deb822_entries(&text)),
                    _ => {}
                }
            }
        }
        Self::from_entries(&entries)
    }

    fn from_entries(entries: &[(String, String)]) -> Self {
        let mut m = Self::default();
        for (uri, suite) in entries {
            if suite.ends_with("-security") || suite.ends_with("/updates") {
                m.security.get_or_insert_with(|| uri.clone());
            } else {
                if suite.ends_with("-updates") {
                    m.updates = true;
                }
                m.archive.get_or_insert_with(|| uri.clone());
            }
        }
        m
    }

    /// One-line apt entries for `distro`, as mmdebstrap takes them; empty when the host names
    /// no mirror (mmdebstrap then uses its own default).
    pub fn lines_for(&self, distro: &str) -> Vec<String> {
        let Some(archive) = &self.archive else {
            return Vec::new();
        };
        let rolling = matches!(distro, "sid" | "unstable" | "experimental");
        let mut lines = vec![format!("deb {archive} {distro} main")];
        if self.updates && !rolling {
            lines.push(format!("deb {archive} {distro}-updates main"));
        }
        if let (Some(security), false) = (&self.security, rolling) {
            lines.push(format!("deb {security} {distro}-security main"));
        }
        lines
    }
}

/// The host's own Debian release, e.g. `bookworm` (from `/etc/os-release`).
pub fn host_codename() -> Option<String> {
    let text = fs_err::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// (URI, suite) of each `deb` line.
fn one_line_entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest.as_slice() {
            out.push((uri.to_string(), suite.to_string()));
        }
    }
    out
}

/// (URI, suite) of each deb822 stanza of type `deb` (comment lines left out; a stanza that is
/// not well-formed deb822 is skipped, as apt would refuse it).
fn deb822_entries(text: &str) -> Vec<(String, String)> {
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = Vec::new();
    for stanza in deb822::raw_paragraphs(&text).filter_map(|raw| Paragraph::parse(raw).ok()) {
        let values = |name: &str| -> Vec<String> {
            stanza
                .get(name)
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default()
        };
        let enabled = stanza.get("Enabled").is_none_or(|v| v != "no");
        if enabled && values("Types").iter().any(|t| t == "deb") {
            for uri in &values("URIs") {
                for suite in &values("Suites") {
                    out.push((uri.clone(), suite.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_and_one_line() {
        let deb822 = "Types: deb\n# comment\nURIs: http://archive.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://security.test/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let m = HostMirrors::from_entries(&deb822_entries(deb822));
        assert_eq!(m.archive.as_deref(), Some("http://archive.test/debian"));
        assert_eq!(
            m.security.as_deref(),
            Some("http://security.test/debian-security")
        );
        assert_eq!(
            m.lines_for("trixie"),
            [
                "deb http://archive.test/debian trixie main",
                "deb http://archive.test/debian trixie-updates main",
                "deb http://security.test/debian-security trixie-security main"
            ]
        );
        assert_eq!(
            m.lines_for("sid"),
            ["deb http://archive.test/debian sid main"]
        );

        let list = "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://a.test/debian bookworm main\ndeb-src http://a.test/debian bookworm main\n";
        let m = HostMirrors::from_entries(&one_line_entries(list));
        assert_eq!(m.archive.as_deref(), Some("http://a.test/debian"));
        assert!(!m.updates && m.security.is_none());
        assert!(HostMirrors::default().lines_for("bookworm").is_empty());
    }
}
