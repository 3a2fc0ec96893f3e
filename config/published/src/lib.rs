//! Reading what the farm published, from any host: the public root on this host or a
//! mirror's http server are two [`Source`]s of one [`Reader`]. Over http nothing is trusted
//! before it is verified: a deb suite's `InRelease` (an rpm repository's `repomd.xml` and its
//! `.asc`) against keys pinned in the configuration — never the `KEY.asc` served beside it —
//! and every index and package file through the sizes and sha256 sums the signed file names.
//! Paths follow `perestroika-tree`'s layout.

pub mod fetch;
pub mod keys;
mod snapshots;
mod verified;

pub use fetch::{BaseUrl, Limits, Source};
pub use keys::Keyring;
pub use verified::{DebSuite, RpmFile, RpmRepo};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Published state cannot be read, or is not what its signatures say.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0:?} is not a path inside the public tree; refused")]
    NotInTree(String),
    #[error("{0}")]
    Io(String),
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url} redirects to {to:?}: refused (the public tree's URL must serve it directly; set [public] url to where it lives)")]
    Redirect { url: String, to: String },
    #[error("{what} is larger than {max} bytes; refused")]
    TooBig { what: String, max: u64 },
    #[error("{file}: bad signature, refused: {reason} (the keys pinned in [public] keys / review_keys must have signed it)")]
    Signature { file: String, reason: String },
    #[error("{file}: size or sha256 differs from what the signed {by} names; refused")]
    Hash { file: String, by: String },
    #[error("{file}: {reason}")]
    Index { file: String, reason: String },
    #[error("{0}")]
    Keys(String),
}

/// Bound of a signed index (`InRelease`, `repomd.xml`, their signatures).
pub const MAX_SIGNED_BYTES: u64 = 16 << 20;

/// Reads published trees from one source, verifying what it reads with the pinned keys.
#[derive(Debug)]
pub struct Reader {
    source: Source,
    release_keys: Option<Keyring>,
    review_keys: Option<Keyring>,
    release_files: Vec<PathBuf>,
    review_files: Vec<PathBuf>,
    limits: Limits,
    scratch: tempfile::TempDir,
}

impl Reader {
    /// A reader of `source`. `release_keys` are the armored public keys of the farm's release
    /// trees, `review_keys` those of review and topic trees (the release's keys when empty).
    /// Over http keys are required; from a local directory without keys, signatures are not
    /// checked (the host's own public root is trusted, as before).
    pub fn new(
        source: Source,
        release_keys: &[PathBuf],
        review_keys: &[PathBuf],
        timeout: Duration,
    ) -> Result<Self, ReadError> {
        let scratch = tempfile::Builder::new()
            .prefix("perestroika-published-")
            .tempdir()
            .map_err(|e| ReadError::Io(format!("a scratch directory: {e}")))?;
        let ring = |keys: &[PathBuf], name: &str| -> Result<Option<Keyring>, ReadError> {
            if keys.is_empty() {
                return Ok(None);
            }
            let dir = scratch.path().join(name);
            fs_err::create_dir_all(&dir).map_err(|e| ReadError::Io(e.to_string()))?;
            Keyring::pinned(keys, &dir)
                .map(Some)
                .map_err(ReadError::Keys)
        };
        let (release_keys_files, review_keys_files) = (release_keys, review_keys);
        let release_keys = ring(release_keys, "release")?;
        let review_keys = ring(review_keys, "review")?.or_else(|| release_keys.clone());
        if matches!(source, Source::Http(_)) && release_keys.is_none() {
            return Err(ReadError::Keys(format!(
                "reading {source} needs the farm's public key pinned: set [public] keys to the \
                 file(s) `perestroika-publisher export-key` wrote (never the KEY.asc the URL serves)"
            )));
        }
        Ok(Self {
            source,
            release_keys,
            review_keys,
            release_files: release_keys_files.to_vec(),
            review_files: review_keys_files.to_vec(),
            limits: Limits { timeout },
            scratch,
        })
    }

    /// The reader of a farm's published state: `[public] url` when set, else the host's
    /// `[paths] public_root`, with the keys `[public]` pins.
    pub fn of_farm(farm: &perestroika_config::FarmConfig) -> Result<Self, ReadError> {
        let public = &farm.public;
        let source = match &public.url {
            Some(url) => Source::Http(
                BaseUrl::parse(url)
                    .map_err(|e| ReadError::Keys(format!("configuration key `public.url`: {e}")))?,
            ),
            None => Source::Dir(farm.paths.public_root.clone()),
        };
        Self::new(
            source,
            &public.keys,
            &public.review_keys,
            Duration::from_secs(public.timeout_secs.max(1)),
        )
    }

    /// The armored key files pinned for `tree` (see [`Reader::keyring_for`]).
    pub fn key_files_for(&self, tree: &str) -> &[PathBuf] {
        if tree.split('/').nth(1) == Some("review") && !self.review_files.is_empty() {
            &self.review_files
        } else {
            &self.release_files
        }
    }

    /// Where it reads from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The bounds of each request.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The pinned keys that must have signed `tree` (`<customer>/review/<name>` takes the
    /// review keys), if any are configured.
    pub fn keyring_for(&self, tree: &str) -> Option<&Keyring> {
        if tree.split('/').nth(1) == Some("review") {
            self.review_keys.as_ref()
        } else {
            self.release_keys.as_ref()
        }
    }

    /// A file of the tree, at most `max` bytes; `None` when it is not there. Not verified:
    /// callers check it against a signed index.
    pub async fn get(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
        self.source.get(rel, max, self.limits).await
    }

    /// Writes the file at `rel` to `dest`, checking its size and sha256 against a signed
    /// index's `size` and `sha256`. Returns `false` when it is not there.
    pub async fn download_checked(
        &self,
        rel: &str,
        size: u64,
        sha256: &str,
        dest: &Path,
    ) -> Result<bool, ReadError> {
        self.download(rel, size, Some(size), sha256, dest).await
    }

    async fn download(
        &self,
        rel: &str,
        max: u64,
        size: Option<u64>,
        sha256: &str,
        dest: &Path,
    ) -> Result<bool, ReadError> {
        let tmp = dest.with_extension("part");
        let io = |e: std::io::Error| ReadError::Io(format!("{}: {e}", tmp.display()));
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut hashing = verified::HashingWriter::new(file);
        let found = self
            .source
            .copy_to(rel, max, self.limits, &mut hashing)
            .await;
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                let _ = fs_err::remove_file(&tmp);
                return Err(e);
            }
        };
        let (n, sum) = hashing.finish().map_err(io)?;
        if !found {
            let _ = fs_err::remove_file(&tmp);
            return Ok(false);
        }
        if size.is_some_and(|size| n != size) || sum != sha256 {
            let _ = fs_err::remove_file(&tmp);
            return Err(ReadError::Hash {
                file: rel.to_owned(),
                by: "index".into(),
            });
        }
        fs_err::rename(&tmp, dest).map_err(|e| ReadError::Io(e.to_string()))?;
        Ok(true)
    }

    /// Writes the file at `rel` to `dest`, at most `max` bytes, checking its sha256 against a
    /// signed index that names no size. Returns `false` when it is not there.
    pub async fn download_by_sum(
        &self,
        rel: &str,
        max: u64,
        sha256: &str,
        dest: &Path,
    ) -> Result<bool, ReadError> {
        self.download(rel, max, None, sha256, dest).await
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}
