use super::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

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
