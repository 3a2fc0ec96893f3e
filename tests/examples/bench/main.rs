//! Benchmarks, each printed next to the standard tool it is compared with. Not tests: figures
//! vary by machine, so compare the two columns of one run, never against fixed numbers.
//!
//! `.ci/bench` installs what a comparison needs, builds the release binaries and this example,
//! and runs it; one module per comparison. Exit code 0 when every figure was measured, 1 when
//! a tool failed, 2 on bad usage.

mod data;
mod farm;
mod measure;
mod mirror;
mod publisher;
mod publisher_rpm;
mod reactor;
mod worker;
mod worker_rpm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks of Perestroika's parts next to the standard tools.
#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    /// Where inputs and work trees are kept between runs.
    #[arg(long, default_value = "target/bench")]
    root: PathBuf,
    /// Warm runs per tool, alternating (one cold run each before them where it applies).
    #[arg(long, env = "BENCH_RUNS", default_value_t = 3)]
    runs: usize,
    #[command(subcommand)]
    part: Part,
}

#[derive(Subcommand)]
enum Part {
    /// `perestroika-worker build` of a Debian source package vs `sbuild --chroot-mode=unshare`.
    Worker(worker::Args),
    /// The rpm path (greet-motd, build-requiring greet from the release) vs plain rpmbuild in
    /// a fresh copy of the same root.
    WorkerRpm,
    /// Publishing debs vs reprepro and aptly (if installed), then rpms vs
    /// rpmsign + createrepo_c + gpg.
    Publisher(publisher::Args),
    /// One new package into a mirror: `perestroika-mirror sync` vs `rsync -a --delete`.
    Mirror(mirror::Args),
    /// Gerrit events over SSH to confirmed build jobs: events/s next to OpenSSH's client
    /// reading the same stream, and latency.
    Reactor(reactor::Args),
    /// Queued builds taken by one, two and three workers: builds per minute and the scaling
    /// ratio.
    Farm(farm::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = std::fs::create_dir_all(&cli.root)
        .map_err(anyhow::Error::from)
        .and_then(|()| std::path::absolute(&cli.root).map_err(anyhow::Error::from))
        .and_then(|root| {
            // The harness's throwaway farms live beside the inputs, on the same disk.
            let tmp = root.join("tmp");
            fs_err::create_dir_all(&tmp)?;
            std::env::set_var("TMPDIR", &tmp);
            match cli.part {
                Part::Worker(args) => {
                    worker::run(&root, cli.runs, &args)?;
                    worker_rpm::run(&root, cli.runs)
                }
                Part::WorkerRpm => worker_rpm::run(&root, cli.runs),
                Part::Publisher(args) => {
                    publisher::run(&root, &args)?;
                    for &n in &args.rpm_sizes {
                        publisher_rpm::run(&root, n)?;
                    }
                    Ok(())
                }
                Part::Mirror(args) => mirror::run(&root, &args),
                Part::Reactor(args) => reactor::run(&args),
                Part::Farm(args) => farm::run(&args),
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
