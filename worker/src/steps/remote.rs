//! Build dependencies from a mirror's http server: the worker reads each wanted suite through
//! the pinned keys (its `InRelease`, the `Packages` indexes it names, every package file those
//! name, each by size and sha256) into a copy laid out like the public tree, which is then
//! mounted read-only like a local tree. The copy's `KEY.asc` is the pinned key, so apt in the
//! container checks the same signature again; the container's network stays the package
//! cache relay alone. Package files are kept by sha256 in a cache shared by builds.

use std::path::{Path, PathBuf};

use perestroika_formats::release_index::stanzas;
use perestroika_published::{fetch::check_rel, ReadError, Reader};
use perestroika_tree::GenerationDir;

use super::request::DepRepo;

/// Bound of one package file fetched as a build dependency.
const MAX_PACKAGE_BYTES: u64 = 4 << 30;

/// What of a suite to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// The binary packages: what a build's dependencies need.
    Binaries,
    /// The binary packages and the source packages (`Sources` and the files each names):
    /// what a rebuild of the suite needs.
    WithSources,
}

/// Copies the deb suites `wanted` (`(tree relative to the public root, suite)`) that exist,
/// verified, below `dest` (`<dest>/<tree>`), taking package files from and adding them to
/// `cache`. Returns the copies as dependency repositories; a suite the tree does not have is
/// left out. Any file that is not what the pinned keys signed fails the whole copy.
pub async fn copy_deb_suites(
    reader: &Reader,
    wanted: &[(String, String)],
    dest: &Path,
    cache: &Path,
    what: Contents,
) -> Result<Vec<DepRepo>, ReadError> {
    let io = |what: &Path, e: std::io::Error| ReadError::Io(format!("{}: {e}", what.display()));
    fs_err::create_dir_all(cache).map_err(|e| ReadError::Io(e.to_string()))?;
    let mut repos = Vec::new();
    for (tree, suite) in wanted {
        let Some(verified) = reader.deb_suite(tree, suite).await? else {
            continue;
        };
        let Some(inrelease) = &verified.inrelease else {
            return Err(ReadError::Keys(format!(
                "{tree}: no keys pinned to check it with ([public] keys)"
            )));
        };
        let copy = dest.join(tree);
        let gen = GenerationDir::new(&copy);
        let suite_dir = gen.deb_suite(suite);
        fs_err::create_dir_all(&suite_dir).map_err(|e| io(&suite_dir, e))?;
        // The pinned keys, never the KEY.asc the mirror serves.
        let mut key = Vec::new();
        for file in reader.key_files_for(tree) {
            key.extend(fs_err::read(file).map_err(|e| ReadError::Keys(e.to_string()))?);
        }
        fs_err::write(gen.key(), key).map_err(|e| io(&gen.key(), e))?;
        fs_err::write(suite_dir.join("InRelease"), inrelease).map_err(|e| io(&suite_dir, e))?;
        let indexes: Vec<String> = verified
            .entries
            .iter()
            .filter_map(|e| {
                let name = e.path.strip_suffix(".gz").unwrap_or(&e.path);
                let mut parts = name.split('/');
                let (_, arch, file) = (parts.next()?, parts.next()?, parts.next()?);
                let binaries = arch.starts_with("binary-") && file == "Packages";
                let sources =
                    what == Contents::WithSources && arch == "source" && file == "Sources";
                ((binaries || sources) && parts.next().is_none()).then(|| name.to_owned())
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for name in indexes {
            let Some((entry, bytes)) = reader.deb_index_file(&verified, &name).await? else {
                continue;
            };
            check_rel(&entry.path)?;
            let file = suite_dir.join(&entry.path);
            let parent = file.parent().unwrap_or(&suite_dir).to_owned();
            let by_hash = parent.join("by-hash/SHA256");
            fs_err::create_dir_all(&by_hash).map_err(|e| io(&by_hash, e))?;
            fs_err::write(&file, &bytes).map_err(|e| io(&file, e))?;
            fs_err::write(by_hash.join(&entry.sha256), &bytes).map_err(|e| io(&by_hash, e))?;
            let Some(text) = reader.deb_index(&verified, &name).await? else {
                continue;
            };
            for stanza in stanzas(&text) {
                for (filename, size, sum) in named_files(&stanza) {
                    check_rel(&filename)?;
                    let size: u64 = size.parse().map_err(|_| ReadError::Index {
                        file: name.clone(),
                        reason: format!("{filename}: size {size:?} is not a number"),
                    })?;
                    if size > MAX_PACKAGE_BYTES
                        || sum.len() != 64
                        || !sum.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        return Err(ReadError::Index {
                            file: name.clone(),
                            reason: format!("{filename}: size or sha256 out of bounds"),
                        });
                    }
                    let cached = cache.join(sum.to_ascii_lowercase());
                    if !cached.is_file() {
                        let rel = format!("{tree}/deb/{filename}");
                        if !reader.download_checked(&rel, size, &sum, &cached).await? {
                            return Err(ReadError::Index {
                                file: rel,
                                reason: "named by the signed index but missing".into(),
                            });
                        }
                    }
                    let target = copy.join("deb").join(&filename);
                    if let Some(dir) = target.parent() {
                        fs_err::create_dir_all(dir).map_err(|e| io(dir, e))?;
                    }
                    let _ = fs_err::remove_file(&target);
                    if fs_err::hard_link(&cached, &target).is_err() {
                        fs_err::copy(&cached, &target).map_err(|e| io(&target, e))?;
                    }
                }
            }
        }
        repos.push(DepRepo::new(copy, suite));
    }
    Ok(repos)
}

/// Copies the rpm repositories `rpm/<suite>/<arch>` of `wanted` (`(tree, suite)`) that exist,
/// verified, below `dest` (`<dest>/<tree>`): `repomd.xml` checked with its `.asc` against the
/// pinned keys, every metadata file it names and every package the primary names by sha256
/// (and size, when named), package files taken from and added to `cache`. Returns the copies
/// as dependency repositories; a repository the tree does not have is left out.
pub async fn copy_rpm_repos(
    reader: &Reader,
    wanted: &[(String, String)],
    arch: &str,
    dest: &Path,
    cache: &Path,
) -> Result<Vec<DepRepo>, ReadError> {
    let io = |what: &Path, e: std::io::Error| ReadError::Io(format!("{}: {e}", what.display()));
    fs_err::create_dir_all(cache).map_err(|e| ReadError::Io(e.to_string()))?;
    let mut repos = Vec::new();
    for (tree, suite) in wanted {
        let Some(repo) = reader.rpm_repo(tree, suite, arch).await? else {
            continue;
        };
        let Some(asc) = &repo.repomd_asc else {
            return Err(ReadError::Keys(format!(
                "{tree}: no keys pinned to check it with ([public] keys)"
            )));
        };
        let copy = dest.join(tree);
        let gen = GenerationDir::new(&copy);
        let dir = gen.rpm_repo(suite, arch);
        let remote = GenerationDir::new(tree).rpm_repo(suite, arch);
        let repodata = dir.join("repodata");
        fs_err::create_dir_all(&repodata).map_err(|e| io(&repodata, e))?;
        let mut key = Vec::new();
        for file in reader.key_files_for(tree) {
            key.extend(fs_err::read(file).map_err(|e| ReadError::Keys(e.to_string()))?);
        }
        fs_err::write(gen.key(), key).map_err(|e| io(&gen.key(), e))?;
        fs_err::write(repodata.join("repomd.xml"), &repo.repomd).map_err(|e| io(&repodata, e))?;
        fs_err::write(repodata.join("repomd.xml.asc"), asc).map_err(|e| io(&repodata, e))?;
        for file in repo.data.iter().chain(&repo.packages) {
            check_rel(&file.location)?;
            let size = file.size.unwrap_or(MAX_PACKAGE_BYTES);
            if size > MAX_PACKAGE_BYTES || file.sha256.len() != 64 {
                return Err(ReadError::Index {
                    file: file.location.clone(),
                    reason: "size or sha256 out of bounds".into(),
                });
            }
            let cached = cache.join(&file.sha256);
            if !cached.is_file() {
                let rel = remote.join(&file.location).to_string_lossy().into_owned();
                let found = match file.size {
                    Some(size) => {
                        reader
                            .download_checked(&rel, size, &file.sha256, &cached)
                            .await?
                    }
                    None => {
                        reader
                            .download_by_sum(&rel, MAX_PACKAGE_BYTES, &file.sha256, &cached)
                            .await?
                    }
                };
                if !found {
                    return Err(ReadError::Index {
                        file: rel,
                        reason: "named by the signed metadata but missing".into(),
                    });
                }
            }
            let target = dir.join(&file.location);
            if let Some(parent) = target.parent() {
                fs_err::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            let _ = fs_err::remove_file(&target);
            if fs_err::hard_link(&cached, &target).is_err() {
                fs_err::copy(&cached, &target).map_err(|e| io(&target, e))?;
            }
        }
        repos.push(DepRepo::new(copy, suite));
    }
    Ok(repos)
}

/// The files a stanza of an index names, `(path below deb/, size, sha256)`: a `Packages`
/// stanza's `Filename`, or each file of a `Sources` stanza's `Checksums-Sha256` in its
/// `Directory` (a name with a `/` is left for [`check_rel`] to refuse).
fn named_files(
    stanza: &perestroika_formats::release_index::Stanza,
) -> Vec<(String, String, String)> {
    if let (Some(filename), Some(size), Some(sum)) = (
        stanza.get("Filename"),
        stanza.get("Size"),
        stanza.get("SHA256"),
    ) {
        return vec![(filename.clone(), size.clone(), sum.clone())];
    }
    let (Some(dir), Some(sums)) = (stanza.get("Directory"), stanza.get("Checksums-Sha256")) else {
        return Vec::new();
    };
    sums.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (sum, size, file) = (words.next()?, words.next()?, words.next()?);
            let file = if file.contains('/') {
                format!("../{file}")
            } else {
                file.to_owned()
            };
            Some((format!("{dir}/{file}"), size.to_owned(), sum.to_owned()))
        })
        .collect()
}

/// Where a job's copies go, below the worker's scratch directory.
pub fn copies_dir(scratch: &Path, job_id: &str) -> PathBuf {
    scratch.join(format!("published-{job_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_an_index_names() {
        let binary = stanzas("Package: greet\nFilename: pool/main/g/greet/greet_1.0_amd64.deb\nSize: 12\nSHA256: ab\n");
        assert_eq!(
            named_files(&binary[0]),
            [(
                "pool/main/g/greet/greet_1.0_amd64.deb".to_owned(),
                "12".to_owned(),
                "ab".to_owned()
            )]
        );
        let source = stanzas(
            "Package: greet\nDirectory: pool/main/g/greet\nChecksums-Sha256:\n aa 10 greet_1.0.dsc\n bb 20 greet_1.0.tar.xz\n cc 1 ../../../etc/passwd\n",
        );
        let files = named_files(&source[0]);
        assert_eq!(files[0].0, "pool/main/g/greet/greet_1.0.dsc");
        assert_eq!(
            files[1],
            (
                "pool/main/g/greet/greet_1.0.tar.xz".to_owned(),
                "20".to_owned(),
                "bb".to_owned()
            )
        );
        // A name with a `/` is made to leave the directory, so check_rel refuses it.
        assert!(check_rel(&files[2].0).is_err(), "{:?}", files[2]);
        assert!(named_files(&stanzas("Package: x\n")[0]).is_empty());
    }
}
