use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perestroika_config::cli::{load_config, print_check, run_main, DEFAULT_CONFIG};
use perestroika_config::Stage;

/// Includes built packages into signed deb and rpm repositories and switches them live atomically.
#[derive(Parser)]
#[command(name = "perestroika-publisher", version)]
struct Cli {
    /// Farm configuration file.
    #[arg(long, short, global = true, env = "PERESTROIKA_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and show the queues this part consumes.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("info", async move {
        let farm = load_config(&cli.config)?;
        match cli.command {
            Command::Check => print_check(&farm, "publisher", Stage::Publish),
        }
        Ok(())
    })
}
