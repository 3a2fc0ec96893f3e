//! A Debian repository's index files as their readers need them: the index files a `Release`
//! file's SHA256 section names, and the stanzas of `Packages` and `Sources` indexes — both
//! read with [`crate::deb822`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::deb822::{self, ChecksumEntry, ChecksumError, Deb822Error};

/// An index file named in a `Release` file's SHA256 section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub sha256: String,
    pub size: u64,
    /// Path relative to the suite's directory (`main/binary-amd64/Packages.xz`).
    pub path: String,
}

/// A `Release` file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("not a Release file: {0}")]
    Syntax(#[from] Deb822Error),
    #[error(transparent)]
    Checksums(#[from] ChecksumError),
}

/// The SHA256 entries of a `Release` file.
pub fn sha256_entries(release: &str) -> Result<Vec<IndexEntry>, ReleaseError> {
    let paragraph = deb822::parse_one(release)?;
    Ok(ChecksumEntry::list(&paragraph, "SHA256")?
        .into_iter()
        .map(|e| IndexEntry {
            sha256: e.sum,
            size: e.size,
            path: e.path,
        })
        .collect())
}

/// One stanza of a `Packages` or `Sources` index: field name → value (continuation lines
/// joined with newlines, as in the file).
pub type Stanza = BTreeMap<String, String>;

/// Reads an index given without its compression suffix (`…/source/Sources`): the plain file
/// if there is one, else its `.gz`. `None` when neither exists or it cannot be read.
pub fn read_index(path: &Path) -> Option<String> {
    if let Ok(text) = fs_err::read_to_string(path) {
        return Some(text);
    }
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let file = fs_err::File::open(Path::new(&gz)).ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The stanzas of an index's text. A paragraph that is not well-formed deb822 (see
/// [`crate::deb822`]) is left out rather than guessed at: readers of an index look up
/// packages, and a broken stanza names none.
pub fn stanzas(text: &str) -> Vec<Stanza> {
    deb822::raw_paragraphs(text)
        .filter_map(|raw| deb822::Paragraph::parse(raw).ok())
        .map(|p| {
            p.fields()
                .iter()
                .map(|f| (f.name.clone(), f.value.clone()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod index_tests {
    use super::*;

    #[test]
    fn stanzas_with_continuation_lines() {
        let text = "Package: greet\nVersion: 1.0-1\nFiles:\n abc 12 greet_1.0-1.dsc\n def 34 greet_1.0.orig.tar.gz\n\nPackage: other\nVersion: 2\n";
        let all = stanzas(text);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["Version"], "1.0-1");
        assert_eq!(
            all[0]["Files"],
            "\nabc 12 greet_1.0-1.dsc\ndef 34 greet_1.0.orig.tar.gz"
        );
        assert_eq!(all[1]["Package"], "other");
        // A broken stanza is left out, the others are read.
        let some = stanzas("Package: a\nPackage: a\n\nPackage: b\n");
        assert_eq!(some.len(), 1);
        assert_eq!(some[0]["Package"], "b");
    }

    #[test]
    fn sha256_entries_of_a_release() {
        let release =
            "Origin: x\nMD5Sum:\n 00 1 a\nSHA256:\n aa 10 main/Packages\n bb 7 main/Packages.xz\n";
        let entries = sha256_entries(release).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1],
            IndexEntry {
                sha256: "bb".into(),
                size: 7,
                path: "main/Packages.xz".into()
            }
        );
        assert!(sha256_entries("Origin: x\n").unwrap().is_empty());
        assert!(matches!(
            sha256_entries("Origin x\n"),
            Err(ReleaseError::Syntax(_))
        ));
        assert!(matches!(
            sha256_entries("SHA256:\n aa ten main/Packages\n"),
            Err(ReleaseError::Checksums(_))
        ));
    }

    #[test]
    fn a_gzipped_index_is_read_when_the_plain_one_is_missing() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"Package: x\n").unwrap();
        fs_err::write(dir.path().join("Sources.gz"), gz.finish().unwrap()).unwrap();
        assert_eq!(
            read_index(&dir.path().join("Sources")).unwrap(),
            "Package: x\n"
        );
        assert!(read_index(&dir.path().join("Packages")).is_none());
    }
}
