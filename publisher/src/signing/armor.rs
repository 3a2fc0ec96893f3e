//! gpg's output checked before anyone publishes it.

use super::error::SignError;

/// Checks the armor of gpg's output: a detached signature is one signature block; a
/// clear-signed file is its header, the text and one signature block at the end. A client
/// refuses anything else as unsigned, so it is never published.
pub(super) fn well_formed(armored: &[u8], inline: bool) -> Result<(), SignError> {
    const HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----\n";
    const BLOCK: &[u8] = b"-----BEGIN PGP SIGNATURE-----\n";
    const END: &[u8] = b"\n-----END PGP SIGNATURE-----\n";
    let blocks = armored.windows(BLOCK.len()).filter(|w| *w == BLOCK).count();
    let starts = if inline { HEADER } else { BLOCK };
    if armored.starts_with(starts) && armored.ends_with(END) && blocks == 1 {
        return Ok(());
    }
    Err(SignError::Malformed {
        what: if inline {
            "clear-signed file"
        } else {
            "detached signature"
        },
        len: armored.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_armor_passes_the_check() {
        let block = "-----BEGIN PGP SIGNATURE-----\n\niHUE\n=abcd\n-----END PGP SIGNATURE-----\n";
        let inline =
            format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n{block}");
        assert!(well_formed(inline.as_bytes(), true).is_ok());
        assert!(well_formed(block.as_bytes(), false).is_ok());
        // Cut short, without its signature, twice signed in two blocks, or of the other kind.
        let cut = &inline.as_bytes()[..inline.len() - 10];
        let unsigned = inline.replace(block, "");
        let two = format!("{inline}{block}");
        for bad in [cut, unsigned.as_bytes(), two.as_bytes(), block.as_bytes()] {
            let err = well_formed(bad, true).unwrap_err();
            assert!(
                err.to_string().contains("malformed clear-signed file"),
                "{err}"
            );
        }
        assert!(well_formed(inline.as_bytes(), false).is_err());
    }
}
