//! What a part needs before it runs: files present and readable with the right modes, URLs of
//! a scheme it supports, images it builds in. Each binary fills one [`Report`] in one place
//! (its `preflight`), which both `check` prints and `run` demands before it connects anywhere.
//! Findings name the file, the key and the fix; errors stop the part (exit code 2), warnings
//! are things that can be made later.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::settings::FarmConfig;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The part cannot run.
    Error,
    /// The part runs, but something it will need is missing and can be made later.
    Warning,
}

/// One thing wrong with what a part needs.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The configuration key at fault, as written in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "key `{key}`: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

/// What `check` found for one part: facts worth showing, then errors and warnings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The configuration file.
    pub config: PathBuf,
    /// The part: reactor, worker, publisher or mirror.
    pub part: String,
    /// What the part will do with this configuration (queues it consumes, keys it signs with).
    pub notes: Vec<String>,
    pub findings: Vec<Finding>,
}

/// The part cannot run with this configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("configuration {}: the {part} cannot run:\n  {}", config.display(), problems.join("\n  "))]
pub struct PreflightError {
    pub config: PathBuf,
    pub part: String,
    pub problems: Vec<String>,
}

impl Report {
    /// An empty report for `part`.
    pub fn new(farm: &FarmConfig, part: &str) -> Self {
        Self {
            config: farm.source.clone(),
            part: part.to_owned(),
            notes: Vec::new(),
            findings: Vec::new(),
        }
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    fn add(&mut self, severity: Severity, key: Option<&str>, problem: String) {
        self.findings.push(Finding {
            severity,
            key: key.map(str::to_owned),
            problem,
        });
    }

    /// The part cannot run: `key` (if any) is at fault.
    pub fn error(&mut self, key: Option<&str>, problem: impl Into<String>) {
        self.add(Severity::Error, key, problem.into());
    }

    /// Something the part needs can be made later.
    pub fn warn(&mut self, key: Option<&str>, problem: impl Into<String>) {
        self.add(Severity::Warning, key, problem.into());
    }

    /// Whether any finding stops the part.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// `path` (the value of `key`) must be a file this process can read; a `private` one (a
    /// secret key, a passphrase) must not be readable by group or others, as ssh demands.
    pub fn readable_file(&mut self, key: &str, path: &Path, private: bool) {
        let shown = path.display();
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return self.error(
                    Some(key),
                    format!("{shown}: no such file; create it or point `{key}` at the right one"),
                )
            }
            Err(e) => return self.error(Some(key), format!("{shown}: {e}")),
        };
        if !meta.is_file() {
            return self.error(
                Some(key),
                format!("{shown} is not a file; point `{key}` at a file"),
            );
        }
        if let Err(e) = std::fs::File::open(path) {
            return self.error(
                Some(key),
                format!("{shown} cannot be read by this user: {e}; fix its owner or mode"),
            );
        }
        if private {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                self.error(
                    Some(key),
                    format!(
                        "{shown} has mode {mode:04o}, so others may read this secret; \
                         `chmod 600 {shown}`"
                    ),
                );
            }
        }
    }

    /// `url` (the value of `key`) must use one of `schemes` (e.g. `["http", "https"]`).
    pub fn url(&mut self, key: &str, url: &str, schemes: &[&str]) {
        let ok = url
            .split_once("://")
            .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        if !ok {
            let expected: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            self.error(
                Some(key),
                format!("expected a {} URL, found {url:?}", expected.join(" or ")),
            );
        }
    }

    fn lines(&self, severity: Severity) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(ToString::to_string)
            .collect()
    }

    /// What `check` prints: the report as text (notes on stdout, warnings on stderr) or, with
    /// `json`, as one JSON object on stdout; then the errors, if any, as the result.
    pub fn print(self, json: bool) -> Result<(), PreflightError> {
        if json {
            let valid = !self.has_errors();
            let mut value = serde_json::to_value(&self).unwrap_or_default();
            value["valid"] = valid.into();
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            if !self.has_errors() {
                println!(
                    "configuration {} is valid for the {}",
                    self.config.display(),
                    self.part
                );
            }
            for note in &self.notes {
                println!("{note}");
            }
            for warning in self.lines(Severity::Warning) {
                eprintln!(
                    "warning: configuration {}: {warning}",
                    self.config.display()
                );
            }
        }
        self.finish()
    }

    /// What `run` does before it connects: logs the warnings, and refuses to go on with errors.
    pub fn demand(self) -> Result<(), PreflightError> {
        for warning in self.lines(Severity::Warning) {
            tracing::warn!(config = %self.config.display(), "{warning}");
        }
        self.finish()
    }

    fn finish(self) -> Result<(), PreflightError> {
        let problems = self.lines(Severity::Error);
        if problems.is_empty() {
            return Ok(());
        }
        Err(PreflightError {
            config: self.config,
            part: self.part,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            config: "farm.toml".into(),
            part: "reactor".into(),
            notes: Vec::new(),
            findings: Vec::new(),
        }
    }

    #[test]
    fn files_must_exist_be_files_and_keep_secrets() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        fs_err::write(&key, "secret").unwrap();
        fs_err::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut r = report();
        r.readable_file("gerrit.key_file", &key, true);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        fs_err::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        r.readable_file("gerrit.key_file", &key, true);
        r.readable_file("gerrit.known_hosts", &key, false);
        r.readable_file("gerrit.known_hosts", &dir.path().join("nope"), false);
        r.readable_file("gerrit.known_hosts", dir.path(), false);
        let lines = r.lines(Severity::Error);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("mode 0644") && lines[0].contains("chmod 600"));
        assert!(lines[1].contains("no such file"), "{}", lines[1]);
        assert!(lines[2].contains("is not a file"), "{}", lines[2]);
        let err = r.finish().unwrap_err().to_string();
        assert!(err.starts_with("configuration farm.toml: the reactor cannot run:"));
    }

    #[test]
    fn urls_need_a_supported_scheme() {
        let mut r = report();
        r.url(
            "build.package_cache",
            "http://cache:3142",
            &["http", "https"],
        );
        assert!(!r.has_errors());
        r.url("build.package_cache", "ftp://cache/", &["http", "https"]);
        r.url("build.package_cache", "cache:3142", &["http", "https"]);
        assert_eq!(r.lines(Severity::Error).len(), 2);
        assert!(r.lines(Severity::Error)[0].contains("expected a http:// or https:// URL"));
    }
}
