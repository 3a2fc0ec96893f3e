//! The signing keys the configuration names: the publisher's keyring, the passphrase, and the
//! [`Signer`] of the release keys with the review keys beside them.

use std::path::PathBuf;

use perestroika_config::FarmConfig;

use crate::signing::{SignError, Signer};

/// Why the configured keys could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The configuration has no `[signing]` section (a usage error).
    #[error("configuration {} has no [signing] section; the publisher needs the fingerprint of the key it signs with", config.display())]
    NoSigning { config: PathBuf },
    /// The passphrase file could not be read (the error names it).
    #[error(transparent)]
    Passphrase(std::io::Error),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The publisher's private keyring.
pub fn keyring(farm: &FarmConfig) -> PathBuf {
    farm.paths.state.join("publisher/gnupg")
}

/// The passphrase of the signing key: from `file`, else `signing.passphrase_file`, else the
/// `PERESTROIKA_PASSPHRASE` environment variable; `None` for a key without one.
pub fn passphrase(farm: &FarmConfig, file: Option<PathBuf>) -> Result<Option<String>, KeysError> {
    let file = file.or_else(|| {
        farm.signing
            .as_ref()
            .and_then(|s| s.passphrase_file.clone())
    });
    if let Some(file) = file {
        let text = fs_err::read_to_string(&file).map_err(KeysError::Passphrase)?;
        return Ok(Some(text.trim_end_matches('\n').to_owned()));
    }
    Ok(std::env::var("PERESTROIKA_PASSPHRASE").ok())
}

/// Opens the configured signing key(s), refusing when missing or expired.
pub fn signer(farm: &FarmConfig) -> Result<Signer, KeysError> {
    open_signer(farm, false)
}

/// The configured keys, with the review key (`signing.review_fingerprint`) for review and
/// topic repositories; `background` checks them while the caller goes on (see
/// [`Signer::open_in_background`]).
pub fn open_signer(farm: &FarmConfig, background: bool) -> Result<Signer, KeysError> {
    let (home, fingerprints, passphrase) = signing_keys(farm)?;
    let open = |fingerprints: &[String]| -> Result<Signer, KeysError> {
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
fn signing_keys(farm: &FarmConfig) -> Result<(PathBuf, Vec<String>, Option<String>), KeysError> {
    let Some(signing) = &farm.signing else {
        return Err(KeysError::NoSigning {
            config: farm.source.clone(),
        });
    };
    let mut fingerprints = vec![signing.fingerprint.clone()];
    fingerprints.extend(signing.also_sign_with.iter().cloned());
    Ok((keyring(farm), fingerprints, passphrase(farm, None)?))
}
