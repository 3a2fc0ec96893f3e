//! Signatures beside a generation's signed files, reused from the previous generation where
//! it signed the very same bytes with the same keys.

use std::path::Path;

use crate::error::{io, PublishError};
use crate::links::link_or_copy;
use crate::publisher::Publisher;
use crate::signing::Signer;

/// A signature the publisher writes beside a signed file.
#[derive(Debug, Clone, Copy)]
pub(super) enum Signature {
    /// The file with its signature inline (`InRelease`).
    Inline,
    /// A detached armored signature (`Release.gpg`, `repomd.xml.asc`).
    Detached,
}

impl Publisher<'_> {
    /// Writes the signatures of `data`, the file at `file` in the generation `dir`, beside it.
    /// Where `same_keys` (a generation signed with the same keys) signed the very same bytes,
    /// its signatures are linked: most suites and repositories of a release do not change in
    /// one publish. Otherwise they are made anew, side by side.
    pub(super) fn write_signatures(
        &self,
        signer: &Signer,
        dir: &Path,
        same_keys: Option<&Path>,
        file: &Path,
        data: &[u8],
        signatures: &[(&str, Signature)],
    ) -> Result<(), PublishError> {
        let beside = |generation: &Path, name: &str| {
            generation
                .join(file)
                .parent()
                .expect("a file in a directory")
                .join(name)
        };
        if let Some(old) = same_keys {
            let signed_before = fs_err::read(old.join(file)).is_ok_and(|d| d == data)
                && signatures.iter().all(|(n, _)| beside(old, n).is_file());
            if signed_before {
                for (name, _) in signatures {
                    link_or_copy(&beside(old, name), &beside(dir, name))?;
                }
                return Ok(());
            }
        }
        for (name, kind) in signatures {
            let signature = match kind {
                Signature::Inline => signer.clearsign(data)?,
                Signature::Detached => signer.detach_sign(data)?,
            };
            let path = beside(dir, name);
            fs_err::write(&path, signature).map_err(io(&path))?;
        }
        Ok(())
    }
}
