//! Checking a mirror against an announced state: first the state itself (every `InRelease`,
//! `Release.gpg` and `repomd.xml.asc` signature valid and made by a key the configuration
//! pins, `KEY.asc` holding only pinned keys, every file an index
//! names present with its size and sha256), then the target against it (rsync in checksum
//! mode, dry run: any file missing or different on the target, or a link pointing elsewhere,
//! is reported).

use perestroika_tree::GenerationDir;
use std::io::Read;
use std::path::{Path, PathBuf};

use perestroika_formats::deb822::{self, ChecksumEntry};
use perestroika_formats::release_index::sha256_entries;
use perestroika_protocol::messages::Artifact;
use perestroika_published::keys::Keyring;
#[cfg(test)]
use perestroika_published::keys::{primary_fingerprints, signers};
use regex::Regex;

use crate::rsync::{relative, Target};
use crate::sync::{link_source, SyncError};
use perestroika_tree::TreeName;

/// A problem found.
pub type Problem = String;

fn sha256_file(path: &Path) -> Option<(u64, String)> {
    Artifact::of_file(path).ok().map(|a| (a.size, a.sha256))
}

fn read_maybe_gz(path: &Path) -> Option<String> {
    let bytes = fs_err::read(path).ok()?;
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .ok()?;
    } else {
        text = String::from_utf8(bytes).ok()?;
    }
    Some(text)
}

/// Checks generation `dir` of a tree on this host (its pool links resolve beside it):
/// `KEY.asc` may hold only `pinned` keys, and every signature must be by one of them.
pub fn check_generation(dir: &Path, scratch: &Path, pinned: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let key = GenerationDir::new(dir).key();
    if !key.is_file() {
        return vec![format!("{}: missing", key.display())];
    }
    let _ = fs_err::create_dir_all(scratch);
    match Keyring::open(&[&key], scratch, pinned) {
        Ok((keyring, found)) => {
            // A stranger's key in KEY.asc is named, and so is every signature it made.
            problems.extend(found);
            check_deb(dir, &keyring, &mut problems);
            check_rpm(dir, &keyring, &mut problems);
        }
        Err(p) => problems.push(p),
    }
    problems
}

fn check_deb(dir: &Path, keyring: &Keyring, problems: &mut Vec<Problem>) {
    let dists = GenerationDir::new(dir).deb_dists();
    let Ok(suites) = fs_err::read_dir(&dists) else {
        return;
    };
    let deb_root = dir.join("deb");
    for suite in suites.flatten() {
        let suite_dir = suite.path();
        let inrelease = suite_dir.join("InRelease");
        if let Err(e) = keyring.check(&[&inrelease]) {
            problems.push(format!("{}: bad signature: {e}", inrelease.display()));
        }
        let release = suite_dir.join("Release");
        if let Err(e) = keyring.check(&[&suite_dir.join("Release.gpg"), &release]) {
            problems.push(format!(
                "{}: bad detached signature: {e}",
                release.display()
            ));
        }
        let Ok(text) = fs_err::read_to_string(&release) else {
            problems.push(format!("{}: missing", release.display()));
            continue;
        };
        let entries = match sha256_entries(&text) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(format!("{}: {e}", release.display()));
                continue;
            }
        };
        for entry in entries {
            let (sum, size, name) = (&entry.sha256, entry.size, &entry.path);
            let path = suite_dir.join(name);
            match sha256_file(&path) {
                None => {} // reprepro lists uncompressed names it does not write
                Some((s, h))
                    if s == size
                        && h == *sum
                        && (name.ends_with("Packages.gz") || name.ends_with("Sources.gz")) =>
                {
                    check_index(&deb_root, &path, problems);
                }
                Some((s, h)) if s == size && h == *sum => {}
                Some(_) => problems.push(format!(
                    "{}: size or sha256 differs from Release",
                    path.display()
                )),
            }
        }
    }
}

/// Every file a Packages or Sources index names, with its size and sha256.
fn check_index(deb_root: &Path, index: &Path, problems: &mut Vec<Problem>) {
    let Some(text) = read_maybe_gz(index) else {
        problems.push(format!("{}: unreadable", index.display()));
        return;
    };
    let stanzas = match deb822::parse(&text) {
        Ok(stanzas) => stanzas,
        Err(e) => {
            problems.push(format!("{}: {e}", index.display()));
            return;
        }
    };
    for stanza in &stanzas {
        if let Some(filename) = stanza.get("Filename") {
            let want = (
                stanza.get("Size").unwrap_or(""),
                stanza.get("SHA256").unwrap_or(""),
            );
            match sha256_file(&deb_root.join(filename)) {
                Some((s, h)) if s.to_string() == want.0 && h == want.1 => {}
                Some(_) => problems.push(format!("{filename}: differs from {}", index.display())),
                None => problems.push(format!(
                    "{filename}: named by {} but missing",
                    index.display()
                )),
            }
        } else if let Some(directory) = stanza.get("Directory") {
            let files = match ChecksumEntry::list(stanza, "Checksums-Sha256") {
                Ok(files) => files,
                Err(e) => {
                    problems.push(format!("{}: {e}", index.display()));
                    continue;
                }
            };
            for ChecksumEntry {
                sum,
                size,
                path: name,
            } in files
            {
                let path = deb_root.join(directory).join(&name);
                match sha256_file(&path) {
                    Some((s, h)) if s == size && h == sum => {}
                    _ => problems.push(format!(
                        "{directory}/{name}: missing or differs from {}",
                        index.display()
                    )),
                }
            }
        }
    }
}

fn check_rpm(dir: &Path, keyring: &Keyring, problems: &mut Vec<Problem>) {
    let Ok(suites) = fs_err::read_dir(dir.join("rpm")) else {
        return;
    };
    let data = Regex::new(r#"(?s)<data type="([^"]+)">.*?<checksum type="sha256">([0-9a-f]+)</checksum>.*?<location href="([^"]+)"/>"#)
        .expect("regex");
    let package = Regex::new(r#"(?s)<package type="rpm">.*?<checksum type="sha256"[^>]*>([0-9a-f]+)</checksum>.*?<location href="([^"]+)"/>"#)
        .expect("regex");
    for suite in suites.flatten() {
        let Ok(arches) = fs_err::read_dir(suite.path()) else {
            continue;
        };
        for arch in arches.flatten() {
            let repo = arch.path();
            let repomd = repo.join("repodata/repomd.xml");
            let Ok(text) = fs_err::read_to_string(&repomd) else {
                continue;
            };
            if let Err(e) = keyring.check(&[&repo.join("repodata/repomd.xml.asc"), &repomd]) {
                problems.push(format!("{}: bad signature: {e}", repomd.display()));
            }
            for cap in data.captures_iter(&text) {
                let path = repo.join(&cap[3]);
                match sha256_file(&path) {
                    Some((_, h)) if h == cap[2] => {}
                    _ => {
                        problems.push(format!(
                            "{}: missing or differs from repomd.xml",
                            path.display()
                        ));
                        continue;
                    }
                }
                if &cap[1] == "primary" {
                    let Some(primary) = read_maybe_gz(&path) else {
                        continue;
                    };
                    for p in package.captures_iter(&primary) {
                        let file = repo.join(&p[2]);
                        match sha256_file(&file) {
                            Some((_, h)) if h == p[1] => {}
                            _ => problems.push(format!(
                                "{}: missing or differs from primary",
                                file.display()
                            )),
                        }
                    }
                }
            }
        }
    }
}

/// Compares the target with the tree at `generation` (rsync, checksums, dry run). Returns
/// each difference rsync reports.
pub async fn compare(
    root: &Path,
    tree: &TreeName,
    generation: u64,
    target: &Target,
    scratch: &Path,
) -> Result<Vec<Problem>, SyncError> {
    let link = link_source(&scratch.join("verify"), tree, generation)?;
    let sources: Vec<PathBuf> = vec![
        relative(root, &format!("{}/", tree.pool())),
        relative(root, &format!("{}/", tree.generation(generation))),
    ];
    let mut problems = Vec::new();
    for (what, args, srcs) in [
        (
            "files",
            vec!["-rlc", "--relative", "--dry-run", "--itemize-changes"],
            sources,
        ),
        (
            "link",
            vec!["-lc", "--relative", "--dry-run", "--itemize-changes"],
            vec![link],
        ),
    ] {
        let out = target.itemize(what, &args, &srcs).await?;
        for line in out.lines() {
            // ".d..t......" lines are directory time stamps, not content.
            if line.len() > 12 && !line.starts_with(".d") && !line.starts_with("cd") {
                problems.push(format!("target differs: {line}"));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests;
