//! Every version of a package stays in its suite's indexes.
//!
//! Debian 12's reprepro (5.3.1) has no `Limit:` field: its indexes name only the newest
//! version of each package. The package files of older versions stay in the pool
//! (`--keepunreferencedfiles`), so after each export the publisher adds their stanzas back:
//! it keeps, per suite and index, the stanzas reprepro has dropped since (`<state>/history`),
//! appends them to reprepro's index, and rewrites the suite's `Release` (SHA256 only) to match.
//! apt then offers every published version, and `apt-get install pkg=<older version>` works.
//! What is kept is durable (fsynced) when [`keep_every_version`] returns, before the publish
//! is acknowledged: losing the dropped stanzas to a power cut would lose versions for good.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use perestroika_host::files::{write_atomic, write_durable};
use sha2::{Digest, Sha256};

use perestroika_formats::deb822;
use perestroika_formats::release_index::{sha256_entries, IndexEntry};

/// Indexes whose stanzas are kept: binary and source package lists.
fn is_index(path: &str) -> bool {
    path.ends_with("/Packages") || path.ends_with("/Sources")
}

/// The identity of a stanza: package, version and (for binaries) architecture.
type Key<'a> = (&'a str, &'a str, &'a str);

/// Each stanza of an index with its key (stanzas without Package or Version are skipped).
fn each_stanza(text: &str) -> impl Iterator<Item = (Key<'_>, &str)> {
    deb822::raw_paragraphs(text).filter_map(|s| {
        let package = deb822::raw_field(s, "Package")?;
        let version = deb822::raw_field(s, "Version")?;
        let arch = deb822::raw_field(s, "Architecture").unwrap_or("");
        Some(((package, version, arch), s))
    })
}

fn join<'a>(stanzas: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for s in stanzas {
        out.push_str(s);
        out.push_str("\n\n");
    }
    out
}

/// A file this module wrote: its checksum and size for the Release, and what identifies it on
/// disk (so that a file reprepro has since rewritten is told apart).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Written {
    sha256: String,
    size: u64,
    inode: u64,
    mtime_ns: i128,
}

impl Written {
    fn of(path: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        let meta = fs_err::metadata(path)?;
        Ok(Self {
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
            mtime_ns: mtime_ns(&meta),
        })
    }

    /// Whether the file on disk is still the one written.
    fn is_on_disk(&self, path: &Path) -> bool {
        fs_err::metadata(path).is_ok_and(|m| {
            m.len() == self.size
                && std::os::unix::fs::MetadataExt::ino(&m) == self.inode
                && mtime_ns(&m) == self.mtime_ns
        })
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    let m = std::os::unix::fs::MetadataExt::mtime(meta) as i128;
    m * 1_000_000_000 + std::os::unix::fs::MetadataExt::mtime_nsec(meta) as i128
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `to` becomes a hard link to `from` (or a copy of `bytes`, where linking fails).
fn link_atomic(from: &Path, to: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let tmp = to.with_extension("tmp");
    let _ = fs_err::remove_file(&tmp);
    if fs_err::hard_link(from, &tmp).is_err() {
        return write_atomic(to, bytes);
    }
    fs_err::rename(&tmp, to)
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
        let written_path = history.join(suite).join("written.json");
        let mut written: BTreeMap<String, Written> = fs_err::read(&written_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // A merge cut short after its files were renamed into place: they are ours if their
        // content is what was about to be written.
        let pending_path = history.join(suite).join("pending.json");
        let pending: BTreeMap<String, (String, u64)> = fs_err::read(&pending_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (name, (sha256, _)) in &pending {
            let path = suite_dir.join(name);
            if let Ok(bytes) = fs_err::read(&path) {
                if hex::encode(Sha256::digest(&bytes)) == *sha256 {
                    written.insert(name.clone(), Written::of(&path, &bytes)?);
                }
            }
        }
        // Forget what reprepro has rewritten since.
        written.retain(|name, w| w.is_on_disk(&suite_dir.join(name)));
        let entries = sha256_entries(&release).map_err(|e| malformed(&release_path, e))?;
        for entry in entries.iter().filter(|e| is_index(&e.path)) {
            if written.contains_key(&entry.path) {
                continue; // still the merged index of last time: reprepro did not touch it
            }
            let index = suite_dir.join(&entry.path);
            let kept = |ext: &str| history.join(suite).join(format!("{}.{ext}", entry.path));
            // What reprepro listed last time but no longer lists joins what it dropped before.
            // The 10,000-stanza indexes of a large release are read and parsed two at a time.
            let (current, (before, last)) = std::thread::scope(|sc| {
                let old = sc.spawn(|| {
                    let read = |ext| fs_err::read_to_string(kept(ext)).unwrap_or_default();
                    (read("dropped"), read("last"))
                });
                let current = fs_err::read_to_string(&index).map_err(io(&index));
                (current, old.join().expect("reading the kept indexes"))
            });
            let current = current?;
            let (now, old) = std::thread::scope(|sc| {
                let old = sc.spawn(|| {
                    each_stanza(&before)
                        .chain(each_stanza(&last))
                        .collect::<Vec<_>>()
                });
                let now: HashSet<Key> = each_stanza(&current).map(|(k, _)| k).collect();
                (now, old.join().expect("parsing the kept indexes"))
            });
            let mut dropped: BTreeMap<Key, &str> = BTreeMap::new();
            for (k, s) in old {
                if !now.contains(&k) {
                    dropped.entry(k).or_insert(s);
                }
            }
            // reprepro replaces an index by renaming a new file over it, so a hard link keeps
            // this version of it without copying.
            link_atomic(&index, &kept("last"), current.as_bytes())?;
            write_durable(&kept("dropped"), join(dropped.values().copied()).as_bytes())?;
            if dropped.is_empty() {
                continue;
            }
            let mut merged = join(each_stanza(&current).map(|(_, s)| s));
            merged.push_str(&join(dropped.values().copied()));
            let gz_name = format!("{}.gz", entry.path);
            let gz_path = suite_dir.join(&gz_name);
            let gz = gzip(&merged);
            // Say what is about to replace reprepro's files before replacing them.
            let about: BTreeMap<&str, (String, u64)> = [
                (
                    entry.path.as_str(),
                    (
                        hex::encode(Sha256::digest(merged.as_bytes())),
                        merged.len() as u64,
                    ),
                ),
                (
                    gz_name.as_str(),
                    (hex::encode(Sha256::digest(&gz)), gz.len() as u64),
                ),
            ]
            .into_iter()
            .collect();
            write_durable(&pending_path, &serde_json::to_vec(&about).expect("json"))?;
            write_atomic(&index, merged.as_bytes())?;
            write_atomic(&gz_path, &gz)?;
            written.insert(entry.path.clone(), Written::of(&index, merged.as_bytes())?);
            written.insert(gz_name, Written::of(&gz_path, &gz)?);
            write_durable(&written_path, &serde_json::to_vec(&written).expect("json"))?;
            let _ = fs_err::remove_file(&pending_path);
        }
        write_durable(&written_path, &serde_json::to_vec(&written).expect("json"))?;
        // reprepro's Release names its own checksums, also of indexes merged here: describe
        // those as they are.
        let finished = rewrite_release(&release, &entries, &written)
            .map_err(|e| malformed(&release_path, e))?;
        write_atomic(&release_path, finished.as_bytes())?;
        // What the suite looks like now: unchanged next time means nothing to do.
        write_durable(&seen_path, finished.as_bytes())?;
    }
    Ok(())
}

/// A `Release` of reprepro's that does not parse.
fn malformed(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// The `Release` text with one checksum list, SHA256: reprepro's `entries`, but for the files
/// written here.
fn rewrite_release(
    release: &str,
    entries: &[IndexEntry],
    written: &BTreeMap<String, Written>,
) -> Result<String, deb822::Deb822Error> {
    let mut p = deb822::parse_one(release)?;
    for list in ["MD5Sum", "SHA1", "SHA512"] {
        p.remove(list);
    }
    let sha256: Vec<deb822::ChecksumEntry> = entries
        .iter()
        .map(|entry| {
            let (sum, size) = match written.get(&entry.path) {
                Some(w) => (w.sha256.clone(), w.size),
                None => (entry.sha256.clone(), entry.size),
            };
            deb822::ChecksumEntry {
                sum,
                size,
                path: entry.path.clone(),
            }
        })
        .collect();
    p.set("SHA256", deb822::ChecksumEntry::value(&sha256));
    Ok(p.to_string())
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
        // As reprepro does: a new file renamed over the old one.
        write_atomic(&dir.join("Packages"), packages.as_bytes()).unwrap();
        write_atomic(&dir.join("Packages.gz"), &gzip(packages)).unwrap();
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
        let mut versions: Vec<_> = each_stanza(&text)
            .map(|(k, _)| format!("{}={}", k.0, k.1))
            .collect();
        versions.sort();
        assert_eq!(versions, ["a=1.0", "a=2.0", "a=3.0", "b=1.0"]);
        let release = fs_err::read_to_string(dists.join("bookworm/Release")).unwrap();
        assert!(!release.contains("MD5Sum"));
        for e in sha256_entries(&release).unwrap() {
            let bytes = fs_err::read(dists.join("bookworm").join(&e.path)).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), e.sha256, "{}", e.path);
        }
        // The same reprepro output again changes nothing.
        let before = fs_err::read(&index).unwrap();
        keep_every_version(&dists, &history, &suites).unwrap();
        assert_eq!(fs_err::read(&index).unwrap(), before);
    }
}
