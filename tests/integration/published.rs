//! Published state read over http from a mirror: a worker with no public tree on its host
//! takes build dependencies from `perestroika-mirror serve`, verified against a pinned key, and
//! refuses a tree that is not what that key signed.

use std::path::{Path, PathBuf};
use std::process::Output;

use perestroika_tests::apt::{signed_farm, OperatorKey};
use perestroika_tests::debian::{dh_package, package_cache, GitRepo, GreetRepos};
use perestroika_tests::{files_below, run, sh, Farm, NO_BROKER};

use crate::worker::build_for;

/// A copy of the public root (links kept), for a mirror that serves something else.
fn copy_root(farm: &Farm, name: &str) -> PathBuf {
    let copy = farm.dir.path().join(name);
    sh(std::process::Command::new("cp")
        .arg("-a")
        .arg(&farm.config.paths.public_root)
        .arg(&copy));
    copy
}

/// `perestroika-worker build` without any result expected (the build is refused first).
fn build_refused(args: &[&str], out: &Path) -> Output {
    let cache = package_cache();
    let mut all = vec!["build", "--quiet", "--distro", "bookworm"];
    all.extend(["--package-cache", &cache, "--out", out.to_str().unwrap()]);
    all.extend_from_slice(args);
    run("perestroika-worker", &all)
}

#[test]
fn a_worker_without_the_tree_builds_from_the_mirror_and_refuses_a_forged_one() {
    let key = OperatorKey::new();
    let farm = signed_farm(
        NO_BROKER,
        &[&key],
        "",
        r#"{ name = "9.0", deb = ["bookworm"] }"#,
    );
    let dir = farm.dir.path();
    // greet, published into the release: the only place greet-user's build dependency is.
    let args = GreetRepos::init(dir, "Hello from the mirror").build_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (output, _) = build_for("bookworm", &args, &dir.join("out-greet"));
    assert!(output.status.success());
    farm.publish(
        "bookworm",
        &[dir.join("out-greet/greet_1.0+git1-1+p1.0_amd64.deb")],
    );
    let pinned = key.public_file();
    let pinned = pinned.to_str().unwrap();

    let files = dh_package("greet-user", "greet", "greet");
    let mut user = GitRepo::init(&dir.join("greet-user"));
    let commit = user.commit(&files, "user");
    let url = user.url();
    let git = ["--git", url.as_str(), "--commit", commit.as_str()];

    // The real tree, served: the build takes greet from it, and the result installs.
    let (_mirror, base) = farm.serve_mirror(&farm.config.paths.public_root);
    let release_url = format!("{base}/{}/9.0", farm.customer);
    let mut with = git.to_vec();
    with.extend(["--release-url", &release_url, "--release-key", pinned]);
    let out = dir.join("out-user");
    let started = std::time::Instant::now();
    let (output, _) = build_for("bookworm", &with, &out);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        fs_err::read_to_string(out.join("build.log")).unwrap_or_default()
    );
    eprintln!(
        "greet-user built against the mirror in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let root = fs_err::read_to_string(out.join("build-root.list")).unwrap();
    assert!(root.contains("greet 1.0+git1-1+p1.0 amd64"), "{root}");
    let deb = fs_err::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("greet-user's deb");
    let contents = sh(std::process::Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(contents.contains("greet-user"), "{contents}");

    let tree = |root: &Path| root.join(&farm.customer).join("9.0");
    let refused = |root: &Path, name: &str, why: &str| {
        let (_daemon, base) = farm.serve_mirror(root);
        let release_url = format!("{base}/{}/9.0", farm.customer);
        let mut with = git.to_vec();
        with.extend(["--release-url", &release_url, "--release-key", pinned]);
        let out = dir.join(name);
        let output = build_refused(&with, &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("is refused, nothing was built"),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(why), "{name}: {stderr}");
        assert!(
            !out.join("result.json").exists(),
            "{name}: something was built"
        );
    };

    // Another key re-signed the tree and put itself in KEY.asc: refused, KEY.asc is not read.
    let rogue = OperatorKey::new();
    let other = copy_root(&farm, "resigned");
    let suite = tree(&other).join("deb/dists/bookworm");
    let release = suite.join("Release");
    let release_copy = dir.join("Release.rogue");
    fs_err::copy(&release, &release_copy).unwrap();
    rogue.sign(&release_copy, &suite.join("InRelease.new"), true);
    fs_err::rename(suite.join("InRelease.new"), suite.join("InRelease")).unwrap();
    let _ = fs_err::remove_file(tree(&other).join("KEY.asc"));
    fs_err::copy(rogue.public_file(), tree(&other).join("KEY.asc")).unwrap();
    refused(&other, "out-resigned", "bad signature, refused");

    // A tampered InRelease (one byte of the signed text): refused.
    let tampered = copy_root(&farm, "tampered-inrelease");
    let inrelease = tree(&tampered).join("deb/dists/bookworm/InRelease");
    let text = fs_err::read_to_string(&inrelease).unwrap();
    assert!(text.contains("Suite: bookworm"), "{text}");
    let _ = fs_err::remove_file(&inrelease);
    fs_err::write(
        &inrelease,
        text.replace("Suite: bookworm", "Suite: bookwors"),
    )
    .unwrap();
    refused(&tampered, "out-inrelease", "bad signature, refused");

    // A tampered Packages (by name and by hash): refused by its sha256.
    let packages = copy_root(&farm, "tampered-packages");
    let binary = tree(&packages).join("deb/dists/bookworm/main/binary-amd64");
    let mut changed = 0;
    for entry in files_below(&binary) {
        if entry.file_name().is_some_and(|n| n != "Release") {
            let mut bytes = fs_err::read(&entry).unwrap();
            bytes.extend_from_slice(b"\n");
            let _ = fs_err::remove_file(&entry);
            fs_err::write(&entry, bytes).unwrap();
            changed += 1;
        }
    }
    assert!(
        changed > 0,
        "no Packages index found below {}",
        binary.display()
    );
    // Longer than the signed size: cut off at that size and refused.
    refused(&packages, "out-packages", "binary-amd64");
}

/// The rpm side: greet-motd build-requires greet, which is only in the release's rpm
/// repository served by the mirror: the worker copies it through the signed `repomd.xml` and
/// builds; a `repomd.xml` changed by a byte is refused and nothing is built.
#[test]
fn an_rpm_build_takes_its_dependencies_from_the_mirror_and_refuses_a_forged_repomd() {
    use perestroika_tests::debian::{greet_motd_spec, RPM_DISTRO};

    let key = OperatorKey::new();
    let farm = signed_farm(
        NO_BROKER,
        &[&key],
        "",
        &format!(r#"{{ name = "9.0", rpm = ["{RPM_DISTRO}"] }}"#),
    );
    let dir = farm.dir.path();
    let args = GreetRepos::init(dir, "Hello, rpm from the mirror").build_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dir.join("out-greet");
    let (output, result) = build_for(RPM_DISTRO, &args, &out);
    assert!(output.status.success(), "{result}");
    let rpms: Vec<PathBuf> = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| out.join(a["name"].as_str().unwrap()))
        .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
        .collect();
    farm.publish(RPM_DISTRO, &rpms);

    let mut motd = GitRepo::init(&dir.join("greet-motd"));
    let commit = motd.commit(&greet_motd_spec(), "motd");
    let url = motd.url();
    let pinned = key.public_file();
    let pinned = pinned.to_str().unwrap();
    let (_mirror, base) = farm.serve_mirror(&farm.config.paths.public_root);
    let release_url = format!("{base}/{}/9.0", farm.customer);
    let with = [
        "--git",
        url.as_str(),
        "--commit",
        commit.as_str(),
        "--release-url",
        release_url.as_str(),
        "--release-key",
        pinned,
    ];
    let out = dir.join("out-motd");
    let (output, result) = build_for(RPM_DISTRO, &with, &out);
    assert!(
        output.status.success(),
        "{result}\n{}",
        fs_err::read_to_string(out.join("build.log")).unwrap_or_default()
    );
    let names: Vec<&str> = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("greet-motd-") && n.ends_with(".noarch.rpm")),
        "{names:?}"
    );

    // One byte of repomd.xml changed: its signature no longer holds.
    let forged = copy_root(&farm, "forged-repomd");
    let arch = std::env::consts::ARCH;
    let repomd = forged
        .join(&farm.customer)
        .join("9.0/rpm")
        .join(RPM_DISTRO)
        .join(arch)
        .join("repodata/repomd.xml");
    let text = fs_err::read_to_string(&repomd).unwrap();
    assert!(text.contains("<revision>"), "{text}");
    let _ = fs_err::remove_file(&repomd);
    fs_err::write(&repomd, text.replacen("<revision>", "<revision>9", 1)).unwrap();
    let (_forged, base) = farm.serve_mirror(&forged);
    let release_url = format!("{base}/{}/9.0", farm.customer);
    let mut with = with.to_vec();
    with[5] = release_url.as_str();
    let out = dir.join("out-forged");
    let mut all = vec!["--distro", RPM_DISTRO];
    all.extend_from_slice(&with);
    let output = build_refused_rpm(&all, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad signature, refused"), "{stderr}");
    assert!(!out.join("result.json").exists(), "something was built");
}

/// `perestroika-worker build` of any distro, expected to be refused before building.
fn build_refused_rpm(args: &[&str], out: &Path) -> Output {
    let cache = package_cache();
    let mut all = vec!["build", "--quiet"];
    all.extend(["--package-cache", &cache, "--out", out.to_str().unwrap()]);
    all.extend_from_slice(args);
    run("perestroika-worker", &all)
}
