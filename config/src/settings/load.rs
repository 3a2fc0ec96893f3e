//! Loading the file and the environment overrides, and blaming errors on the right one.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::error::{describe, ConfigError};

/// The configuration key an environment variable overrides (`PERESTROIKA_BUILD__SLOTS` →
/// `build.slots`), if it is an override at all.
fn override_key(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix(ENV_PREFIX)?.strip_prefix('_')?;
    rest.contains("__")
        .then(|| rest.to_ascii_lowercase().replace("__", "."))
}

fn file_error(path: &Path, err: &config::ConfigError) -> ConfigError {
    match describe(err) {
        (Some(key), problem) => ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        },
        (None, problem) => ConfigError::Load {
            path: path.to_owned(),
            problem,
        },
    }
}

/// An error that only the overrides cause, blamed on the variable(s) that set its key.
fn environment_error(
    path: &Path,
    overrides: &HashMap<String, String>,
    err: &config::ConfigError,
) -> ConfigError {
    let (key, problem) = describe(err);
    let mut named: Vec<(&String, String)> = overrides
        .keys()
        .filter_map(|v| Some((v, override_key(v)?)))
        .collect();
    named.sort();
    let about_key: Vec<_> = named
        .iter()
        .filter(|(_, k)| key.as_deref().is_none_or(|key| k.starts_with(key)))
        .cloned()
        .collect();
    let chosen = if about_key.is_empty() {
        named
    } else {
        about_key
    };
    let (variable, key) = match chosen.as_slice() {
        [(variable, key)] => ((*variable).clone(), key.clone()),
        many => (
            many.iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            key.unwrap_or_default(),
        ),
    };
    ConfigError::Environment {
        path: path.to_owned(),
        variable,
        key,
        problem,
    }
}

impl FarmConfig {
    /// Loads `path`, applies `PERESTROIKA_<SECTION>__<KEY>` overrides from the process
    /// environment, and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`FarmConfig::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let load_err = |problem: &str| ConfigError::Load {
            path: path.to_owned(),
            problem: problem.to_owned(),
        };
        if path.is_dir() {
            return Err(load_err(
                "is a directory, not a file; pass --config FILE, the farm's TOML file \
                 (examples are in config/examples/)",
            ));
        }
        if !path.is_file() {
            return Err(load_err(
                "no such file; pass --config FILE (examples are in config/examples/)",
            ));
        }
        // Only PERESTROIKA_<SECTION>__<KEY> variables are overrides; others with the prefix
        // (such as PERESTROIKA_CONFIG) are left alone.
        let overrides: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| override_key(k).is_some())
            .collect();
        let file = || config::File::from(path).format(config::FileFormat::Toml);
        let combined = config::Config::builder()
            .add_source(file())
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(overrides.clone())),
            )
            .build()
            .and_then(|c| c.try_deserialize::<FarmConfig>());
        let mut farm = match combined {
            Ok(farm) => farm,
            Err(err) => {
                // The file alone tells whether the file or an override is at fault.
                let alone = config::Config::builder()
                    .add_source(file())
                    .build()
                    .and_then(|c| c.try_deserialize::<FarmConfig>());
                return Err(match alone {
                    Err(own) => file_error(path, &own),
                    Ok(_) => environment_error(path, &overrides, &err),
                });
            }
        };
        farm.source = path.to_owned();
        farm.validate()?;
        Ok(farm)
    }
}
