//! Errors of the configuration loader and validator.

use std::path::PathBuf;

/// Something is wrong with the farm configuration; the message names the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a value has the wrong type.
    #[error("configuration {path}: {problem}")]
    Load { path: PathBuf, problem: String },
    /// An environment override (`PERESTROIKA_<SECTION>__<KEY>`) does not fit the configuration.
    #[error("configuration {path}: environment variable {variable} (key `{key}`): {problem}")]
    Environment {
        path: PathBuf,
        variable: String,
        key: String,
        problem: String,
    },
    /// A key holds a value that parses but makes no sense.
    #[error("configuration {path}: key `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// A loader error of the `config` crate in words: the key path as written in the file
/// (`customers[0].versions[0].state`), without the crate's type names.
pub(crate) fn describe(err: &config::ConfigError) -> (Option<String>, String) {
    match err {
        config::ConfigError::At { error, key, .. } => {
            let (inner, problem) = describe(error);
            (key.as_deref().map(key_path).or(inner), problem)
        }
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key.as_deref().map(key_path),
            format!("expected {expected}, found {unexpected}"),
        ),
        config::ConfigError::NotFound(key) => (
            Some(key_path(key)),
            "missing: this key has no default and must be set".to_owned(),
        ),
        other => (None, other.to_string()),
    }
}

/// `customers[0]versions[0]state` → `customers[0].versions[0].state`.
pub(crate) fn key_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut after_index = false;
    for c in key.chars() {
        if after_index && c != '[' && c != '.' {
            out.push('.');
        }
        after_index = c == ']';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_read_as_written() {
        assert_eq!(
            key_path("customers[0]versions[0]state"),
            "customers[0].versions[0].state"
        );
        assert_eq!(key_path("a[1][2]b.c"), "a[1][2].b.c");
        assert_eq!(key_path("build.slots"), "build.slots");
    }
}
