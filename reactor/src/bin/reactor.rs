use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perestroika_config::cli::{load_config, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_config::settings::{FarmConfig, GerritSettings};
use perestroika_reactor::daemon::Reactor;

/// Listens to Gerrit and turns merges, patch sets and rebuild requests into build jobs.
#[derive(Parser)]
#[command(name = "perestroika-reactor", version)]
struct Cli {
    /// Farm configuration file.
    #[arg(long, short, global = true, env = "PERESTROIKA_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen to Gerrit's stream-events and queue build jobs until stopped. Reconnects by
    /// itself and catches up on what happened meanwhile; exits 1 when the operator must act
    /// (unknown or changed host key, refused credentials, unreadable state).
    Run,
    /// Validate the configuration and show the mapping rules in force.
    Check,
    /// Show what the farm builds for a Gerrit project and branch, or why it builds nothing.
    /// Exits 1 when the project is not built.
    Map {
        /// Gerrit project, e.g. acme/openstack/nova.
        project: String,
        /// Branch, with or without refs/heads/.
        branch: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("info", async move {
        let farm = load_config(&cli.config)?;
        match cli.command {
            Command::Run => {
                let gerrit = gerrit_settings(&farm)?.clone();
                let mapping = farm.mapping()?;
                // Build outcomes go back to the changes over their own SSH session.
                let feedback = gerrit.feedback.then(|| {
                    let (farm, gerrit) = (std::sync::Arc::new(farm.clone()), gerrit.clone());
                    tokio::spawn(perestroika_reactor::feedback::run(farm, gerrit))
                });
                let reactor = Reactor::start(farm, gerrit, mapping).await?;
                let result = tokio::select! {
                    e = reactor.run() => Err(e.into()),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                };
                if let Some(task) = feedback {
                    task.abort();
                }
                result
            }
            Command::Check => {
                let gerrit = gerrit_settings(&farm)?;
                println!("configuration {} is valid", farm.source.display());
                println!("gerrit: {}@{}:{}", gerrit.user, gerrit.host, gerrit.port);
                let rules = farm
                    .mapping
                    .clone()
                    .unwrap_or_else(perestroika_config::mapping::default_rules);
                for rule in rules {
                    let projects = match (&rule.combined, &rule.code, &rule.packaging) {
                        (Some(c), _, _) => c.clone(),
                        (None, Some(c), Some(p)) => format!("{c} + {p}"),
                        _ => String::new(),
                    };
                    println!("rule {}: {} on branch {}", rule.name, projects, rule.branch);
                }
                Ok(())
            }
            Command::Map { project, branch } => {
                let mapping = farm.mapping()?;
                match mapping.resolve(&farm, &project, &branch) {
                    Ok(found) => {
                        println!("{}", serde_json::to_string_pretty(&found)?);
                        Ok(())
                    }
                    Err(why) => anyhow::bail!("not built: {why}"),
                }
            }
        }
    })
}

fn gerrit_settings(farm: &FarmConfig) -> Result<&GerritSettings, UsageError> {
    farm.gerrit.as_ref().ok_or_else(|| {
        UsageError(format!(
            "configuration {} has no [gerrit] section; the reactor needs host, user, key_file and known_hosts",
            farm.source.display()
        ))
    })
}
