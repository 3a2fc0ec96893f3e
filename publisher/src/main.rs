use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perestroika_config::cli::{load_config, print_check, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_config::{FarmConfig, Stage};
use perestroika_publisher::signing::{import_secret_key, Signer};

/// Includes built packages into signed deb and rpm repositories and switches them live
/// atomically. The only part of the farm that holds the signing key.
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
    /// Manage the signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the public half of the signing key(s), ASCII-armored.
    ExportKey,
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
    let Some(signing) = &farm.signing else {
        return Err(UsageError(format!(
            "configuration {} has no [signing] section; the publisher needs the fingerprint of the key it signs with",
            farm.source.display()
        ))
        .into());
    };
    let mut fingerprints = vec![signing.fingerprint.clone()];
    fingerprints.extend(signing.also_sign_with.iter().cloned());
    Ok(Signer::open(
        &keyring(farm),
        &fingerprints,
        passphrase(farm, None)?,
    )?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("info", async move {
        let farm = load_config(&cli.config)?;
        match cli.command {
            Command::Check => {
                print_check(&farm, "publisher", Stage::Publish);
                let signer = signer(&farm)?;
                println!(
                    "signing key {} is present and can sign",
                    signer.fingerprint()
                );
            }
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
            Command::ExportKey => {
                let key = signer(&farm)?.export_public()?;
                print!("{}", String::from_utf8_lossy(&key));
            }
        }
        Ok(())
    })
}
