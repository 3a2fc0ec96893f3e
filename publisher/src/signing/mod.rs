//! The operator's key, through gpgme: imported once into the publisher's private keyring, then
//! used for every signature the farm makes. Nothing else in the farm sees the secret key.
//!
//! - `import`: the operator's secret key into the keyring;
//! - `check`: the configured keys present, able to sign, their public half exported once
//!   (`public`);
//! - `signer`: the [`Signer`], whose signatures (`InRelease`, `Release.gpg`,
//!   `repomd.xml.asc`) are made on a helper thread within a deadline (`helper`) and checked
//!   (`armor`) before anyone publishes them;
//! - `context`: gpgme contexts on the publisher's keyring.

mod armor;
mod check;
mod context;
mod error;
mod helper;
mod import;
mod public;
mod signer;

pub use error::SignError;
pub use import::import_secret_key;
pub use signer::Signer;

#[cfg(test)]
mod tests;
