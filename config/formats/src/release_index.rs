//! A Debian repository's index files as their readers need them: the index files a `Release`
//! file's SHA256 section names, and the stanzas of `Packages` and `Sources` indexes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// An index file named in a `Release` file's SHA256 section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub sha256: String,
    pub size: u64,
    /// Path relative to the suite's directory (`main/binary-amd64/Packages.xz`).
    pub path: String,
}

/// The SHA256 entries of a `Release` file.
pub fn sha256_entries(release: &str) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_section = line.trim_end() == "SHA256:";
            continue;
        }
        if in_section {
            let mut parts = line.split_whitespace();
            if let (Some(sum), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next())
            {
                out.push(IndexEntry {
                    sha256: sum.to_owned(),
                    size: size.parse().unwrap_or(0),
                    path: path.to_owned(),
                });
            }
        }
    }
    out
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

/// The stanzas of an index's text.
pub fn stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut stanza = Stanza::new();
        let mut last: Option<String> = None;
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix(' ') {
                if let Some(value) = last.as_ref().and_then(|k| stanza.get_mut(k)) {
                    value.push('\n');
                    value.push_str(rest);
                }
            } else if let Some((key, value)) = line.split_once(':') {
                stanza.insert(key.to_owned(), value.trim().to_owned());
                last = Some(key.to_owned());
            }
        }
        if !stanza.is_empty() {
            out.push(stanza);
        }
    }
    out
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
