//! Checking a mirror against an announced state: first the state itself (every `InRelease`,
//! `Release.gpg` and `repomd.xml.asc` signature valid and made by a key the configuration
//! pins, `KEY.asc` holding only pinned keys, every file an index
//! names present with its size and sha256), then the target against it (rsync in checksum
//! mode, dry run: any file missing or different on the target, or a link pointing elsewhere,
//! is reported).

use perestroika_tree::GenerationDir;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use perestroika_formats::deb822::{self, ChecksumEntry};
use perestroika_formats::release_index::sha256_entries;
use perestroika_protocol::messages::Artifact;
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

/// The tree's `KEY.asc` as a gpgv keyring, and the fingerprints every signature must be by.
struct Keyring<'a> {
    file: PathBuf,
    pinned: &'a [String],
}

impl<'a> Keyring<'a> {
    /// Reads `key` into `<scratch>/key.gpg`. Returns the keyring and a problem for each key
    /// in it that is not pinned; `Err` when the file holds no usable key.
    fn open(
        key: &Path,
        scratch: &Path,
        pinned: &'a [String],
    ) -> Result<(Self, Vec<Problem>), Problem> {
        let home = scratch.join("home");
        let _ = fs_err::create_dir_all(&home);
        let _ = fs_err::set_permissions(&home, std::fs::Permissions::from_mode(0o700));
        let file = scratch.join("key.gpg");
        let _ = fs_err::remove_file(&file);
        let unusable = |why: String| format!("{}: not a usable public key: {why}", key.display());
        let dearmor = Command::new("gpg")
            .args(["--batch", "--yes", "--dearmor", "-o"])
            .arg(&file)
            .arg(key)
            .output()
            .map_err(|e| unusable(format!("cannot run gpg: {e}")))?;
        let listing = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--with-colons", "--show-keys"])
            .arg(key)
            .output()
            .map_err(|e| unusable(format!("cannot run gpg: {e}")))?;
        if !dearmor.status.success() || !listing.status.success() {
            return Err(unusable(
                String::from_utf8_lossy(&listing.stderr).trim().to_owned(),
            ));
        }
        let held = primary_fingerprints(&String::from_utf8_lossy(&listing.stdout));
        let problems: Vec<Problem> = held
            .iter()
            .filter(|f| !pinned.contains(f))
            .map(|f| {
                format!(
                    "{}: holds key {f}, which is not pinned (expected {})",
                    key.display(),
                    pinned.join(" or ")
                )
            })
            .collect();
        if held.is_empty() {
            return Err(unusable("no key in it".into()));
        }
        Ok((Self { file, pinned }, problems))
    }

    /// Verifies `files` (one clearsigned file, or a detached signature and its data) with
    /// gpgv; every good signature must be by a pinned key.
    fn check(&self, files: &[&Path]) -> Result<(), String> {
        let out = Command::new("gpgv")
            .args(["--status-fd", "1", "--keyring"])
            .arg(&self.file)
            .args(files)
            .output()
            .map_err(|e| format!("cannot run gpgv: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let signers = signers(&String::from_utf8_lossy(&out.stdout));
        if signers.is_empty() {
            return Err("gpgv reported no valid signature".into());
        }
        match signers.iter().find(|f| !self.pinned.contains(f)) {
            Some(found) => Err(format!(
                "signed by key {found}, expected {}",
                self.pinned.join(" or ")
            )),
            None => Ok(()),
        }
    }
}

/// The primary keys' fingerprints in `gpg --with-colons` output.
fn primary_fingerprints(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_pub = false;
    for line in listing.lines() {
        let mut fields = line.split(':');
        match fields.next() {
            Some("pub") => after_pub = true,
            Some("fpr") if after_pub => {
                out.extend(fields.nth(8).map(str::to_ascii_uppercase));
                after_pub = false;
            }
            _ => after_pub = false,
        }
    }
    out
}

/// The primary key of each good signature in gpgv's `--status-fd` output (`VALIDSIG`).
fn signers(status: &str) -> Vec<String> {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .filter_map(|rest| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // The signing (sub)key first; the primary key's fingerprint, when given, last.
            fields
                .get(9)
                .or(fields.first())
                .map(|f| f.to_ascii_uppercase())
        })
        .collect()
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
    match Keyring::open(&key, scratch, pinned) {
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
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, bytes).unwrap();
    }

    fn gz(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    fn sum(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    /// A deb root with one package in the pool and a source package; returns the root and
    /// the text of a `Packages` and a `Sources` index naming them.
    fn deb_root(dir: &Path) -> (PathBuf, String, String) {
        let root = dir.join("deb");
        let deb = b"a package".as_slice();
        write(&root.join("pool/main/g/greet/greet_1.0_all.deb"), deb);
        let dsc = b"a source package".as_slice();
        write(&root.join("pool/main/g/greet/greet_1.0.dsc"), dsc);
        let packages = format!(
            "Package: greet\nVersion: 1.0\nFilename: pool/main/g/greet/greet_1.0_all.deb\n\
             Size: {}\nSHA256: {}\n\n",
            deb.len(),
            sum(deb)
        );
        let sources = format!(
            "Package: greet\nDirectory: pool/main/g/greet\nChecksums-Sha256:\n {} {} greet_1.0.dsc\n\n",
            sum(dsc),
            dsc.len()
        );
        (root, packages, sources)
    }

    #[test]
    fn indexes_are_checked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let (root, packages, sources) = deb_root(dir.path());
        let index = dir.path().join("Packages.gz");
        write(&index, &gz(&packages));
        let source_index = dir.path().join("Sources");
        write(&source_index, sources.as_bytes());
        let mut problems = Vec::new();
        check_index(&root, &index, &mut problems);
        check_index(&root, &source_index, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        // A changed package, a missing source file, an unreadable index: each named.
        write(
            &root.join("pool/main/g/greet/greet_1.0_all.deb"),
            b"another package",
        );
        fs_err::remove_file(root.join("pool/main/g/greet/greet_1.0.dsc")).unwrap();
        check_index(&root, &index, &mut problems);
        check_index(&root, &source_index, &mut problems);
        check_index(&root, &dir.path().join("missing/Packages"), &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("pool/main/g/greet/greet_1.0_all.deb: differs from "),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with("pool/main/g/greet/greet_1.0.dsc: missing or differs"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].ends_with("missing/Packages: unreadable"),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn a_generation_without_a_usable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        let generation = dir.path().join("gen");
        fs_err::create_dir_all(&generation).unwrap();
        let problems = check_generation(&generation, &scratch, &["AB".repeat(20)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].ends_with("KEY.asc: missing"), "{}", problems[0]);

        write(&generation.join("KEY.asc"), b"not a key\n");
        let problems = check_generation(&generation, &scratch, &["AB".repeat(20)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("KEY.asc: not a usable public key"),
            "{}",
            problems[0]
        );
    }

    /// gpg with a throwaway home in `dir`.
    fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg runs");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A signed generation of one suite (`bookworm`) with the package of [`deb_root`];
    /// returns its directory and the signing key's fingerprint.
    fn signed_generation(dir: &Path) -> (PathBuf, String) {
        let home = dir.join("gnupg");
        fs_err::create_dir_all(&home).unwrap();
        fs_err::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        gpg(
            &home,
            &[
                "--quick-gen-key",
                "Mirror Test <test@example.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
        );
        let listing = gpg(&home, &["--with-colons", "--list-keys"]);
        let fingerprint = primary_fingerprints(&String::from_utf8_lossy(&listing.stdout))
            .pop()
            .expect("the new key");
        let generation = dir.join("gen");
        let (_, packages, _) = deb_root(&generation);
        let key = gpg(&home, &["--armor", "--export", &fingerprint]);
        write(&generation.join("KEY.asc"), &key.stdout);
        let suite = generation.join("deb/dists/bookworm");
        let index = gz(&packages);
        write(&suite.join("main/binary-amd64/Packages.gz"), &index);
        let release = format!(
            "Suite: bookworm\nSHA256:\n {} {} main/binary-amd64/Packages.gz\n {} 99 main/binary-amd64/Packages\n",
            sum(&index),
            index.len(),
            "0".repeat(64)
        );
        write(&suite.join("Release"), release.as_bytes());
        let (release, inrelease, detached) = (
            suite.join("Release"),
            suite.join("InRelease"),
            suite.join("Release.gpg"),
        );
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        gpg(
            &home,
            &["--clearsign", "-o", &path(&inrelease), &path(&release)],
        );
        gpg(
            &home,
            &["--detach-sign", "-o", &path(&detached), &path(&release)],
        );
        (generation, fingerprint)
    }

    #[test]
    fn a_signed_generation_passes_and_every_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (generation, fingerprint) = signed_generation(dir.path());
        let scratch = dir.path().join("scratch");
        let pinned = [fingerprint.clone()];
        let problems = check_generation(&generation, &scratch, &pinned);
        assert!(problems.is_empty(), "{problems:?}");

        // Signed by a key the configuration does not pin.
        let stranger = ["CD".repeat(20)];
        let problems = check_generation(&generation, &scratch, &stranger);
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("holds key {fingerprint}, which is not pinned"))),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("InRelease: bad signature")
                    && p.contains(&format!("signed by key {fingerprint}"))),
            "{problems:?}"
        );

        // A package changed after signing.
        let deb = generation.join("deb/pool/main/g/greet/greet_1.0_all.deb");
        fs_err::write(&deb, b"a changed package").unwrap();
        let problems = check_generation(&generation, &scratch, &pinned);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("pool/main/g/greet/greet_1.0_all.deb: differs"),
            "{problems:?}"
        );

        // An index changed after signing.
        let index = generation.join("deb/dists/bookworm/main/binary-amd64/Packages.gz");
        fs_err::write(&index, gz("Package: evil\n")).unwrap();
        let problems = check_generation(&generation, &scratch, &pinned);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with("Packages.gz: size or sha256 differs from Release"),
            "{problems:?}"
        );

        // The Release file changed after signing: both signatures fail.
        let release = generation.join("deb/dists/bookworm/Release");
        let text = fs_err::read_to_string(&release).unwrap();
        fs_err::write(&release, text.replace("bookworm", "trixie")).unwrap();
        let problems = check_generation(&generation, &scratch, &pinned);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("Release: bad detached signature")),
            "{problems:?}"
        );

        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(dir.path().join("gnupg"))
            .args(["--kill", "gpg-agent"])
            .output();
    }

    #[test]
    fn signers_and_held_keys_are_read_from_gpg_output() {
        let status = "[GNUPG:] NEWSIG\n\
            [GNUPG:] GOODSIG 1122334455667788 Farm Operator <ops@example.invalid>\n\
            [GNUPG:] VALIDSIG aaaa000000000000000000000000000000000000 2026-01-01 1767225600 0 4 0 22 10 01 BBBB000000000000000000000000000000000000\n\
            [GNUPG:] VALIDSIG CCCC000000000000000000000000000000000000 2026-01-01 1767225600 0 4 0 22 10 01\n";
        assert_eq!(
            signers(status),
            [
                "BBBB000000000000000000000000000000000000",
                "CCCC000000000000000000000000000000000000"
            ]
        );
        let listing =
            "pub:u:255:22:1122334455667788:1767225600:1830297600::u:::scSC:::::ed25519:::0:\n\
            fpr:::::::::DDDD000000000000000000000000000000000000:\n\
            uid:u::::1767225600::0::Farm Operator <ops@example.invalid>::::::::::0:\n\
            sub:u:255:18:99AABBCCDDEEFF00:1767225600::::::e:::::cv25519::\n\
            fpr:::::::::EEEE000000000000000000000000000000000000:\n";
        assert_eq!(
            primary_fingerprints(listing),
            ["DDDD000000000000000000000000000000000000"]
        );
    }
}
