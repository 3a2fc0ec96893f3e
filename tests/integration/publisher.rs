//! The publisher's deb path, judged by real gpg and a real apt with signature checking on.

use std::path::{Path, PathBuf};
use std::process::Output;

use perestroika_tests::apt::{
    make_deb, make_deb_with, signed_farm, AptRoot, OperatorKey, BOOKWORM_RELEASE,
};
use perestroika_tests::{assert_success, run, Farm, NO_BROKER};

/// A farm with the operator's key imported into the publisher.
struct Published {
    farm: Farm,
    _key: OperatorKey,
    debs: tempfile::TempDir,
}

impl Published {
    fn new() -> Self {
        let key = OperatorKey::new();
        let farm = signed_farm(NO_BROKER, &[&key], "", BOOKWORM_RELEASE);
        Self {
            farm,
            _key: key,
            debs: tempfile::tempdir().unwrap(),
        }
    }

    fn include(&self, files: &[&Path]) -> Output {
        self.farm.include("bookworm", &[], files).output().unwrap()
    }

    fn tree(&self) -> PathBuf {
        self.farm.release_tree()
    }

    fn apt(&self) -> AptRoot {
        let tree = self.tree();
        AptRoot::new(
            &tree.join("KEY.asc"),
            &format!("file:{}/deb bookworm main", tree.display()),
        )
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn debs_and_udebs_are_published_signed_and_installable_with_apt() {
    let p = Published::new();
    let deb = make_deb(p.debs.path(), "pubtest", "1.0", false, "a");
    let udeb = make_deb(p.debs.path(), "pubtest-udeb", "1.0", true, "a");
    let out = p.include(&[&deb, &udeb]);
    assert_success(&out);
    assert!(stdout(&out).contains("generation 1"), "{}", stdout(&out));

    // The live tree is a symlink to a complete generation.
    let tree = p.tree();
    assert!(std::fs::symlink_metadata(&tree)
        .unwrap()
        .file_type()
        .is_symlink());
    let suite = tree.join("deb/dists/bookworm");
    for f in ["InRelease", "Release", "Release.gpg"] {
        assert!(suite.join(f).is_file(), "{f} missing");
    }
    let release = fs_err::read_to_string(suite.join("Release")).unwrap();
    assert!(release.contains("Acquire-By-Hash: yes"));

    // The udeb is only in the debian-installer index.
    let debs_index = fs_err::read_to_string(suite.join("main/binary-amd64/Packages")).unwrap();
    let udebs_index =
        fs_err::read_to_string(suite.join("main/debian-installer/binary-amd64/Packages")).unwrap();
    assert!(debs_index.contains("Package: pubtest\n") && !debs_index.contains("pubtest-udeb"));
    assert!(udebs_index.contains("Package: pubtest-udeb\n"));
    // Their shapes pinned (apt judges them below).
    crate::pinned::pin!("deb_release", &release);
    crate::pinned::pin!("deb_packages", &debs_index);
    let record = fs_err::read_to_string(tree.join("snapshot.json")).unwrap();
    crate::pinned::pin!("snapshot_json", &record);

    // apt trusts it with the published key only, and installs from it.
    let apt = p.apt();
    apt.update();
    assert_eq!(apt.versions("pubtest"), ["1.0"]);
    let dl = apt.apt_get(&["install", "-y", "--download-only", "pubtest"]);
    assert_success(&dl);

    // The public key beside the repository is the operator's.
    let export = run(
        "perestroika-publisher",
        &["--config", p.farm.path.to_str().unwrap(), "export-key"],
    );
    assert_eq!(
        stdout(&export),
        fs_err::read_to_string(tree.join("KEY.asc")).unwrap()
    );
}

/// Packages whose Section names `restricted/` go into the `restricted` component of every
/// suite, udebs into its own `debian-installer` index; other packages into `main`.
#[test]
fn restricted_packages_and_their_udebs_go_into_the_restricted_component() {
    let p = Published::new();
    let dir = p.debs.path();
    let deb = make_deb_with(
        dir,
        "secret",
        "1.0",
        false,
        "Section: restricted/misc\n",
        "r",
    );
    let udeb = make_deb_with(
        dir,
        "secret-udeb",
        "1.0",
        true,
        "Section: restricted/debian-installer\nPackage-Type: udeb\n",
        "r",
    );
    let out = p.include(&[&deb, &udeb]);
    assert_success(&out);
    let suite = p.tree().join("deb/dists/bookworm");
    let read = |sub: &str| fs_err::read_to_string(suite.join(sub)).unwrap();
    assert!(read("restricted/binary-amd64/Packages").contains("Package: secret\n"));
    assert!(read("restricted/debian-installer/binary-amd64/Packages")
        .contains("Package: secret-udeb\n"));
    assert!(!read("restricted/binary-amd64/Packages").contains("secret-udeb"));
    assert!(!read("main/binary-amd64/Packages").contains("secret"));
    // Every suite has both components, udebs included.
    for sub in [
        "main/debian-installer/binary-amd64/Packages",
        "restricted/debian-installer/binary-amd64/Packages",
    ] {
        assert!(
            p.tree()
                .join("deb/dists/bookworm-updates")
                .join(sub)
                .is_file(),
            "bookworm-updates lacks {sub}"
        );
    }

    // apt sees it through the restricted component only.
    let tree = p.tree();
    let apt = AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm restricted", tree.display()),
    );
    apt.update();
    assert_eq!(apt.versions("secret"), ["1.0"]);
    let main_only = p.apt();
    main_only.update();
    assert!(main_only.versions("secret").is_empty());

    // One build with binaries of both kinds: each goes where its Section says.
    let plain = make_deb(dir, "plain", "1.0", false, "p");
    let other = make_deb_with(dir, "other", "1.0", false, "Section: restricted/net\n", "o");
    let out = p.include(&[&plain, &other]);
    assert_success(&out);
    assert!(read("main/binary-amd64/Packages").contains("Package: plain\n"));
    assert!(read("restricted/binary-amd64/Packages").contains("Package: other\n"));
}

#[test]
fn the_same_files_twice_change_nothing_and_different_content_is_refused() {
    let p = Published::new();
    let deb = make_deb(p.debs.path(), "idem", "1.0", false, "a");
    assert!(p.include(&[&deb]).status.success());
    let again = p.include(&[&deb]);
    assert!(again.status.success());
    assert!(
        stdout(&again).starts_with("unchanged:"),
        "{}",
        stdout(&again)
    );

    let other = tempfile::tempdir().unwrap();
    let changed = make_deb(other.path(), "idem", "1.0", false, "b");
    let out = p.include(&[&changed]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("idem_1.0_all.deb"), "{err}");
    // The live repository still serves the original.
    let apt = p.apt();
    apt.update();
    assert_eq!(apt.versions("idem"), ["1.0"]);
}

#[test]
fn every_published_version_stays_installable() {
    let p = Published::new();
    let mut last = PathBuf::new();
    for v in ["1.0", "2.0", "3.0"] {
        let deb = make_deb(p.debs.path(), "kept", v, false, v);
        let out = p.include(&[&deb]);
        last = deb;
        assert_success(&out);
    }
    let udeb = make_deb(p.debs.path(), "kept-udeb", "1.0", true, "u");
    assert!(p.include(&[&udeb]).status.success());
    let apt = p.apt();
    apt.update();
    let mut versions = apt.versions("kept");
    versions.sort();
    assert_eq!(versions, ["1.0", "2.0", "3.0"]);
    // The newest is the candidate; an older one installs when asked for.
    let dl = apt.apt_get(&["install", "-y", "--download-only", "kept=1.0"]);
    assert_success(&dl);
    let policy = apt.apt_get(&["install", "-y", "--download-only", "-s", "kept"]);
    assert!(stdout(&policy).contains("kept (3.0"), "{}", stdout(&policy));
    // Publishing the same file again is still a no-op.
    let again = p.include(&[&last]);
    assert!(
        stdout(&again).starts_with("unchanged:"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn an_older_inrelease_still_finds_its_indexes_by_hash() {
    let p = Published::new();
    let first = make_deb(p.debs.path(), "hashy", "1.0", false, "a");
    assert!(p.include(&[&first]).status.success());
    let old_gen = fs_err::read_link(p.tree()).unwrap();
    let old_release = fs_err::read_to_string(p.tree().join("deb/dists/bookworm/Release")).unwrap();
    let second = make_deb(p.debs.path(), "other", "2.0", false, "a");
    let out = p.include(&[&second]);
    assert!(stdout(&out).contains("generation 2"), "{}", stdout(&out));
    assert_ne!(fs_err::read_link(p.tree()).unwrap(), old_gen);
    let live_suite = p.tree().join("deb/dists/bookworm");
    let mut checked = 0;
    for line in old_release.lines().skip_while(|l| *l != "SHA256:").skip(1) {
        let mut parts = line.split_whitespace();
        let (Some(sum), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            break;
        };
        let by_hash = live_suite
            .join(path)
            .parent()
            .unwrap()
            .join("by-hash/SHA256")
            .join(sum);
        assert!(
            by_hash.is_file(),
            "{path} of the older generation is not reachable by hash"
        );
        checked += 1;
    }
    assert!(checked > 3);

    // Both states are snapshots; the first still holds only the first package.
    let cfg = p.farm.path.to_str().unwrap();
    let list = run(
        "perestroika-publisher",
        &["--config", cfg, "snapshot", "list", &p.farm.customer, "9.0"],
    );
    let listed = stdout(&list);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().nth(1).unwrap().starts_with("* "), "{listed}");
    let show = run(
        "perestroika-publisher",
        &[
            "--config",
            cfg,
            "snapshot",
            "show",
            &p.farm.customer,
            "9.0",
            "1",
        ],
    );
    let shown = stdout(&show);
    assert!(shown.contains("bookworm main hashy 1.0 all"), "{shown}");
    assert!(!shown.contains(" other "), "{shown}");
    assert!(
        shown.starts_with(&format!("{}/9.0 snapshot 1, made ", p.farm.customer)),
        "{shown}"
    );
    assert!(!shown.contains('{'), "text for people, not JSON: {shown}");

    // The same for scripts.
    let listed: serde_json::Value = serde_json::from_slice(
        &run(
            "perestroika-publisher",
            &[
                "--config",
                cfg,
                "--json",
                "snapshot",
                "list",
                &p.farm.customer,
                "9.0",
            ],
        )
        .stdout,
    )
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["snapshot"], 1);
    assert_eq!(listed[0]["live"], false);
    assert_eq!(listed[1]["live"], true);
    let shown: serde_json::Value = serde_json::from_slice(
        &run(
            "perestroika-publisher",
            &[
                "--config",
                cfg,
                "snapshot",
                "show",
                "--json",
                &p.farm.customer,
                "9.0",
                "1",
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(shown["generation"], 1);
    assert_eq!(shown["live"], false);
    assert_eq!(
        shown["deb_packages"]["bookworm"],
        serde_json::json!(["main hashy 1.0 all"])
    );

    // Snapshots are paths and records: listing and showing them opens no signing key, so
    // they work where the key is not (here: a fingerprint no keyring holds).
    let customer = p.farm.customer.as_str();
    for args in [
        &["snapshot", "list", customer, "9.0"][..],
        &["snapshot", "show", customer, "9.0", "1"],
    ] {
        let out = std::process::Command::new(perestroika_tests::bin("perestroika-publisher"))
            .args(["--config", cfg])
            .args(args)
            .env(
                "PERESTROIKA_SIGNING__FINGERPRINT",
                "0123456789ABCDEF0123456789ABCDEF01234567",
            )
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{args:?}");
    }

    // Unknown names are errors, not empty lists.
    for (customer, version) in [("nosuch", "9.0"), (p.farm.customer.as_str(), "8.0")] {
        let out = run(
            "perestroika-publisher",
            &["--config", cfg, "snapshot", "list", customer, version],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("has no release {customer} {version}")),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_tampered_repository_is_rejected_by_apt() {
    let p = Published::new();
    let deb = make_deb(p.debs.path(), "tamper", "1.0", false, "a");
    assert!(p.include(&[&deb]).status.success());
    let index = p
        .tree()
        .join("deb/dists/bookworm/main/binary-amd64/Packages");
    let text = fs_err::read_to_string(&index).unwrap();
    // Break the hard link to the by-hash copy first, then change the index.
    fs_err::remove_file(&index).unwrap();
    fs_err::write(
        &index,
        text.replace("Priority: optional", "Priority: required"),
    )
    .unwrap();
    for ext in ["gz", "xz"] {
        let _ = fs_err::remove_file(index.with_extension(ext));
    }
    let apt = AptRoot::new(
        &p.tree().join("KEY.asc"),
        &format!("file:{}/deb bookworm main", p.tree().display()),
    );
    let update = apt.apt_get(&["update", "-q", "-o", "Acquire::By-Hash=no"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&update.stdout),
        String::from_utf8_lossy(&update.stderr)
    );
    assert!(
        !update.status.success() && said.contains("Hash Sum mismatch"),
        "apt-get update did not refuse the tampered index for its hash:\n{said}"
    );
    let versions = apt.versions("tamper");
    assert!(
        versions.is_empty(),
        "apt accepted a tampered index: {versions:?}"
    );

    // And a key the client does not trust is rejected outright.
    let stranger = OperatorKey::new();
    let p2 = Published::new();
    let deb2 = make_deb(p2.debs.path(), "stranger", "1.0", false, "a");
    assert!(p2.include(&[&deb2]).status.success());
    let apt = AptRoot::new(
        &stranger.public_file(),
        &format!("file:{}/deb bookworm main", p2.tree().display()),
    );
    let update = apt.apt_get(&["update", "-q"]);
    let err = String::from_utf8_lossy(&update.stderr);
    assert!(
        err.contains("NO_PUBKEY") || err.contains("not signed"),
        "{err}"
    );
    assert!(apt.versions("stranger").is_empty());
}

#[test]
fn a_client_updating_in_a_loop_never_fails_during_50_publishes() {
    let p = Published::new();
    let first = make_deb(p.debs.path(), "loop0", "1.0", false, "a");
    assert!(p.include(&[&first]).status.success());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tree = p.tree();
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let apt = AptRoot::new(
                &tree.join("KEY.asc"),
                &format!("file:{}/deb bookworm main", tree.display()),
            );
            let mut updates = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = apt.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"]);
                assert!(
                    out.status.success(),
                    "apt-get update failed during publishing:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                updates += 1;
            }
            updates
        })
    };
    for i in 1..=50 {
        let deb = make_deb(p.debs.path(), &format!("loop{i}"), "1.0", false, "a");
        let out = p.include(&[&deb]);
        assert_success(&out);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let updates = client.join().expect("the client never failed");
    assert!(updates >= 5, "the client ran only {updates} updates");
}

#[test]
fn a_publisher_killed_mid_publish_leaves_a_valid_repository_and_the_redo_completes_it() {
    let p = Published::new();
    let first = make_deb(p.debs.path(), "before", "1.0", false, "a");
    assert!(p.include(&[&first]).status.success());
    for (i, point) in [
        "included",
        "exported",
        "generation-written",
        "generation-renamed",
        "switched",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("crash{i}");
        let deb = make_deb(p.debs.path(), &name, "1.0", false, "a");
        let out = p
            .farm
            .include("bookworm", &[], &[&deb])
            .env("PERESTROIKA_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "no crash at {point}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("crash point {point}")));
        // Whatever the point, a client sees a complete, correctly signed repository.
        let apt = p.apt();
        apt.update();
        assert_eq!(apt.versions("before"), ["1.0"], "after a crash at {point}");
        // Doing the publish again completes it.
        let redo = p.include(&[&deb]);
        assert!(
            redo.status.success(),
            "redo after {point}: {}",
            String::from_utf8_lossy(&redo.stderr)
        );
        let apt = p.apt();
        apt.update();
        assert_eq!(apt.versions(&name), ["1.0"], "after the redo of {point}");
    }
}

/// During a key rotation both keys sign: a client trusting only the old key and one trusting
/// only the new key both accept the repository.
#[test]
fn during_a_key_rotation_clients_of_either_key_accept_the_repository() {
    let (old, new, farm) = farm_signing_with_two_keys();
    let debs = tempfile::tempdir().unwrap();
    let deb = make_deb(debs.path(), "rotated", "1.0", false, "a");
    let out = farm.include("bookworm", &[], &[&deb]).output().unwrap();
    assert_success(&out);
    let tree = farm.release_tree();
    for key in [&old, &new] {
        let apt = AptRoot::new(
            &key.public_file(),
            &format!("file:{}/deb bookworm main", tree.display()),
        );
        apt.update();
        assert_eq!(
            apt.versions("rotated"),
            ["1.0"],
            "a client trusting only {}",
            key.fingerprint
        );
    }
}

/// A farm (no broker) whose publisher signs with two keys, both imported.
fn farm_signing_with_two_keys() -> (OperatorKey, OperatorKey, Farm) {
    let old = OperatorKey::new();
    let new = OperatorKey::new();
    let farm = signed_farm(NO_BROKER, &[&old, &new], "", BOOKWORM_RELEASE);
    (old, new, farm)
}

/// A publish re-signs only the suites it changed: the others keep the signatures of the
/// previous generation (the same files, linked). Once another key signs too, every suite is
/// signed anew, and a client trusting only the new key accepts an untouched suite.
#[test]
fn unchanged_suites_keep_their_signatures_until_the_keys_change() {
    use std::os::unix::fs::MetadataExt;
    let (_old, new, farm) = farm_signing_with_two_keys();
    let both = fs_err::read_to_string(&farm.path).unwrap();
    let also = format!("also_sign_with = [\"{}\"]", new.fingerprint);
    assert!(both.contains(&also), "{both}");
    fs_err::write(&farm.path, both.replace(&also, "also_sign_with = []")).unwrap();

    let debs = tempfile::tempdir().unwrap();
    let generation = |name: &str| {
        let deb = make_deb(debs.path(), name, "1.0", false, "a");
        farm.publish("bookworm", &[deb]);
        fs_err::canonicalize(farm.release_tree()).unwrap()
    };
    let signature = |gen: &Path, suite: &str| gen.join("deb/dists").join(suite).join("InRelease");
    let inode = |path: PathBuf| fs_err::metadata(path).unwrap().ino();

    let first = generation("first");
    let second = generation("second");
    assert_ne!(first, second);
    assert_eq!(
        inode(signature(&first, "bookworm-updates")),
        inode(signature(&second, "bookworm-updates")),
        "an unchanged suite keeps its signature"
    );
    assert_ne!(
        fs_err::read(signature(&first, "bookworm")).unwrap(),
        fs_err::read(signature(&second, "bookworm")).unwrap(),
        "the changed suite is signed anew"
    );

    fs_err::write(&farm.path, both).unwrap();
    let third = generation("third");
    assert_ne!(
        inode(signature(&second, "bookworm-updates")),
        inode(signature(&third, "bookworm-updates")),
        "new keys sign every suite"
    );
    let apt = AptRoot::new(
        &new.public_file(),
        &format!("file:{}/deb bookworm-updates main", third.display()),
    );
    apt.update();
}

/// One topic on two releases' branches: `include --topic` of release 9.0 (bookworm) and of
/// release 10.0 (trixie) run at once, round after round, into the one topic tree. Every
/// publish succeeds, the generations are 1..=N with none lost (generation n holds exactly n
/// packages, each earlier generation's among them), and every generation's `InRelease` and
/// `Release.gpg` verify with gpgv against its `KEY.asc`; apt reads the live tree.
#[test]
fn one_topic_published_for_two_releases_at_once_keeps_every_package_and_generation() {
    const ROUNDS: usize = 12;
    let key = OperatorKey::new();
    let farm = signed_farm(
        NO_BROKER,
        &[&key],
        "",
        r#"{ name = "9.0", deb = ["bookworm"] }, { name = "10.0", deb = ["trixie"] }"#,
    );
    let debs = tempfile::tempdir().unwrap();
    let include = |version: &str, distro: &str, deb: &Path| {
        let mut cmd = std::process::Command::new(perestroika_tests::bin("perestroika-publisher"));
        cmd.arg("--config")
            .arg(&farm.path)
            .args([
                "include",
                "--customer",
                &farm.customer,
                "--version",
                version,
            ])
            .args(["--distro", distro, "--topic", "shared-fix"])
            .arg(deb)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let mut generations = Vec::new();
    for round in 0..ROUNDS {
        let old = make_deb(debs.path(), &format!("old{round}"), "1.0", false, "9.0");
        let new = make_deb(debs.path(), &format!("new{round}"), "1.0", false, "10.0");
        let children = [
            include("9.0", "bookworm", &old),
            include("10.0", "trixie", &new),
        ];
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = stdout(&out);
            let n: u64 = text
                .split("generation ")
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no generation in {text:?}"));
            generations.push(n);
        }
    }
    generations.sort_unstable();
    let expected: Vec<u64> = (1..=2 * ROUNDS as u64).collect();
    assert_eq!(
        generations, expected,
        "each publish made its own generation"
    );

    let root = farm.customer_root().join("review");
    let mut on_disk: Vec<String> = fs_err::read_dir(root.join(".shared-fix.gen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
    let names: Vec<String> = expected.iter().map(u64::to_string).collect();
    assert_eq!(on_disk, names, "no generation lost, none left unfinished");

    let keyring = debs.path().join("key.gpg");
    let mut previous = Vec::new();
    for n in &expected {
        let generation = root.join(".shared-fix.gen").join(n.to_string());
        let dearmored = std::process::Command::new("gpg")
            .args(["--batch", "--yes", "--dearmor", "-o"])
            .arg(&keyring)
            .arg(generation.join("KEY.asc"))
            .status()
            .unwrap();
        assert!(dearmored.success());
        let mut packages = Vec::new();
        for suite in ["bookworm", "trixie"] {
            let dir = generation.join("deb/dists").join(suite);
            for args in [vec!["InRelease"], vec!["Release.gpg", "Release"]] {
                let out = std::process::Command::new("gpgv")
                    .arg("--keyring")
                    .arg(&keyring)
                    .args(&args)
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "generation {n} {suite} {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let index = fs_err::read_to_string(dir.join("main/binary-amd64/Packages")).unwrap();
            packages.extend(
                index
                    .lines()
                    .filter_map(|l| l.strip_prefix("Package: "))
                    .map(|p| format!("{suite} {p}")),
            );
        }
        packages.sort();
        assert_eq!(packages.len() as u64, *n, "generation {n}: {packages:?}");
        assert!(
            previous.iter().all(|p| packages.contains(p)),
            "generation {n} lost a package of generation {}: {packages:?}",
            n - 1
        );
        previous = packages;
    }

    let live = root.join("shared-fix");
    for (suite, prefix) in [("bookworm", "old"), ("trixie", "new")] {
        let apt = AptRoot::new(
            &live.join("KEY.asc"),
            &format!("file:{}/deb {suite} main", live.display()),
        );
        apt.update();
        for round in 0..ROUNDS {
            assert_eq!(
                apt.versions(&format!("{prefix}{round}")),
                ["1.0"],
                "{suite}"
            );
        }
    }
}
