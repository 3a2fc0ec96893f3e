//! What every binary does at its edge: logging, the runtime, and turning errors into a message
//! and an exit code. Exit codes: 0 success, 1 the work failed, 2 bad usage or configuration.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use perestroika_config::error::ConfigError;
use perestroika_config::preflight::PreflightError;
use perestroika_config::settings::FarmConfig;

/// Where binaries look for the configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/perestroika/farm.toml";

/// The options every binary takes: the configuration file and the output format. Flattened
/// into each binary's arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Farm configuration file [default: /etc/perestroika/farm.toml].
    #[arg(
        long,
        short,
        global = true,
        env = "PERESTROIKA_CONFIG",
        value_name = "CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A farm binary's command line: the options every binary takes, then its subcommand.
#[derive(Debug, clap::Parser)]
pub struct Invocation<C: clap::Subcommand> {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(subcommand)]
    pub command: C,
}

impl<C: clap::Subcommand> Invocation<C> {
    /// Parses the process's arguments as the binary `name`, which `about` describes in
    /// `--help`; exits with clap's message (code 2) when they do not parse.
    pub fn parse_as(name: &'static str, about: &'static str) -> Self {
        let command = <Self as clap::CommandFactory>::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"));
        let matches = command.get_matches();
        <Self as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

impl ConfigArgs {
    /// The configuration file: `--config`, else `PERESTROIKA_CONFIG`, else [`DEFAULT_CONFIG`].
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
    }

    /// Loads and validates the configuration file.
    pub fn load(&self) -> Result<FarmConfig, ConfigError> {
        load_config(&self.path())
    }
}

/// An error the operator must fix in the command line or configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The release `customer` `version` of the configuration, or a usage error naming those
/// there are.
pub fn known_release<'a>(
    farm: &'a FarmConfig,
    customer: &str,
    version: &str,
) -> Result<&'a perestroika_config::settings::Release, UsageError> {
    farm.release(customer, version).ok_or_else(|| {
        let known: Vec<String> = farm
            .releases()
            .map(|(c, r)| format!("{} {}", c.name, r.name))
            .collect();
        UsageError(format!(
            "{} has no release {customer} {version}; it has {}",
            farm.source.display(),
            known.join(", ")
        ))
    })
}

/// Loads and validates the configuration named on the command line.
pub fn load_config(path: &Path) -> Result<FarmConfig, ConfigError> {
    FarmConfig::load(path)
}

/// Runs a binary's body on a multi-threaded runtime, prints any error with its causes, and
/// picks the exit code.
pub fn run_main<F>(default_log: &str, body: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    crate::logging::init(default_log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut shown = err.to_string();
            eprintln!("error: {shown}");
            for cause in err.chain().skip(1) {
                let text = cause.to_string();
                // Errors that already quote their cause are not repeated.
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                shown = text;
            }
            let usage = err
                .chain()
                .any(|c| c.is::<ConfigError>() || c.is::<UsageError>() || c.is::<PreflightError>());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: ConfigArgs,
    }

    #[test]
    fn the_help_names_the_default_configuration() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains(DEFAULT_CONFIG), "{help}");
        assert!(help.contains("PERESTROIKA_CONFIG"), "{help}");
    }

    #[test]
    fn the_configuration_defaults_and_is_given_with_or_without_the_short_flag() {
        assert_eq!(ConfigArgs::default().path(), Path::new(DEFAULT_CONFIG));
        let given = Cli::parse_from(["x", "-c", "/tmp/farm.toml", "--json"]).common;
        assert_eq!(given.path(), Path::new("/tmp/farm.toml"));
        assert!(given.json);
    }
}
