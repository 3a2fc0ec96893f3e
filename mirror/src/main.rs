use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perestroika_config::cli::{load_config, print_check, run_main, DEFAULT_CONFIG};
use perestroika_config::Stage;

/// Copies the signed public tree to mirror hosts, indexes last, and serves it.
#[derive(Parser)]
#[command(name = "perestroika-mirror", version)]
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
            Command::Check => print_check(&farm, "mirror", Stage::Mirror),
        }
        Ok(())
    })
}
