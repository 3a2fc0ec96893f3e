use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use perestroika_config::settings::fingerprint;
use perestroika_host::cli::{run_main, UsageError};
use perestroika_mirror::live::live_generation;
use perestroika_mirror::preflight::preflight;
use perestroika_mirror::selection::{pinned, targets, tree_ref, SelectionError};
use perestroika_mirror::status::{self, Status};
use perestroika_mirror::{daemon, http, rsyncd, sync, verify};
use tracing::info;

/// What `--help` says the binary does.
const ABOUT: &str = "Copies the signed public tree to mirror hosts, indexes last, and serves it.";

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and show the queues this part consumes.
    Check,
    /// Consume the mirror queues and keep every configured target in sync, until stopped.
    Run,
    /// Sync one tree (CUSTOMER/VERSION or CUSTOMER/review/NAME) to the targets now, at its
    /// live generation unless --generation says otherwise.
    Sync {
        /// The tree, relative to the public root: acme/9.0 or acme/review/1234.
        tree: String,
        /// Only this target (a [[mirrors]] name).
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        generation: Option<u64>,
        /// List both sides whole instead of sending what changed since the last sync (repairs
        /// a target changed behind the mirror's back).
        #[arg(long)]
        full: bool,
    },
    /// Show, per target and tree, the generation announced, the one synced, and the last error.
    Status,
    /// Check a tree's generation (every signature made by a pinned key, KEY.asc holding only
    /// pinned keys, every indexed file and checksum) and each target against it. Exits 1
    /// listing every problem found.
    Verify {
        /// The tree, relative to the public root: acme/9.0 or acme/review/1234.
        tree: String,
        #[arg(long)]
        target: Option<String>,
        /// Default: what the status says was synced, else the live generation.
        #[arg(long)]
        generation: Option<u64>,
        /// A key whose signatures are accepted (40 hex digits; repeatable). Default: the
        /// configuration's [signing] fingerprint and also_sign_with, or its review_fingerprint
        /// for a review or topic tree.
        #[arg(long = "fingerprint", value_name = "FPR", value_parser = fingerprint)]
        fingerprints: Vec<String>,
    },
    /// Serve a mirror tree over http (and, with --rsync, as the read-only rsync module
    /// `perestroika` for downstream mirrors). Only ROOT is served: point it at the mirror's
    /// copy of the public tree, never at the publisher's state. The http server's limits
    /// (connections at once, header and stall timeouts) come from the configuration's [serve].
    Serve {
        /// The directory to serve.
        #[arg(long)]
        root: PathBuf,
        /// Address for http.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Address for the rsync daemon (off unless given).
        #[arg(long)]
        rsync: Option<SocketAddr>,
        /// Where the rsync daemon's configuration and pid file go.
        #[arg(long, default_value = "/run/perestroika-mirror")]
        run_dir: PathBuf,
    },
}

/// A selection error at the edge: exit code 2 when the command line or configuration is wrong.
fn chosen<T>(picked: Result<T, SelectionError>) -> anyhow::Result<T> {
    picked.map_err(|e| {
        if e.is_usage() {
            UsageError(e.to_string()).into()
        } else {
            e.into()
        }
    })
}

fn main() -> ExitCode {
    let cli = perestroika_host::cli::Invocation::<Command>::parse_as("perestroika-mirror", ABOUT);
    run_main("info", async move {
        let farm = cli.common.load()?;
        match cli.command {
            Command::Check => preflight(&farm).print(cli.common.json)?,
            Command::Run => {
                preflight(&farm).demand()?;
                let targets = chosen(targets(&farm, None))?;
                tokio::select! {
                    r = daemon::run(Arc::new(farm), targets) => r?,
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Command::Sync {
                tree,
                target,
                generation,
                full,
            } => {
                let tree = chosen(tree_ref(&farm, &tree))?;
                let generation = match generation {
                    Some(g) => g,
                    None => live_generation(&farm, &tree)?,
                };
                let mut failed = 0;
                for t in chosen(targets(&farm, target.as_deref()))? {
                    let scratch = daemon::scratch_dir(&farm, &t.name);
                    let started = std::time::Instant::now();
                    let (root, state) = (&farm.paths.public_root, &farm.paths.state);
                    match sync::sync_tracked(root, state, &tree, generation, &t, &scratch, full)
                        .await
                    {
                        Ok(moved) => println!(
                            "{}: {tree} generation {generation} in sync ({} files, {} bytes sent, {:.2} s)",
                            t.name,
                            moved.files,
                            moved.bytes_sent,
                            started.elapsed().as_secs_f64()
                        ),
                        Err(e) => {
                            eprintln!("{}: {e}", t.name);
                            failed += 1;
                        }
                    }
                }
                if failed > 0 {
                    anyhow::bail!("{failed} target(s) failed");
                }
            }
            Command::Status => {
                let status = Status::load(&Status::path(&farm.paths.state))?.snapshot();
                if cli.common.json {
                    let value = status::to_json(&status)?;
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else if status.is_empty() {
                    println!("nothing announced yet");
                } else {
                    for line in status::table(&status) {
                        println!("{line}");
                    }
                }
            }
            Command::Verify {
                tree,
                target,
                generation,
                fingerprints,
            } => {
                let tree_name = tree.clone();
                let tree = chosen(tree_ref(&farm, &tree))?;
                let pinned = chosen(pinned(&farm, &tree_name, fingerprints))?;
                let status = Status::load(&Status::path(&farm.paths.state))?.snapshot();
                let mut problems = Vec::new();
                for t in chosen(targets(&farm, target.as_deref()))? {
                    let known = status.get(&t.name).and_then(|s| s.get(&tree_name));
                    if generation.is_none() && known.is_some_and(|s| s.retired()) {
                        println!(
                            "{}: {tree} is retired (taken down); nothing to verify",
                            t.name
                        );
                        continue;
                    }
                    let synced = known.and_then(|s| s.synced);
                    let generation = match generation.or(synced) {
                        Some(g) => g,
                        None => live_generation(&farm, &tree)?,
                    };
                    let scratch = daemon::scratch_dir(&farm, &t.name);
                    let dir = farm.paths.public_root.join(tree.generation(generation));
                    let mut found = verify::check_generation(&dir, &scratch.join("gpg"), &pinned);
                    found.extend(
                        verify::compare(&farm.paths.public_root, &tree, generation, &t, &scratch)
                            .await?,
                    );
                    if found.is_empty() {
                        println!("{}: {tree} generation {generation} verified", t.name);
                    }
                    for p in found {
                        problems.push(format!("{}: {p}", t.name));
                    }
                }
                if cli.common.json {
                    println!("{}", serde_json::to_string_pretty(&problems)?);
                }
                if !problems.is_empty() {
                    for p in &problems {
                        eprintln!("{p}");
                    }
                    anyhow::bail!("{} problem(s) found", problems.len());
                }
            }
            Command::Serve {
                root,
                http,
                rsync,
                run_dir,
            } => {
                anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
                let listener = tokio::net::TcpListener::bind(http)
                    .await
                    .with_context(|| format!("cannot listen on {http}"))?;
                let limits = http::Limits::from(&farm.serve);
                info!(
                    %http,
                    root = %root.display(),
                    max_connections = limits.max_connections,
                    header_timeout_secs = limits.header_timeout.as_secs(),
                    stall_timeout_secs = limits.stall_timeout.as_secs(),
                    "serving http"
                );
                let _daemon = match rsync {
                    Some(addr) => {
                        let conf = rsyncd::write_config(&run_dir, &root)?;
                        info!(%addr, module = "perestroika", "serving rsync");
                        Some(rsyncd::start(&conf, addr).context("starting rsync --daemon")?)
                    }
                    None => None,
                };
                tokio::select! {
                    r = http::serve(listener, root, limits) => r?,
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
        }
        Ok(())
    })
}
