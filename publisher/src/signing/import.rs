//! The operator's secret key imported into the publisher's keyring.

use std::path::Path;

use super::context::{context, with_passphrase};
use super::error::{gpg, SignError};
use super::public::forget_public_exports;

/// Imports an ASCII-armored secret key into the keyring at `home`; returns the fingerprints
/// of the secret keys it holds afterwards.
pub fn import_secret_key(
    home: &Path,
    armored: &[u8],
    passphrase: Option<&str>,
) -> Result<Vec<String>, SignError> {
    if !armored.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----") {
        return Err(SignError::NotArmoredSecretKey);
    }
    let ctx = context(home, passphrase)?;
    forget_public_exports(home);
    with_passphrase(ctx, passphrase, |ctx| {
        let result = ctx.import(armored).map_err(gpg("importing the key"))?;
        if result.secret_imported() == 0 && result.secret_unchanged() == 0 {
            return Err(SignError::NoSecretKey);
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
