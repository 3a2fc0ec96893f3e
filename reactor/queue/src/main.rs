//! `perestroika-queue`, the operator's tool for the farm's queues.

use std::process::ExitCode;

use clap::Subcommand;
use perestroika_host::cli::run_main;
use perestroika_protocol::broker::Broker;

use commands::broker_users::BrokerUsersArgs;
use commands::client::ClientArgs;
use commands::dead::DeadAction;
use commands::promote::PromoteArgs;
use commands::rebuild_release::RebuildReleaseArgs;
use commands::retrigger::RetriggerArgs;
use commands::{broker_users, client, dead, promote, rebuild_release, topology};

mod commands;
mod retrigger;

/// What `--help` says the binary does.
const ABOUT: &str = "The operator's tool for the farm's queues: declare them, watch them, rebuild by hand, and deal with dead letters.";

#[derive(Subcommand)]
enum Command {
    /// Declare every queue the configuration calls for (durable quorum queues, each with a
    /// dead-letter queue). Safe to run again; recreates a farm's topology on new hosts.
    Bootstrap,
    /// Print the broker user each part should have and what RabbitMQ should let it do (as
    /// `rabbitmqctl` commands): consume its own queues, send only what it sends. Needs no
    /// broker; run the commands as the broker's administrator, after `bootstrap`.
    BrokerUsers(BrokerUsersArgs),
    /// Show each queue's depth and consumers.
    Queues,
    /// Queue a manual rebuild of a package: at a branch head (PROJECT BRANCH), at a commit
    /// (PROJECT BRANCH --commit SHA), or at a change's patch set (--change N or N/PS). The
    /// rebuild gets a revision above every one published, so it installs as an upgrade.
    Retrigger(RetriggerArgs),
    /// Rebuild every package of a release snapshot from its own source packages, with only
    /// that snapshot (for build dependencies) and the distro's base image, into a scratch
    /// directory; report per package whether it built and whether it is bit-identical to the
    /// published one, and name the build dependencies the release lacks. Runs the builds on
    /// this host (Docker), with `perestroika-worker rebuild-release`. Exits 0 when every
    /// package rebuilt identically, 1 otherwise.
    RebuildRelease(RebuildReleaseArgs),
    /// Promote a published package between suites of a release without rebuilding it: the
    /// same files (source and every binary built from it) are copied into the target suite,
    /// which is re-signed, snapshotted and announced to the mirrors. Refused, with the missing
    /// names, when the package's runtime or build dependencies are not satisfiable in the
    /// target suite, unless --force. Waits for the publisher's answer: exit 0 when promoted,
    /// 1 when refused.
    Promote(PromoteArgs),
    /// Print how a client uses a release: for each deb distro the commands (as root) that
    /// download the release's KEY.asc and add its apt sources line naming the downloaded key;
    /// for each rpm distro the dnf command. Needs no broker.
    Client(ClientArgs),
    /// List dead-lettered jobs with their reasons, or send one back (`dead requeue JOB_ID`).
    Dead {
        #[command(subcommand)]
        action: Option<DeadAction>,
    },
}

fn main() -> ExitCode {
    let cli = perestroika_host::cli::Invocation::<Command>::parse_as("perestroika-queue", ABOUT);
    if let Command::RebuildRelease(args) = &cli.command {
        return rebuild_release::forward(&cli.common, args);
    }
    run_main("warn", async move {
        let farm = cli.common.load()?;
        let json = cli.common.json;
        let broker = match &cli.command {
            Command::BrokerUsers(args) => return broker_users::print(&farm, args, json),
            Command::Client(args) => return client::print(&farm, args, json),
            _ => Broker::connect(&farm.broker).await?,
        };
        let done = match cli.command {
            Command::Bootstrap => topology::bootstrap(&broker, &farm, json).await,
            Command::Queues => topology::show(&broker, &farm, json).await,
            Command::Retrigger(args) => commands::retrigger::run(&broker, &farm, args, json).await,
            Command::Promote(args) => promote::run(&broker, &farm, args, json).await,
            Command::Dead { action } => dead::run(&broker, &farm, action, json).await,
            Command::BrokerUsers(_) | Command::Client(_) | Command::RebuildRelease(_) => {
                unreachable!("answered without a broker")
            }
        };
        broker.close().await;
        done
    })
}
