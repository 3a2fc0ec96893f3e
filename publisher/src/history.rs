//! Every version of a package stays in its suite's indexes.
//!
//! Debian 12's reprepro (5.3.1) has no `Limit:` field: its indexes name only the newest
//! version of each package. The package files of older versions stay in the pool
//! (`--keepunreferencedfiles`), so after each export the publisher adds their stanzas back:
//! it keeps, per suite and index, the stanzas reprepro has dropped since (`<state>/history`),
//! appends them to reprepro's index, and rewrites the suite's `Release` (SHA256 only) to match.
//! apt then offers every published version, and `apt-get install pkg=<older version>` works.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::release_file::sha256_entries;

/// Indexes whose stanzas are kept: binary and source package lists.
fn is_index(path: &str) -> bool {
    path.ends_with("/Packages") || path.ends_with("/Sources")
}

/// The identity of a stanza: package, version and (for binaries) architecture.
fn key(stanza: &str) -> Option<(String, String, String)> {
    let field = |name: &str| {
        stanza
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    Some((
        field("Package:")?,
        field("Version:")?,
        field("Architecture:").unwrap_or_default(),
    ))
}

fn stanzas(text: &str) -> BTreeMap<(String, String, String), String> {
    text.split("\n\n")
        .map(|s| s.trim_matches('\n'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| Some((key(s)?, s.to_owned())))
        .collect()
}

fn join(stanzas: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for s in stanzas {
        out.push_str(&s);
        out.push_str("\n\n");
    }
    out
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    fs_err::write(&tmp, bytes)?;
    fs_err::rename(&tmp, path)
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// Puts the older versions back into each suite's indexes under `dists` (reprepro's output),
/// keeping what it needs under `history`. A suite whose reprepro output did not change since
/// the last call is left as it is (it already holds the merged indexes).
pub fn keep_every_version(dists: &Path, history: &Path, suites: &[String]) -> std::io::Result<()> {
    for suite in suites {
        let suite_dir = dists.join(suite);
        let release_path = suite_dir.join("Release");
        let Ok(release) = fs_err::read_to_string(&release_path) else {
            continue;
        };
        let seen_path = history.join(suite).join("Release.seen");
        if fs_err::read_to_string(&seen_path).ok().as_deref() == Some(release.as_str()) {
            continue;
        }
        for entry in sha256_entries(&release)
            .iter()
            .filter(|e| is_index(&e.path))
        {
            let index = suite_dir.join(&entry.path);
            let current = fs_err::read_to_string(&index).map_err(io(&index))?;
            let kept = |ext: &str| history.join(suite).join(format!("{}.{ext}", entry.path));
            // An index reprepro did not rewrite is still the one merged here last time.
            let ours = hex::encode(Sha256::digest(current.as_bytes()));
            if fs_err::read_to_string(kept("merged")).ok().as_deref() == Some(ours.as_str()) {
                continue;
            }
            // What reprepro listed last time but no longer lists joins what it dropped before.
            let now = stanzas(&current);
            let mut dropped = stanzas(&fs_err::read_to_string(kept("dropped")).unwrap_or_default());
            for (k, s) in stanzas(&fs_err::read_to_string(kept("last")).unwrap_or_default()) {
                dropped.entry(k).or_insert(s);
            }
            dropped.retain(|k, _| !now.contains_key(k));
            write_atomic(&kept("last"), current.as_bytes())?;
            write_atomic(&kept("dropped"), join(dropped.values().cloned()).as_bytes())?;
            if dropped.is_empty() {
                let _ = fs_err::remove_file(kept("merged"));
                continue;
            }
            let merged = join(now.into_values().chain(dropped.into_values()));
            write_atomic(&index, merged.as_bytes())?;
            write_atomic(
                &PathBuf::from(format!("{}.gz", index.display())),
                &gzip(&merged),
            )?;
            write_atomic(
                &kept("merged"),
                hex::encode(Sha256::digest(merged.as_bytes())).as_bytes(),
            )?;
        }
        // reprepro's Release may name checksums of indexes as it last wrote them: describe the
        // files as they are.
        let finished = rewrite_release(&suite_dir, &release)?;
        write_atomic(&release_path, finished.as_bytes())?;
        // What the suite looks like now: unchanged next time means nothing to do.
        write_atomic(&seen_path, finished.as_bytes())?;
    }
    Ok(())
}

/// The `Release` text with its checksum sections replaced by one SHA256 section computed
/// from the files as they are now.
fn rewrite_release(suite_dir: &Path, release: &str) -> std::io::Result<String> {
    let mut out = String::new();
    for line in release.lines() {
        if matches!(line.trim_end(), "MD5Sum:" | "SHA1:" | "SHA256:" | "SHA512:") {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("SHA256:\n");
    for entry in sha256_entries(release) {
        let path = suite_dir.join(&entry.path);
        let Ok(bytes) = fs_err::read(&path) else {
            continue; // named by reprepro but not written (e.g. an uncompressed variant)
        };
        out.push_str(&format!(
            " {} {} {}\n",
            hex::encode(Sha256::digest(&bytes)),
            bytes.len(),
            entry.path
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(pkg: &str, version: &str) -> String {
        format!("Package: {pkg}\nVersion: {version}\nArchitecture: all\nFilename: pool/main/{pkg}_{version}_all.deb\n")
    }

    fn write_suite(dists: &Path, packages: &str) {
        let dir = dists.join("bookworm/main/binary-amd64");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("Packages"), packages).unwrap();
        fs_err::write(dir.join("Packages.gz"), gzip(packages)).unwrap();
        let sum = |b: &[u8]| hex::encode(Sha256::digest(b));
        let gz = fs_err::read(dir.join("Packages.gz")).unwrap();
        fs_err::write(
            dists.join("bookworm/Release"),
            format!(
                "Codename: bookworm\nMD5Sum:\n 00 1 main/binary-amd64/Packages\nSHA256:\n {} {} main/binary-amd64/Packages\n {} {} main/binary-amd64/Packages.gz\n",
                sum(packages.as_bytes()),
                packages.len(),
                sum(&gz),
                gz.len()
            ),
        )
        .unwrap();
    }

    #[test]
    fn dropped_versions_come_back_and_release_matches() {
        let dir = tempfile::tempdir().unwrap();
        let (dists, history) = (dir.path().join("dists"), dir.path().join("history"));
        let suites = ["bookworm".to_owned()];
        write_suite(
            &dists,
            &format!("{}\n{}", stanza("a", "1.0"), stanza("b", "1.0")),
        );
        keep_every_version(&dists, &history, &suites).unwrap();
        // reprepro replaces a 1.0 by a 2.0
        write_suite(
            &dists,
            &format!("{}\n{}", stanza("a", "2.0"), stanza("b", "1.0")),
        );
        keep_every_version(&dists, &history, &suites).unwrap();
        // and later a 2.0 by a 3.0: both older versions stay
        write_suite(
            &dists,
            &format!("{}\n{}", stanza("a", "3.0"), stanza("b", "1.0")),
        );
        keep_every_version(&dists, &history, &suites).unwrap();
        let index = dists.join("bookworm/main/binary-amd64/Packages");
        let text = fs_err::read_to_string(&index).unwrap();
        let versions: Vec<_> = stanzas(&text)
            .into_keys()
            .map(|k| format!("{}={}", k.0, k.1))
            .collect();
        assert_eq!(versions, ["a=1.0", "a=2.0", "a=3.0", "b=1.0"]);
        let release = fs_err::read_to_string(dists.join("bookworm/Release")).unwrap();
        assert!(!release.contains("MD5Sum"));
        for e in sha256_entries(&release) {
            let bytes = fs_err::read(dists.join("bookworm").join(&e.path)).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), e.sha256, "{}", e.path);
        }
        // The same reprepro output again changes nothing.
        let before = fs_err::read(&index).unwrap();
        keep_every_version(&dists, &history, &suites).unwrap();
        assert_eq!(fs_err::read(&index).unwrap(), before);
    }
}
