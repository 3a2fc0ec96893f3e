//! The operator's key, through gpgme: imported once into the publisher's private keyring, then
//! used for every signature the farm makes. Nothing else in the farm sees the secret key.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gpgme::{Context, ExportMode, PinentryMode, Protocol, SignMode};

/// A signing problem, named so that the operator knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("gpgme: {what}: {source}")]
    Gpg {
        what: String,
        #[source]
        source: gpgme::Error,
    },
    #[error("signing key {fingerprint} is not in the publisher's keyring {home}; import it with `perestroika-publisher key import FILE`")]
    Missing { fingerprint: String, home: PathBuf },
    #[error("signing key {fingerprint} cannot sign: {why}")]
    Unusable { fingerprint: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Import(String),
}

fn gpg(what: impl Into<String>) -> impl FnOnce(gpgme::Error) -> SignError {
    let what = what.into();
    move |source| SignError::Gpg { what, source }
}

fn context(home: &Path, passphrase: Option<&str>) -> Result<Context, SignError> {
    fs_err::create_dir_all(home).map_err(|source| SignError::Io {
        path: home.to_owned(),
        source,
    })?;
    restrict(home);
    let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpg("starting gpg"))?;
    let home_str = home
        .to_str()
        .ok_or_else(|| SignError::Import("keyring path is not UTF-8".into()))?;
    ctx.set_engine_home_dir(home_str)
        .map_err(gpg("selecting the keyring"))?;
    ctx.set_armor(true);
    if passphrase.is_some() {
        ctx.set_pinentry_mode(PinentryMode::Loopback)
            .map_err(gpg("pinentry loopback"))?;
    }
    Ok(ctx)
}

fn restrict(home: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs_err::set_permissions(home, std::fs::Permissions::from_mode(0o700));
}

fn with_passphrase<R>(
    ctx: Context,
    passphrase: Option<&str>,
    f: impl FnOnce(&mut Context) -> Result<R, SignError>,
) -> Result<R, SignError> {
    match passphrase {
        None => {
            let mut ctx = ctx;
            f(&mut ctx)
        }
        Some(pass) => {
            let pass = pass.to_owned();
            let mut ctx = ctx;
            ctx.with_passphrase_provider(
                move |_: gpgme::PassphraseRequest<'_>, out: &mut dyn std::io::Write| {
                    out.write_all(pass.as_bytes())?;
                    Ok(())
                },
                |ctx| f(ctx),
            )
        }
    }
}

/// Imports an ASCII-armored secret key into the keyring at `home`; returns the fingerprints
/// of the secret keys it holds afterwards.
pub fn import_secret_key(
    home: &Path,
    armored: &[u8],
    passphrase: Option<&str>,
) -> Result<Vec<String>, SignError> {
    if !armored.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----") {
        return Err(SignError::Import(
            "expected an ASCII-armored secret key (`gpg --armor --export-secret-keys FPR`)".into(),
        ));
    }
    let ctx = context(home, passphrase)?;
    with_passphrase(ctx, passphrase, |ctx| {
        let result = ctx.import(armored).map_err(gpg("importing the key"))?;
        if result.secret_imported() == 0 && result.secret_unchanged() == 0 {
            return Err(SignError::Import("the file holds no secret key".into()));
        }
        let mut out = Vec::new();
        for key in ctx.secret_keys().map_err(gpg("listing keys"))? {
            let key = key.map_err(gpg("listing keys"))?;
            if let Ok(fpr) = key.fingerprint() {
                out.push(fpr.to_owned());
            }
        }
        Ok(out)
    })
}

/// Signs with the configured keys (the primary one, plus any during a rotation).
pub struct Signer {
    home: PathBuf,
    fingerprints: Vec<String>,
    passphrase: Option<String>,
}

impl Signer {
    /// Opens the keyring and checks that every key is there, has its secret part, can sign and
    /// has not expired or been revoked.
    pub fn open(
        home: &Path,
        fingerprints: &[String],
        passphrase: Option<String>,
    ) -> Result<Self, SignError> {
        let mut ctx = context(home, passphrase.as_deref())?;
        for fpr in fingerprints {
            let key = ctx
                .get_secret_key(fpr.as_str())
                .map_err(|_| SignError::Missing {
                    fingerprint: fpr.clone(),
                    home: home.to_owned(),
                })?;
            let unusable = |why: &str| SignError::Unusable {
                fingerprint: fpr.clone(),
                why: why.to_owned(),
            };
            if key.is_revoked() {
                return Err(unusable("it is revoked"));
            }
            if key.is_expired() {
                return Err(unusable(
                    "it has expired; extend it (`gpg --quick-set-expire`) and import it again",
                ));
            }
            if key.is_disabled() || key.is_invalid() {
                return Err(unusable("it is disabled or invalid"));
            }
            let now = SystemTime::now();
            let usable_subkey = key.subkeys().any(|s| {
                s.can_sign()
                    && !s.is_revoked()
                    && !s.is_expired()
                    && s.expiration_time().is_none_or(|t| t > now)
            });
            if !usable_subkey {
                return Err(unusable("no subkey can sign (all expired or revoked)"));
            }
        }
        Ok(Self {
            home: home.to_owned(),
            fingerprints: fingerprints.to_vec(),
            passphrase,
        })
    }

    fn sign(&self, mode: SignMode, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut ctx = context(&self.home, self.passphrase.as_deref())?;
        for fpr in &self.fingerprints {
            let key = ctx
                .get_secret_key(fpr.as_str())
                .map_err(gpg(format!("finding key {fpr}")))?;
            ctx.add_signer(&key)
                .map_err(gpg(format!("selecting key {fpr}")))?;
        }
        with_passphrase(ctx, self.passphrase.as_deref(), |ctx| {
            let mut out = Vec::new();
            ctx.sign(mode, data, &mut out).map_err(gpg("signing"))?;
            Ok(out)
        })
    }

    /// An inline clear-text signature (`InRelease`).
    pub fn clearsign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign(SignMode::Clear, data)
    }

    /// A detached armored signature (`Release.gpg`, `repomd.xml.asc`).
    pub fn detach_sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign(SignMode::Detached, data)
    }

    /// The public halves of the signing keys, armored (`KEY.asc`).
    pub fn export_public(&self) -> Result<Vec<u8>, SignError> {
        let mut ctx = context(&self.home, None)?;
        let mut out = Vec::new();
        ctx.export(
            self.fingerprints.iter().map(String::as_str),
            ExportMode::empty(),
            &mut out,
        )
        .map_err(gpg("exporting the public key"))?;
        Ok(out)
    }

    /// The keyring directory (for tools that call gpg themselves, such as rpmsign).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The primary signing key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprints[0]
    }
}
