//! The public half of the signing keys, exported once and kept beside the keyring until the
//! next key import.

use std::path::{Path, PathBuf};

use gpgme::{Context, ExportMode};
use sha2::Digest;

use super::error::{gpg, SignError};

/// Where the armored export of `fingerprints` is kept (inside the keyring directory, which
/// gpg does not mind).
fn public_cache(home: &Path, fingerprints: &[String]) -> PathBuf {
    let id = hex::encode(&sha2::Sha256::digest(fingerprints.join(",").as_bytes())[..8]);
    home.join(format!("perestroika-public-{id}.asc"))
}

/// Drops every kept export: an import may change a public key (a new expiry, a new user id).
pub(super) fn forget_public_exports(home: &Path) {
    for entry in fs_err::read_dir(home).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("perestroika-public-")
        {
            let _ = fs_err::remove_file(entry.path());
        }
    }
}

/// The armored public keys of `fingerprints`: the kept export, else a fresh one (then kept).
pub(super) fn exported(
    ctx: &mut Context,
    home: &Path,
    fingerprints: &[String],
) -> Result<Vec<u8>, SignError> {
    let cache = public_cache(home, fingerprints);
    let public = match fs_err::read(&cache) {
        Ok(bytes) if !bytes.is_empty() => bytes,
        _ => {
            let mut public = Vec::new();
            ctx.export(
                fingerprints.iter().map(String::as_str),
                ExportMode::empty(),
                &mut public,
            )
            .map_err(gpg("exporting the public key"))?;
            let _ = perestroika_host::files::write_atomic(&cache, &public);
            public
        }
    };
    Ok(public)
}
