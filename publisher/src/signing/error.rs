//! A signing problem, named so that the operator knows what to do.

use std::path::PathBuf;

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
    #[error("keyring path is not UTF-8")]
    KeyringPath { home: PathBuf },
    #[error("expected an ASCII-armored secret key (`gpg --armor --export-secret-keys FPR`)")]
    NotArmoredSecretKey,
    #[error("the file holds no secret key")]
    NoSecretKey,
    #[error("gpg returned a malformed {what} ({len} bytes)")]
    Malformed { what: &'static str, len: usize },
    #[error("gpgme: signing with {fingerprint} did not finish within {} s and was abandoned (is gpg-agent answering?); raise `{key}` if it needs longer", limit.as_secs())]
    TimedOut {
        fingerprint: String,
        limit: std::time::Duration,
        key: &'static str,
    },
}

impl SignError {
    /// Whether a signature ran out of time (the farm could not do it now).
    pub fn is_timeout(&self) -> bool {
        matches!(self, SignError::TimedOut { .. })
    }
}

/// Wraps a gpgme error with what was being done.
pub(super) fn gpg(what: impl Into<String>) -> impl FnOnce(gpgme::Error) -> SignError {
    let what = what.into();
    move |source| SignError::Gpg { what, source }
}
