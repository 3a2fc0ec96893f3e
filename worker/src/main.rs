use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perestroika_config::cli::{load_config, print_check, run_main, DEFAULT_CONFIG};
use perestroika_config::Stage;

/// Builds packages from git in a fresh, unprivileged container per build.
#[derive(Parser)]
#[command(name = "perestroika-worker", version)]
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
            Command::Check => print_check(&farm, "worker", Stage::Build),
        }
        Ok(())
    })
}
