use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use perestroika_config::FarmConfig;
use perestroika_host::cli::{known_release, run_main, UsageError};
use perestroika_protocol::messages::Target;
use perestroika_publisher::error::PublishError;
use perestroika_publisher::keys::{self, KeysError};
use perestroika_publisher::preflight::preflight;
use perestroika_publisher::publish::PublishRequest;
use perestroika_publisher::publisher::Publisher;
use perestroika_publisher::signing::import_secret_key;
use perestroika_publisher::trees::Trees;

/// What `--help` says the binary does.
const ABOUT: &str = "Includes built packages into signed deb and rpm repositories and switches them live atomically. The only part of the farm that holds the signing key.";

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and show the queues this part consumes.
    Check,
    /// Consume the publish queues of the configuration and publish what arrives. Refuses to
    /// start without a usable signing key.
    Run,
    /// List the snapshots (generations) of a release, or show one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Manage the signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the public half of the signing key(s), ASCII-armored.
    ExportKey,
    /// Publish .deb, .udeb and .dsc files without any queue, exactly as a publish job would:
    /// same checks, signing and atomic switch.
    Include {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        distro: String,
        /// Publish into the review repository of this Gerrit change instead of the release.
        #[arg(long, conflicts_with = "topic")]
        review: Option<u64>,
        /// Publish into the review repository of this Gerrit topic instead of the release.
        #[arg(long)]
        topic: Option<String>,
        /// The files; a .dsc's tarballs must lie beside it.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Every snapshot of a release, oldest first; `*` marks the live one.
    List {
        /// The customer (e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
    },
    /// What a snapshot holds: when it was made, and each suite's packages.
    Show {
        /// The customer (e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
        /// The snapshot's number, as `snapshot list` shows it.
        id: u64,
    },
    /// Mark a snapshot as shipped: it is never pruned (`publish.keep_snapshots`).
    Keep {
        /// The customer (e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
        /// The snapshot's number, as `snapshot list` shows it.
        id: u64,
        /// What it shipped as (e.g. "9.0.3 GA"), shown by `snapshot list`.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Remove a snapshot's shipped mark: a publish may then prune it.
    Unkeep {
        /// The customer (e.g. acme).
        customer: String,
        /// The release series (e.g. 9.0).
        version: String,
        /// The snapshot's number, as `snapshot list` shows it.
        id: u64,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Import the operator's ASCII-armored secret key into the publisher's private keyring
    /// (`<state>/publisher/gnupg`). The farm never generates keys.
    Import {
        /// The key, as written by `gpg --armor --export-secret-keys FPR`.
        file: PathBuf,
        /// File holding the key's passphrase (default: the configuration's
        /// signing.passphrase_file, or the PERESTROIKA_PASSPHRASE environment variable).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

/// The configured keys; a configuration without them is the operator's to fix.
fn signer(
    farm: &FarmConfig,
    background: bool,
) -> anyhow::Result<perestroika_publisher::signing::Signer> {
    keys::open_signer(farm, background).map_err(keys_error)
}

fn keys_error(e: KeysError) -> anyhow::Error {
    match e {
        KeysError::NoSigning { .. } => UsageError(e.to_string()).into(),
        e => e.into(),
    }
}

/// A request the publisher refuses (an unknown snapshot, say) is the operator's to fix.
fn refusal(e: PublishError) -> anyhow::Error {
    if e.is_refusal() {
        UsageError(e.to_string()).into()
    } else {
        e.into()
    }
}

/// A shipped mark's note as shown after it: ` (9.0.3 GA)`, or nothing.
fn note(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

fn snapshot(farm: &FarmConfig, json: bool, cmd: SnapshotCommand) -> anyhow::Result<()> {
    let (customer, version) = match &cmd {
        SnapshotCommand::List { customer, version }
        | SnapshotCommand::Show {
            customer, version, ..
        }
        | SnapshotCommand::Keep {
            customer, version, ..
        }
        | SnapshotCommand::Unkeep {
            customer, version, ..
        } => (customer.clone(), version.clone()),
    };
    known_release(farm, &customer, &version)?;
    // Snapshots are paths and records: no key is opened for them.
    let publisher = Trees { farm };
    let (_, name) = publisher.tree(&customer, &version, &Target::Release);
    match cmd {
        SnapshotCommand::List { .. } => {
            let (name, snapshots) = publisher.snapshots(&customer, &version);
            let listed: Vec<serde_json::Value> = snapshots
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "tree": name,
                        "snapshot": s.snapshot,
                        "live": s.live,
                        "path": s.path,
                        "shipped": s.shipped,
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if listed.is_empty() {
                println!("{name} has no snapshots yet");
            } else {
                for s in &snapshots {
                    let mark = if s.live { "*" } else { " " };
                    let kept = s.shipped.as_ref().map_or(String::new(), |s| {
                        format!("  shipped {}{}", s.marked.format("%Y-%m-%d"), note(&s.note))
                    });
                    println!("{mark} {name} {}  {}{kept}", s.snapshot, s.path.display());
                }
            }
        }
        SnapshotCommand::Keep { id, note: text, .. } => {
            let mark = publisher
                .keep_snapshot(&customer, &version, id, &text)
                .map_err(refusal)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&mark)?);
            } else {
                println!("{name} snapshot {id} is kept as shipped{}", note(&text));
            }
        }
        SnapshotCommand::Unkeep { id, .. } => {
            let was = publisher.unkeep_snapshot(&customer, &version, id)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"tree": name, "snapshot": id, "was_kept": was})
                );
            } else if was {
                println!("{name} snapshot {id} is no longer kept; a publish may prune it");
            } else {
                println!("{name} snapshot {id} was not marked shipped; nothing changed");
            }
        }
        SnapshotCommand::Show { id, .. } => {
            let contents = publisher
                .snapshot_contents(&customer, &version, id)
                .map_err(refusal)?;
            let mut record = contents.record;
            if json {
                record["live"] = contents.live.into();
                record["deb_packages"] = serde_json::to_value(&contents.deb)?;
                println!("{}", serde_json::to_string_pretty(&record)?);
                return Ok(());
            }
            let created = record["created"].as_str().unwrap_or("at an unknown time");
            let state = if contents.live { ", live" } else { "" };
            println!("{name} snapshot {id}{state}, made {created}");
            for (suite, lines) in &contents.deb {
                for line in lines {
                    println!("{suite} {line}");
                }
            }
            for (repo, files) in record["rpm"].as_object().into_iter().flatten() {
                for file in files.as_array().into_iter().flatten() {
                    println!("{repo} {}", file.as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli =
        perestroika_host::cli::Invocation::<Command>::parse_as("perestroika-publisher", ABOUT);
    run_main("info", async move {
        let farm = cli.common.load()?;
        match cli.command {
            Command::Check => preflight(&farm).print(cli.common.json)?,
            Command::Key(KeyCommand::Import {
                file,
                passphrase_file,
            }) => {
                let armored = fs_err::read(&file)?;
                let pass = keys::passphrase(&farm, passphrase_file).map_err(keys_error)?;
                let keyring = keys::keyring(&farm);
                let fprs = import_secret_key(&keyring, &armored, pass.as_deref())?;
                for f in &fprs {
                    println!("secret key {f} is in {}", keyring.display());
                }
                if let Some(signing) = &farm.signing {
                    if !fprs
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(&signing.fingerprint))
                    {
                        eprintln!(
                            "warning: the configuration signs with {}, which is not among these keys",
                            signing.fingerprint
                        );
                    }
                }
            }
            Command::Include {
                customer,
                version,
                distro,
                review,
                topic,
                files,
            } => {
                for f in &files {
                    let name = f
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    perestroika_config::names::check_file_name(&name)
                        .map_err(|e| UsageError(e.to_string()))?;
                    if !f.is_file() {
                        return Err(UsageError(format!("{}: no such file", f.display())).into());
                    }
                }
                let target = match (review, topic) {
                    (Some(change), _) => Target::Review { change },
                    (None, Some(topic)) => {
                        perestroika_config::names::check_token("topic", &topic)
                            .map_err(|e| UsageError(e.to_string()))?;
                        Target::Topic { topic }
                    }
                    (None, None) => Target::Release,
                };
                // The keys are checked while the files are checked and included (nothing
                // public changes before the first signature, which waits for the check).
                let signer = signer(&farm, true)?;
                let publisher = Publisher {
                    farm: &farm,
                    signer: &signer,
                };
                let published = publisher.publish(&PublishRequest {
                    customer,
                    version,
                    distro,
                    target,
                    files,
                    log: None,
                    requested_at: None,
                })?;
                // An unchanged publish signs nothing: the keys must still be usable.
                signer.ready()?;
                if published.changed {
                    println!(
                        "published {} generation {}",
                        published.tree, published.generation
                    );
                } else {
                    println!(
                        "unchanged: {} generation {} already holds these files",
                        published.tree, published.generation
                    );
                }
            }
            Command::Run => {
                preflight(&farm).demand()?;
                let signer = signer(&farm, false)?;
                tracing::info!(key = signer.fingerprint(), "signing key ready");
                let farm = std::sync::Arc::new(farm);
                tokio::select! {
                    _ = perestroika_publisher::farm::run(farm, std::sync::Arc::new(signer)) => {}
                    _ = tokio::signal::ctrl_c() => tracing::info!("stopped"),
                }
            }
            Command::Snapshot(cmd) => snapshot(&farm, cli.common.json, cmd)?,
            Command::ExportKey => {
                let key = signer(&farm, false)?.export_public()?;
                print!("{}", String::from_utf8_lossy(&key));
            }
        }
        Ok(())
    })
}
