use std::process::ExitCode;

use clap::Subcommand;
use perestroika_config::settings::{FarmConfig, GerritSettings};
use perestroika_host::cli::{run_main, UsageError};
use perestroika_reactor::daemon::Reactor;
use perestroika_reactor::preflight::preflight;

/// What `--help` says the binary does.
const ABOUT: &str =
    "Listens to Gerrit and turns merges, patch sets and rebuild requests into build jobs.";

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
    let cli = perestroika_host::cli::Invocation::<Command>::parse_as("perestroika-reactor", ABOUT);
    run_main("info", async move {
        let farm = cli.common.load()?;
        match cli.command {
            Command::Run => {
                preflight(&farm).demand()?;
                let gerrit = gerrit_settings(&farm)?.clone();
                let mapping = farm.mapping()?;
                // Build outcomes go back to the changes over their own SSH session; the same
                // queues carry the publisher's rebuild requests, taken with feedback off too.
                let feedback = {
                    let (farm, gerrit) = (std::sync::Arc::new(farm.clone()), gerrit.clone());
                    tokio::spawn(perestroika_reactor::feedback::run(farm, gerrit))
                };
                let reactor = Reactor::start(farm, gerrit, mapping).await?;
                let result: anyhow::Result<()> = tokio::select! {
                    e = reactor.run() => Err(e.into()),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                };
                feedback.abort();
                result?
            }
            Command::Check => preflight(&farm).print(cli.common.json)?,
            Command::Map { project, branch } => {
                let mapping = farm.mapping()?;
                match mapping.resolve(&farm, &project, &branch) {
                    Ok(found) if cli.common.json => {
                        println!("{}", serde_json::to_string_pretty(&found)?)
                    }
                    Ok(found) => print_match(&found),
                    Err(why) => anyhow::bail!("not built: {why}"),
                }
            }
        }
        Ok(())
    })
}

/// A resolved project in words, one fact a line.
fn print_match(found: &perestroika_config::ProjectMatch) {
    println!("rule:      {}", found.rule);
    println!("customer:  {}", found.customer);
    println!("version:   {}", found.version);
    println!("package:   {}", found.package);
    println!("role:      {}", found.role);
    println!("code:      {}", found.code_project);
    println!("packaging: {}", found.packaging_project);
    println!("branch:    {}", found.branch);
    match (&found.distro, found.family) {
        (Some(distro), Some(family)) => println!("distro:    {distro} ({family})"),
        (Some(distro), None) => println!("distro:    {distro}"),
        _ => println!("distro:    every distro of the release"),
    }
}

fn gerrit_settings(farm: &FarmConfig) -> Result<&GerritSettings, UsageError> {
    farm.gerrit.as_ref().ok_or_else(|| {
        UsageError(format!(
            "configuration {} has no [gerrit] section; the reactor needs host, user, key_file and known_hosts",
            farm.source.display()
        ))
    })
}
