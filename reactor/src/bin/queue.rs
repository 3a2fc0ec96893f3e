use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use perestroika_config::broker::Broker;
use perestroika_config::cli::{load_config, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_config::{QueueName, Stage};
use perestroika_reactor::retrigger::{self, At};
use perestroika_reactor::ssh::GerritSession;
use perestroika_reactor::{dead, topology};

/// The operator's tool for the farm's queues: declare them, watch them, rebuild by hand,
/// and deal with dead letters.
#[derive(Parser)]
#[command(name = "perestroika-queue", version)]
struct Cli {
    /// Farm configuration file.
    #[arg(long, short, global = true, env = "PERESTROIKA_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Declare every queue the configuration calls for (durable quorum queues, each with a
    /// dead-letter queue). Safe to run again; recreates a farm's topology on new hosts.
    Bootstrap,
    /// Show each queue's depth and consumers.
    Queues,
    /// Queue a manual rebuild of a package: at a branch head (PROJECT BRANCH), at a commit
    /// (PROJECT BRANCH --commit SHA), or at a change's patch set (--change N or N/PS). The
    /// rebuild gets a revision above every one published, so it installs as an upgrade.
    Retrigger {
        /// Gerrit project (code or packaging), e.g. acme/openstack/nova.
        #[arg(required_unless_present = "change")]
        project: Option<String>,
        /// Its branch, e.g. openstack-ci/fuel-9.0/mitaka.
        #[arg(required_unless_present = "change")]
        branch: Option<String>,
        /// Build this commit of PROJECT instead of the branch head.
        #[arg(long, conflicts_with = "change")]
        commit: Option<String>,
        /// Build a change's patch set: 1234 (current patch set) or 1234/3.
        #[arg(long, conflicts_with_all = ["project", "branch"])]
        change: Option<String>,
        /// Rebuild number to use (default: one above the highest published).
        #[arg(long)]
        rebuild: Option<u32>,
        /// Only this distro (default: every distro the package builds for).
        #[arg(long)]
        distro: Option<String>,
        /// Show the jobs without queueing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// List dead-lettered jobs with their reasons, or send one back (`dead requeue JOB_ID`).
    Dead {
        #[command(subcommand)]
        action: Option<DeadAction>,
    },
}

#[derive(Subcommand)]
enum DeadAction {
    /// List every dead-lettered message (the default).
    List,
    /// Send the dead-lettered message with this job id back to the queue it came from.
    Requeue { job_id: String },
}

fn parse_change(text: &str) -> Result<At, UsageError> {
    let bad = || {
        UsageError(format!(
            "--change {text:?}: expected N or N/PS, e.g. 1234/3"
        ))
    };
    let (number, patch_set) = match text.split_once('/') {
        Some((n, ps)) => (n, Some(ps.parse::<u32>().map_err(|_| bad())?)),
        None => (text, None),
    };
    Ok(At::Change {
        number: number.parse().map_err(|_| bad())?,
        patch_set,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("warn", async move {
        let farm = load_config(&cli.config)?;
        let broker = Broker::connect(&farm.broker).await?;
        match cli.command {
            Command::Bootstrap => {
                let names = topology::bootstrap(&broker, &farm)
                    .await
                    .context("declaring the queue topology")?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&names)?);
                } else {
                    for name in &names {
                        println!("declared {name}");
                    }
                    println!("{} queues ready", names.len());
                }
            }
            Command::Queues => {
                let report = topology::report(&broker, &farm).await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{:<40} {:>9} {:>9}", "QUEUE", "MESSAGES", "CONSUMERS");
                    for r in &report {
                        match r.stats {
                            Some(s) => {
                                println!("{:<40} {:>9} {:>9}", r.queue, s.messages, s.consumers)
                            }
                            None => println!(
                                "{:<40} missing (run `perestroika-queue bootstrap`)",
                                r.queue
                            ),
                        }
                    }
                }
            }
            Command::Retrigger {
                project,
                branch,
                commit,
                change,
                rebuild,
                distro,
                dry_run,
            } => {
                let gerrit = farm.gerrit.clone().ok_or_else(|| {
                    UsageError(format!(
                        "configuration {} has no [gerrit] section; retrigger reads branch heads and changes from Gerrit",
                        farm.source.display()
                    ))
                })?;
                let at = match (change, project, branch, commit) {
                    (Some(change), ..) => parse_change(&change)?,
                    (None, Some(project), Some(branch), Some(commit)) => At::Commit {
                        project,
                        branch,
                        commit,
                    },
                    (None, Some(project), Some(branch), None) => At::Head { project, branch },
                    _ => return Err(UsageError("give PROJECT BRANCH, or --change".into()).into()),
                };
                let mapping = farm.mapping()?;
                let session = GerritSession::connect(&gerrit).await?;
                let jobs = retrigger::plan(
                    &farm,
                    &gerrit,
                    &mapping,
                    &session,
                    &at,
                    rebuild,
                    distro.as_deref(),
                )
                .await?;
                for job in &jobs {
                    if !dry_run {
                        let queue = QueueName::new(Stage::Build, &job.customer, &job.version);
                        broker
                            .publish(&queue.to_string(), job, &job.job_id)
                            .await
                            .with_context(|| format!("queueing job {}", job.job_id))?;
                    }
                    if !cli.json {
                        let verb = if dry_run { "would queue" } else { "queued" };
                        println!("{verb} {}: {}", job.job_id, retrigger::describe(job));
                    }
                }
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&jobs)?);
                }
            }
            Command::Dead { action } => match action.unwrap_or(DeadAction::List) {
                DeadAction::List => {
                    let letters = dead::list(&broker, &farm).await?;
                    if cli.json {
                        println!("{}", serde_json::to_string_pretty(&letters)?);
                    } else if letters.is_empty() {
                        println!("no dead-lettered jobs");
                    } else {
                        for l in &letters {
                            println!(
                                "{}  {}  {}\n    reason: {}",
                                l.job_id, l.origin, l.summary, l.reason
                            );
                        }
                        println!(
                            "{} dead-lettered; `perestroika-queue dead requeue JOB_ID` sends one back",
                            letters.len()
                        );
                    }
                }
                DeadAction::Requeue { job_id } => {
                    match dead::requeue(&broker, &farm, &job_id).await? {
                        Some(l) => {
                            if cli.json {
                                println!("{}", serde_json::to_string_pretty(&l)?);
                            } else {
                                println!("requeued {} to {} ({})", l.job_id, l.origin, l.summary);
                            }
                        }
                        None => anyhow::bail!(
                            "no dead-lettered job {job_id}; `perestroika-queue dead` lists them"
                        ),
                    }
                }
            },
        }
        broker.close().await;
        Ok(())
    })
}
