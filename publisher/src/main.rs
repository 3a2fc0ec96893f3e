use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perestroika_config::preflight::Report;
use perestroika_config::FarmConfig;
use perestroika_host::cli::{known_release, load_config, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_protocol::messages::Target;
use perestroika_protocol::Stage;
use perestroika_publisher::publish::{PublishError, PublishRequest, Publisher};
use perestroika_publisher::signing::{import_secret_key, Signer};

/// Includes built packages into signed deb and rpm repositories and switches them live
/// atomically. The only part of the farm that holds the signing key.
#[derive(Parser)]
#[command(name = "perestroika-publisher", version)]
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

/// The publisher's private keyring.
fn keyring(farm: &FarmConfig) -> PathBuf {
    farm.paths.state.join("publisher/gnupg")
}

fn passphrase(farm: &FarmConfig, file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    let file = file.or_else(|| {
        farm.signing
            .as_ref()
            .and_then(|s| s.passphrase_file.clone())
    });
    if let Some(file) = file {
        let text = fs_err::read_to_string(&file)?;
        return Ok(Some(text.trim_end_matches('\n').to_owned()));
    }
    Ok(std::env::var("PERESTROIKA_PASSPHRASE").ok())
}

/// Opens the configured signing key(s), refusing when missing or expired.
fn signer(farm: &FarmConfig) -> anyhow::Result<Signer> {
    open_signer(farm, false)
}

/// The configured keys, with the review key (`signing.review_fingerprint`) for review and
/// topic repositories; `background` checks them while the caller goes on (see
/// [`Signer::open_in_background`]).
fn open_signer(farm: &FarmConfig, background: bool) -> anyhow::Result<Signer> {
    let (home, fingerprints, passphrase) = signing_keys(farm)?;
    let open = |fingerprints: &[String]| -> anyhow::Result<Signer> {
        let signer = if background {
            Signer::open_in_background(&home, fingerprints, passphrase.clone())
        } else {
            Signer::open(&home, fingerprints, passphrase.clone())?
        };
        Ok(signer.with_deadline(farm.publish.command_deadline()))
    };
    let mut signer = open(&fingerprints)?;
    if let Some(review) = farm.signing.as_ref().and_then(|s| s.review()) {
        signer = signer.with_review(None, open(&[review])?);
    }
    for customer in &farm.customers {
        if let Some(review) = farm
            .review_key(&customer.name)
            .filter(|_| customer.review_fingerprint.is_some())
        {
            signer = signer.with_review(Some(&customer.name), open(&[review])?);
        }
    }
    Ok(signer)
}

/// The keyring, the fingerprints that sign, and the passphrase, from the configuration.
fn signing_keys(farm: &FarmConfig) -> anyhow::Result<(PathBuf, Vec<String>, Option<String>)> {
    let Some(signing) = &farm.signing else {
        return Err(UsageError(format!(
            "configuration {} has no [signing] section; the publisher needs the fingerprint of the key it signs with",
            farm.source.display()
        ))
        .into());
    };
    let mut fingerprints = vec![signing.fingerprint.clone()];
    fingerprints.extend(signing.also_sign_with.iter().cloned());
    Ok((keyring(farm), fingerprints, passphrase(farm, None)?))
}

/// What the publisher needs to run: the signing section, a passphrase file only its owner
/// reads, and every key it signs with present and usable in its keyring.
fn preflight(farm: &FarmConfig) -> Report {
    let mut report =
        perestroika_protocol::queues::consuming_report(farm, "publisher", Stage::Publish);
    let Some(signing) = &farm.signing else {
        report.error(
            None,
            "no [signing] section; the publisher needs the fingerprint of the key it signs with",
        );
        return report;
    };
    if let Some(file) = &signing.passphrase_file {
        report.readable_file("signing.passphrase_file", file, true);
        if report.has_errors() {
            return report;
        }
    }
    let signer = match signer(farm) {
        Ok(signer) => signer,
        Err(e) => {
            let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
            report.error(Some("signing.fingerprint"), causes.join(": "));
            return report;
        }
    };
    report.note(format!(
        "signing key {} is present and can sign",
        signer.fingerprint()
    ));
    for customer in &farm.customers {
        let review = signer.for_review(&customer.name);
        if std::ptr::eq(review, &signer) {
            report.warn(
                Some("signing.review_fingerprint"),
                format!(
                    "{}'s review and topic repositories are signed with the release's key, so \
                     whoever serves them can pass one off as the release; set it to a key of \
                     their own",
                    customer.name
                ),
            );
        } else {
            report.note(format!(
                "review key {} is present and signs {}'s review and topic repositories",
                review.fingerprint(),
                customer.name
            ));
        }
    }
    report
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
    let signer = signer(farm)?;
    let publisher = Publisher {
        farm,
        signer: &signer,
    };
    let (tree, name) = publisher.tree(&customer, &version, &Target::Release);
    let live = tree.current();
    let shipped = publisher.shipped(&name);
    match cmd {
        SnapshotCommand::List { .. } => {
            let listed: Vec<serde_json::Value> = tree
                .generations()
                .into_iter()
                .map(|g| {
                    serde_json::json!({
                        "tree": name,
                        "snapshot": g,
                        "live": Some(g) == live,
                        "path": tree.generation(g),
                        "shipped": shipped.get(&g),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if listed.is_empty() {
                println!("{name} has no snapshots yet");
            } else {
                for g in tree.generations() {
                    let mark = if Some(g) == live { "*" } else { " " };
                    let kept = shipped.get(&g).map_or(String::new(), |s| {
                        format!("  shipped {}{}", s.marked.format("%Y-%m-%d"), note(&s.note))
                    });
                    println!("{mark} {name} {g}  {}{kept}", tree.generation(g).display());
                }
            }
        }
        SnapshotCommand::Keep { id, note: text, .. } => {
            let mark = publisher
                .keep_snapshot(&customer, &version, id, &text)
                .map_err(|e| match e {
                    PublishError::Refused(why) => UsageError(why).into(),
                    e => anyhow::Error::from(e),
                })?;
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
            let record = tree.generation(id).join("snapshot.json");
            let text = fs_err::read_to_string(&record).map_err(|_| {
                UsageError(format!("{name} has no snapshot {id} (see `snapshot list`)"))
            })?;
            let mut record: serde_json::Value = serde_json::from_str(&text)?;
            let mut deb = serde_json::Map::new();
            for suite in record["deb_suites"].as_array().into_iter().flatten() {
                let suite = suite.as_str().unwrap_or_default();
                let lines =
                    perestroika_publisher::publish::deb_contents(&tree.generation(id), suite);
                deb.insert(suite.to_owned(), lines.into());
            }
            if json {
                record["live"] = (Some(id) == live).into();
                record["deb_packages"] = deb.into();
                println!("{}", serde_json::to_string_pretty(&record)?);
                return Ok(());
            }
            let created = record["created"].as_str().unwrap_or("at an unknown time");
            let state = if Some(id) == live { ", live" } else { "" };
            println!("{name} snapshot {id}{state}, made {created}");
            for (suite, lines) in &deb {
                for line in lines.as_array().into_iter().flatten() {
                    println!("{suite} {}", line.as_str().unwrap_or_default());
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
    let cli = Cli::parse();
    run_main("info", async move {
        let farm = load_config(&cli.config)?;
        match cli.command {
            Command::Check => preflight(&farm).print(cli.json)?,
            Command::Key(KeyCommand::Import {
                file,
                passphrase_file,
            }) => {
                let armored = fs_err::read(&file)?;
                let pass = passphrase(&farm, passphrase_file)?;
                let fprs = import_secret_key(&keyring(&farm), &armored, pass.as_deref())?;
                for f in &fprs {
                    println!("secret key {f} is in {}", keyring(&farm).display());
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
                let signer = open_signer(&farm, true)?;
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
                let signer = signer(&farm)?;
                tracing::info!(key = signer.fingerprint(), "signing key ready");
                let farm = std::sync::Arc::new(farm);
                tokio::select! {
                    _ = perestroika_publisher::farm::run(farm, std::sync::Arc::new(signer)) => {}
                    _ = tokio::signal::ctrl_c() => tracing::info!("stopped"),
                }
            }
            Command::Snapshot(cmd) => snapshot(&farm, cli.json, cmd)?,
            Command::ExportKey => {
                let key = signer(&farm)?.export_public()?;
                print!("{}", String::from_utf8_lossy(&key));
            }
        }
        Ok(())
    })
}
