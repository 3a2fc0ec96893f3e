//! Signed indexes read through the pinned keys, and the files they name read through their
//! sizes and sha256 sums.

use std::io::{Read, Write};

use perestroika_formats::release_index::{sha256_entries, IndexEntry};
use perestroika_tree::GenerationDir;
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::{ReadError, Reader, MAX_SIGNED_BYTES};

/// Bound of an index once decompressed.
const MAX_INDEX_TEXT: u64 = 1 << 30;

/// A deb suite whose `InRelease` was verified (or, from a local root without pinned keys,
/// whose `Release` was read).
#[derive(Debug, Clone)]
pub struct DebSuite {
    /// The tree, relative to the public root (`acme/9.0`, `acme/review/42`).
    pub tree: String,
    pub suite: String,
    /// `InRelease` as served (kept byte for byte, so that apt can check it again).
    pub inrelease: Option<Vec<u8>>,
    /// The signed text, the `Release` fields.
    pub release: String,
    /// Its SHA256 entries.
    pub entries: Vec<IndexEntry>,
}

/// An rpm repository whose `repomd.xml` was verified, and the packages its primary names.
#[derive(Debug, Clone)]
pub struct RpmRepo {
    /// `repomd.xml` as served, and its detached signature (when keys are pinned).
    pub repomd: Vec<u8>,
    pub repomd_asc: Option<Vec<u8>>,
    /// Every metadata file `repomd.xml` names (primary, filelists, other, …).
    pub data: Vec<RpmFile>,
    /// Every package the primary names.
    pub packages: Vec<RpmFile>,
}

/// A file of an rpm repository as its signed metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmFile {
    /// Relative to the repository (`Packages/greet-1.0-p1.0.src.rpm`, `repodata/…`).
    pub location: String,
    pub sha256: String,
    /// Its size, when the metadata names it.
    pub size: Option<u64>,
}

impl DebSuite {
    /// The components its `Release` names (`Components:`), in order.
    pub fn components(&self) -> Vec<String> {
        perestroika_formats::release_index::stanzas(&self.release)
            .first()
            .and_then(|s| s.get("Components"))
            .map(|c| c.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

fn rel(path: std::path::PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

impl Reader {
    /// Suite `suite` of `tree`, verified; `None` when the tree has no such suite.
    pub async fn deb_suite(&self, tree: &str, suite: &str) -> Result<Option<DebSuite>, ReadError> {
        let dir = GenerationDir::new(tree).deb_suite(suite);
        let (inrelease, release) = match self.keyring_for(tree) {
            Some(keyring) => {
                let path = rel(dir.join("InRelease"));
                let Some(bytes) = self.get(&path, MAX_SIGNED_BYTES).await? else {
                    return Ok(None);
                };
                let signed = self.scratch().join(format!("{}.InRelease", unique()));
                let out = self.scratch().join(format!("{}.Release", unique()));
                fs_err::write(&signed, &bytes).map_err(|e| ReadError::Io(e.to_string()))?;
                let checked = keyring.check_clearsigned(&signed, &out);
                let _ = fs_err::remove_file(&signed);
                if let Err(reason) = checked {
                    let _ = fs_err::remove_file(&out);
                    return Err(ReadError::Signature { file: path, reason });
                }
                let text = fs_err::read_to_string(&out);
                let _ = fs_err::remove_file(&out);
                let text = text.map_err(|e| ReadError::Index {
                    file: path.clone(),
                    reason: format!("the signed text is not UTF-8: {e}"),
                })?;
                (Some(bytes), text)
            }
            None => {
                let path = rel(dir.join("Release"));
                let Some(bytes) = self.get(&path, MAX_SIGNED_BYTES).await? else {
                    return Ok(None);
                };
                let text = String::from_utf8(bytes).map_err(|e| ReadError::Index {
                    file: path,
                    reason: e.to_string(),
                })?;
                (None, text)
            }
        };
        let entries = sha256_entries(&release).map_err(|e| ReadError::Index {
            file: rel(dir.join("InRelease")),
            reason: e.to_string(),
        })?;
        Ok(Some(DebSuite {
            tree: tree.to_owned(),
            suite: suite.to_owned(),
            inrelease,
            release,
            entries,
        }))
    }

    /// The index `name` (`main/source/Sources`, `main/binary-amd64/Packages`) of a verified
    /// suite, as the `Release` names it (`.gz` or plain): `(entry, bytes)`, checked against
    /// the entry, read by hash first (a publish switching meanwhile keeps the old one there).
    /// `None` when the `Release` names neither.
    pub async fn deb_index_file(
        &self,
        suite: &DebSuite,
        name: &str,
    ) -> Result<Option<(IndexEntry, Vec<u8>)>, ReadError> {
        let dir = GenerationDir::new(&suite.tree).deb_suite(&suite.suite);
        for candidate in [format!("{name}.gz"), name.to_owned()] {
            let Some(entry) = suite.entries.iter().find(|e| e.path == candidate) else {
                continue;
            };
            crate::fetch::check_rel(&entry.path)?;
            let parent = std::path::Path::new(&entry.path)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            let by_hash = dir.join(parent).join("by-hash/SHA256").join(&entry.sha256);
            for path in [rel(by_hash), rel(dir.join(&entry.path))] {
                let Some(bytes) = self.get(&path, entry.size).await? else {
                    continue;
                };
                if bytes.len() as u64 == entry.size
                    && hex::encode(Sha256::digest(&bytes)) == entry.sha256
                {
                    return Ok(Some((entry.clone(), bytes)));
                }
                return Err(ReadError::Hash {
                    file: path,
                    by: format!("{}/InRelease", rel(dir.clone())),
                });
            }
        }
        Ok(None)
    }

    /// The text of index `name` of a verified suite (see [`Reader::deb_index_file`]).
    pub async fn deb_index(
        &self,
        suite: &DebSuite,
        name: &str,
    ) -> Result<Option<String>, ReadError> {
        let Some((entry, bytes)) = self.deb_index_file(suite, name).await? else {
            return Ok(None);
        };
        let text = if entry.path.ends_with(".gz") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .take(MAX_INDEX_TEXT)
                .read_to_string(&mut text)
                .map_err(|e| ReadError::Index {
                    file: entry.path.clone(),
                    reason: e.to_string(),
                })?;
            text
        } else {
            String::from_utf8(bytes).map_err(|e| ReadError::Index {
                file: entry.path.clone(),
                reason: e.to_string(),
            })?
        };
        Ok(Some(text))
    }

    /// The rpm repository `rpm/<suite>/<arch>` of `tree`, its `repomd.xml` verified with its
    /// detached `repomd.xml.asc`, and the packages its primary names; `None` when absent.
    pub async fn rpm_repo(
        &self,
        tree: &str,
        suite: &str,
        arch: &str,
    ) -> Result<Option<RpmRepo>, ReadError> {
        let repo = GenerationDir::new(tree).rpm_repo(suite, arch);
        let repomd_path = rel(repo.join("repodata/repomd.xml"));
        let Some(repomd) = self.get(&repomd_path, MAX_SIGNED_BYTES).await? else {
            return Ok(None);
        };
        let mut repomd_asc = None;
        if let Some(keyring) = self.keyring_for(tree) {
            let asc_path = rel(repo.join("repodata/repomd.xml.asc"));
            let asc = self
                .get(&asc_path, MAX_SIGNED_BYTES)
                .await?
                .ok_or_else(|| ReadError::Signature {
                    file: repomd_path.clone(),
                    reason: "repomd.xml.asc is missing".into(),
                })?;
            let base = self.scratch().join(unique());
            let (data, sig) = (base.with_extension("xml"), base.with_extension("asc"));
            fs_err::write(&data, &repomd).map_err(|e| ReadError::Io(e.to_string()))?;
            fs_err::write(&sig, &asc).map_err(|e| ReadError::Io(e.to_string()))?;
            let checked = keyring.check(&[&sig, &data]);
            let _ = (fs_err::remove_file(&data), fs_err::remove_file(&sig));
            checked.map_err(|reason| ReadError::Signature {
                file: repomd_path.clone(),
                reason,
            })?;
            repomd_asc = Some(asc);
        }
        let text = String::from_utf8_lossy(&repomd).into_owned();
        let entries = Regex::new(r#"(?s)<data type="[^"]+">.*?<checksum type="sha256">([0-9a-f]{64})</checksum>.*?<location href="([^"]+)"/>.*?<size>([0-9]+)</size>.*?</data>"#)
            .expect("regex");
        let data: Vec<RpmFile> = entries
            .captures_iter(&text)
            .map(|c| RpmFile {
                location: c[2].to_owned(),
                sha256: c[1].to_owned(),
                size: c[3].parse().ok(),
            })
            .collect();
        let primary = Regex::new(r#"(?s)<data type="primary">.*?<checksum type="sha256">([0-9a-f]+)</checksum>.*?<location href="([^"]+)"/>.*?<size>([0-9]+)</size>"#)
            .expect("regex");
        let Some(cap) = primary.captures(&text) else {
            return Err(ReadError::Index {
                file: repomd_path,
                reason: "names no primary data".into(),
            });
        };
        let size: u64 = cap[3].parse().unwrap_or(u64::MAX);
        let primary_path = rel(repo.join(&cap[2]));
        let bytes = self
            .get(&primary_path, size.min(1 << 30))
            .await?
            .ok_or_else(|| ReadError::Index {
                file: primary_path.clone(),
                reason: "named by repomd.xml but missing".into(),
            })?;
        if hex::encode(Sha256::digest(&bytes)) != cap[1] {
            return Err(ReadError::Hash {
                file: primary_path,
                by: repomd_path,
            });
        }
        let mut primary = String::new();
        let read = if cap[2].ends_with(".gz") {
            flate2::read::GzDecoder::new(&bytes[..])
                .take(MAX_INDEX_TEXT)
                .read_to_string(&mut primary)
                .map(|_| ())
        } else {
            String::from_utf8(bytes)
                .map(|t| primary = t)
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        read.map_err(|e| ReadError::Index {
            file: primary_path.clone(),
            reason: e.to_string(),
        })?;
        let package = Regex::new(r#"(?s)<package type="rpm">(.*?)</package>"#).expect("regex");
        let sum =
            Regex::new(r#"<checksum type="sha256"[^>]*>([0-9a-f]+)</checksum>"#).expect("regex");
        let size = Regex::new(r#"<size package="([0-9]+)""#).expect("regex");
        let location = Regex::new(r#"<location href="([^"]+)"/>"#).expect("regex");
        let packages = package
            .captures_iter(&primary)
            .filter_map(|p| {
                let body = &p[1];
                Some(RpmFile {
                    location: location.captures(body)?[1].to_owned(),
                    sha256: sum.captures(body)?[1].to_owned(),
                    size: size.captures(body).and_then(|c| c[1].parse().ok()),
                })
            })
            .collect();
        Ok(Some(RpmRepo {
            repomd,
            repomd_asc,
            data,
            packages,
        }))
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("f{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A writer that counts and hashes what passes through it.
pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            n: 0,
        }
    }

    /// Flushes and returns the bytes written and their sha256.
    pub(crate) fn finish(mut self) -> std::io::Result<(u64, String)> {
        self.inner.flush()?;
        Ok((self.n, hex::encode(self.hash.finalize())))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
