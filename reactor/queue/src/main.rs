use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use perestroika_config::client::{self, AptClient};
use perestroika_config::{Family, FarmConfig};
use perestroika_host::cli::{known_release, load_config, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::Target;
use perestroika_protocol::messages::{Message, Promotion, PromotionResult};
use perestroika_protocol::{QueueName, Stage};
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
    /// Print the broker user each part should have and what RabbitMQ should let it do (as
    /// `rabbitmqctl` commands): consume its own queues, send only what it sends. Needs no
    /// broker; run the commands as the broker's administrator, after `bootstrap`.
    BrokerUsers {
        /// The users' names are `<prefix>-reactor`, `<prefix>-worker`, ….
        #[arg(long, default_value = "perestroika")]
        prefix: String,
    },
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
    /// Rebuild every package of a release snapshot from its own source packages, with only
    /// that snapshot (for build dependencies) and the distro's base image, into a scratch
    /// directory; report per package whether it built and whether it is bit-identical to the
    /// published one, and name the build dependencies the release lacks. Runs the builds on
    /// this host (Docker). Exits 0 when every package rebuilt identically, 1 otherwise.
    RebuildRelease {
        /// The customer (as in `[[customers]] name`, e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
        /// The snapshot to rebuild (see `perestroika-publisher snapshot list`); default: live.
        #[arg(long)]
        snapshot: Option<u64>,
        /// Where the rebuilds go (default: <state>/rebuild/<customer>/<version>/<snapshot>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Promote a published package between suites of a release without rebuilding it: the
    /// same files (source and every binary built from it) are copied into the target suite,
    /// which is re-signed, snapshotted and announced to the mirrors. Refused, with the missing
    /// names, when the package's runtime or build dependencies are not satisfiable in the
    /// target suite, unless --force. Waits for the publisher's answer: exit 0 when promoted,
    /// 1 when refused.
    Promote {
        /// The customer (as in `[[customers]] name`, e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
        /// The source package, optionally with its version: greet or greet=1.1+p2.0.
        package: String,
        /// The suite to take it from (default: `publish.proposed`, where merges of a release in
        /// maintenance go).
        #[arg(long)]
        from: Option<String>,
        /// The suite to put it in (updates, security, holdback, …).
        #[arg(long)]
        to: String,
        /// Only these distros (repeatable; default: every distro that has the package).
        #[arg(long)]
        distro: Vec<String>,
        /// Promote even when dependencies are not satisfiable in the target suite.
        #[arg(long)]
        force: bool,
        /// Queue the promotion and return without waiting for its outcome.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the publisher's answer, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Print how a client uses a release: for each deb distro the commands (as root) that
    /// download the release's KEY.asc and add its apt sources line naming the downloaded key;
    /// for each rpm distro the dnf command. Needs no broker.
    Client {
        /// The customer (as in `[[customers]] name`, e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
        /// A suite of `publish.suites` (updates, proposed, …); default: the release suite.
        #[arg(long)]
        suite: Option<String>,
        /// Only this distro (default: every distro of the release).
        #[arg(long)]
        distro: Option<String>,
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
    Requeue {
        /// The job id, as `dead` lists it.
        job_id: String,
    },
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

/// How a client uses suite `suite` of distro `distro` of a release (see
/// `perestroika_config::client`): the apt commands for a deb distro, the dnf command for an rpm
/// one.
fn client_lines(
    farm: &FarmConfig,
    customer: &str,
    version: &str,
    distro: &str,
    suite: &str,
) -> Vec<String> {
    let url = client::public_url(farm);
    let tree = Target::Release.tree(customer, version);
    let family = farm
        .release(customer, version)
        .and_then(|r| r.family_of(distro));
    match family {
        Some(Family::Rpm) => vec![client::dnf_install(url.as_deref(), &tree, suite, "PACKAGE")],
        _ => {
            let apt = AptClient::new(url.as_deref(), &tree, suite);
            let mut lines = apt.commands().to_vec();
            lines.push("apt-get update".into());
            lines
        }
    }
}

fn print_client(
    farm: &FarmConfig,
    customer: &str,
    version: &str,
    suite: Option<&str>,
    distro: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let release = known_release(farm, customer, version)?;
    if let Some(name) = suite {
        if !farm.publish.suites.iter().any(|s| s == name) {
            return Err(UsageError(format!(
                "--suite {name} is not one of publish.suites ({})",
                farm.publish.suites.join(", ")
            ))
            .into());
        }
    }
    if let Some(d) = distro {
        if release.family_of(d).is_none() {
            return Err(UsageError(format!("{d} is not a distro of {customer} {version}")).into());
        }
    }
    let mut out = Vec::new();
    for (_, d) in release
        .distros()
        .filter(|(_, d)| distro.is_none_or(|w| w == *d))
    {
        let full = match suite {
            Some(name) => format!("{d}-{name}"),
            None => d.to_owned(),
        };
        let lines = client_lines(farm, customer, version, d, &full);
        if !json {
            println!("# {full}");
            for line in &lines {
                println!("{line}");
            }
        }
        out.push(serde_json::json!({ "distro": d, "suite": full, "commands": lines }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("warn", async move {
        let farm = load_config(&cli.config)?;
        if let Command::RebuildRelease {
            customer,
            version,
            snapshot,
            out,
        } = &cli.command
        {
            return rebuild_release(&farm, customer, version, *snapshot, out.clone(), cli.json)
                .await;
        }
        if let Command::BrokerUsers { prefix } = &cli.command {
            return broker_users(&farm, prefix, cli.json);
        }
        if let Command::Client {
            customer,
            version,
            suite,
            distro,
        } = &cli.command
        {
            return print_client(
                &farm,
                customer,
                version,
                suite.as_deref(),
                distro.as_deref(),
                cli.json,
            );
        }
        let broker = Broker::connect(&farm.broker).await?;
        match cli.command {
            Command::BrokerUsers { .. } => unreachable!("answered without a broker"),
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
                    println!(
                        "{:<40} {:>9} {:>11} {:>9}",
                        "QUEUE", "WAITING", "IN PROGRESS", "CONSUMERS"
                    );
                    for r in &report {
                        let progress = r
                            .in_progress
                            .map_or_else(|| "-".to_owned(), |n| n.to_string());
                        match r.stats {
                            Some(s) => println!(
                                "{:<40} {:>9} {:>11} {:>9}",
                                r.queue, s.messages, progress, s.consumers
                            ),
                            None => println!(
                                "{:<40} missing (run `perestroika-queue bootstrap`)",
                                r.queue
                            ),
                        }
                    }
                    if farm.broker.management_url.is_none() {
                        println!(
                            "(jobs in progress show with [broker] management_url, RabbitMQ's management API)"
                        );
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
            Command::RebuildRelease { .. } | Command::Client { .. } => {
                unreachable!("handled before connecting")
            }
            Command::Promote {
                customer,
                version,
                package,
                from,
                to,
                distro,
                force,
                no_wait,
                timeout,
            } => {
                let from = from.unwrap_or_else(|| farm.publish.proposed.clone());
                let (name, wanted) = match package.split_once('=') {
                    Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                    None => (package.clone(), None),
                };
                known_release(&farm, &customer, &version)?;
                let mut promotion = Promotion::new(
                    &customer,
                    &version,
                    &name,
                    wanted.as_deref(),
                    &from,
                    &to,
                    &distro,
                    force,
                );
                let reply = if no_wait {
                    None
                } else {
                    Some(broker.declare_reply_queue().await?)
                };
                promotion.reply_to = reply.clone();
                promotion.check().map_err(|e| UsageError(e.to_string()))?;
                let queue = QueueName::new(Stage::Publish, &customer, &version).to_string();
                broker
                    .publish(&queue, &promotion, &promotion.job_id)
                    .await
                    .with_context(|| format!("queueing the promotion on {queue}"))?;
                let Some(reply) = reply else {
                    println!("queued promotion {} on {queue}", promotion.job_id);
                    broker.close().await;
                    return Ok(());
                };
                if !cli.json {
                    eprintln!(
                        "queued promotion {} of {package} from {from} to {to}; waiting for the publisher",
                        promotion.job_id
                    );
                }
                let answer = broker
                    .take(&reply, std::time::Duration::from_secs(timeout))
                    .await?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "no answer from the publisher within {timeout} s; the promotion {} stays queued on {queue}",
                            promotion.job_id
                        )
                    })?;
                broker.close().await;
                let result = PromotionResult::from_bytes(&answer.data)
                    .context("reading the publisher's answer")?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&result)?);
                } else {
                    for line in &result.copied {
                        println!("copied {line}");
                    }
                    for line in &result.missing {
                        println!("unsatisfied {line}");
                    }
                    if let Some(g) = result.generation {
                        println!("promoted {package} from {from} to {to}: generation {g} is live");
                        let mut suites: Vec<&str> = result
                            .copied
                            .iter()
                            .filter_map(|l| l.split_once(':').map(|(suite, _)| suite))
                            .collect();
                        suites.dedup();
                        for suite in suites {
                            let distro = suite.strip_suffix(&format!("-{to}")).unwrap_or(suite);
                            println!("clients of {suite} use it with (as root):");
                            for line in client_lines(&farm, &customer, &version, distro, suite) {
                                println!("  {line}");
                            }
                        }
                    }
                }
                if let Some(e) = &result.error {
                    anyhow::bail!("promotion refused: {e}");
                }
                if !result.promoted {
                    anyhow::bail!(
                        "promotion refused: {} relation(s) unsatisfiable in {to}; promote what they need first, or use --force",
                        result.missing.len()
                    );
                }
                return Ok(());
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

/// `rebuild-release`: rebuilds the snapshot's deb suites, printing each package as it ends.
async fn rebuild_release(
    farm: &perestroika_config::FarmConfig,
    customer: &str,
    version: &str,
    snapshot: Option<u64>,
    out: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    use perestroika_worker::rebuild::{self, Rebuilt};

    let release = known_release(farm, customer, version)?;
    let (number, dir) =
        rebuild::snapshot_dir(&farm.paths.public_root, customer, version, snapshot)?;
    let out = out.unwrap_or_else(|| {
        farm.paths
            .state
            .join("rebuild")
            .join(customer)
            .join(version)
            .join(number.to_string())
    });
    let timeout = std::time::Duration::from_secs(farm.build.timeout_secs);
    let env = perestroika_worker::build::BuildEnv::local(
        &farm.build,
        farm.build.package_cache.as_deref(),
        timeout,
    )?;
    if !json {
        println!(
            "rebuilding snapshot {number} of {customer} {version} into {}",
            out.display()
        );
    }
    let mut reports = Vec::new();
    for (family, distro) in release.distros() {
        let made = rebuild::rebuild(&env, &dir, family, distro, &out.join(distro), |r| {
            if json {
                return;
            }
            let what = match &r.outcome {
                Rebuilt::Succeeded {
                    identical: true, ..
                } => "rebuilt, identical".to_owned(),
                Rebuilt::Succeeded {
                    differing,
                    unmatched,
                    ..
                } => format!(
                    "rebuilt, DIFFERS: {}",
                    differing
                        .iter()
                        .chain(unmatched)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Rebuilt::Failed { step, missing, .. } if !missing.is_empty() => {
                    format!("FAILED at {step}: the release lacks {}", missing.join(", "))
                }
                Rebuilt::Failed { step, reason, .. } => format!("FAILED at {step}: {reason}"),
            };
            println!("{:<32} {:<28} {what}", r.source, r.version);
        })
        .await?;
        reports.extend(made);
    }
    let bad = reports
        .iter()
        .filter(|r| {
            !matches!(
                r.outcome,
                Rebuilt::Succeeded {
                    identical: true,
                    ..
                }
            )
        })
        .count();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!(
            "{} of {} packages rebuilt bit-identically",
            reports.len() - bad,
            reports.len()
        );
    }
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} packages did not rebuild identically",
            reports.len()
        );
    }
    Ok(())
}

fn broker_users(
    farm: &perestroika_config::FarmConfig,
    prefix: &str,
    json: bool,
) -> anyhow::Result<()> {
    use perestroika_protocol::queues::Part;
    let vhost = perestroika_protocol::broker::vhost_of(&farm.broker.url);
    let users: Vec<serde_json::Value> = Part::ALL
        .iter()
        .map(|part| {
            let p = part.permissions();
            serde_json::json!({
                "part": part.name(),
                "user": format!("{prefix}-{}", part.name()),
                "vhost": vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&users)?);
        return Ok(());
    }
    println!("# As the broker's administrator, after `perestroika-queue bootstrap`; each part's");
    println!("# [broker] url (or PERESTROIKA_BROKER__URL) then names its own user.");
    for u in &users {
        let field = |k: &str| u[k].as_str().unwrap_or_default().to_owned();
        println!(
            "rabbitmqctl add_user {} \"$(cat {}.password)\"",
            field("user"),
            field("user")
        );
        println!(
            "rabbitmqctl set_permissions -p '{}' {} '{}' '{}' '{}'",
            field("vhost"),
            field("user"),
            field("configure"),
            field("write"),
            field("read")
        );
    }
    Ok(())
}
