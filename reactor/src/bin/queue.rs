use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use perestroika_config::broker::Broker;
use perestroika_config::cli::{load_config, run_main, DEFAULT_CONFIG};
use perestroika_reactor::topology;

/// The operator's tool for the farm's queues.
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
        }
        broker.close().await;
        Ok(())
    })
}
