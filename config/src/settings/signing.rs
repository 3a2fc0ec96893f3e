//! The `[signing]` section: the key the publisher signs with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The operator's signing key: the publisher signs with it; `perestroika-mirror verify`
/// accepts only signatures by these fingerprints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    /// Fingerprint of the key that signs (40 hex digits); the publisher refuses to start without it.
    pub fingerprint: String,
    /// Further keys that sign alongside, for a key rotation.
    #[serde(default)]
    pub also_sign_with: Vec<String>,
    /// File holding the key's passphrase, if it has one.
    #[serde(default)]
    pub passphrase_file: Option<PathBuf>,
    /// The key review and topic repositories are signed with, in the same keyring: a client
    /// trusting the release's key refuses them. Unset, they are signed with the release's key
    /// (and can be passed off as the release by whoever serves them).
    #[serde(default)]
    pub review_fingerprint: Option<String>,
}

impl SigningSettings {
    /// The review key's fingerprint as gpg prints it, if one is configured.
    pub fn review(&self) -> Option<String> {
        self.review_fingerprint
            .as_deref()
            .map(|f| fingerprint(f).unwrap_or_else(|_| f.to_owned()))
    }

    /// The pinned fingerprints, as gpg prints them: the signing key first, then
    /// `also_sign_with`.
    pub fn pinned(&self) -> Vec<String> {
        std::iter::once(&self.fingerprint)
            .chain(&self.also_sign_with)
            .map(|f| fingerprint(f).unwrap_or_else(|_| f.clone()))
            .collect()
    }
}

/// A text that is not an OpenPGP fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a 40-hex-digit OpenPGP fingerprint, found {0:?}")]
pub struct NotAFingerprint(pub String);

/// An OpenPGP fingerprint (40 hex digits; spaces allowed) as gpg prints it: upper case, no
/// spaces.
pub fn fingerprint(text: &str) -> Result<String, NotAFingerprint> {
    let fpr: String = text.chars().filter(|c| *c != ' ').collect();
    if fpr.len() != 40 || !fpr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NotAFingerprint(text.to_owned()));
    }
    Ok(fpr.to_ascii_uppercase())
}
