//! The configured keys checked before the first signature: each present with its secret part,
//! able to sign, neither expired nor revoked.

use std::path::Path;
use std::time::SystemTime;

use gpgme::Context;

use super::context::{context, with_thread_context};
use super::error::SignError;
use super::public::exported;

/// What checking the keys yields.
pub(super) struct Checked {
    /// The armored public keys, exported once.
    pub(super) public: Vec<u8>,
    /// The signing keys, looked up once.
    pub(super) keys: Vec<gpgme::Key>,
}

/// Checks the keys `fingerprints` in the keyring at `home`.
pub(super) fn check_keys(
    home: &Path,
    fingerprints: &[String],
    passphrase: Option<&str>,
) -> Result<Checked, SignError> {
    if passphrase.is_none() {
        return with_thread_context(home, |ctx| check(ctx, home, fingerprints));
    }
    let mut ctx = context(home, passphrase)?;
    check(&mut ctx, home, fingerprints)
}

/// Checks the keys with `ctx`, and exports their public half.
fn check(ctx: &mut Context, home: &Path, fingerprints: &[String]) -> Result<Checked, SignError> {
    let mut keys = Vec::new();
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
        keys.push(key);
    }
    let public = exported(ctx, home, fingerprints)?;
    Ok(Checked { public, keys })
}
