//! `perestroika-queue rebuild-release`: a release snapshot rebuilt from its own source packages
//! with nothing but the snapshot and the base image (real Docker, real gpg, real reprepro).

use std::path::Path;

use perestroika_tests::apt::{signed_farm, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::debian::{dh_package, package_cache, GitRepo, GreetRepos};
use perestroika_tests::{run, Farm, NO_BROKER};

use crate::worker::build_for;

fn release(key: &OperatorKey) -> Farm {
    signed_farm(
        NO_BROKER,
        &[key],
        &format!("[build]\npackage_cache = \"{}\"\n", package_cache()),
        BOOKWORM_RELEASE,
    )
}

/// Builds with the worker (against `release`'s tree when given) and returns the .dsc and the
/// binary packages made.
fn build(args: &[&str], out: &Path, release: Option<&Farm>) -> Vec<std::path::PathBuf> {
    let tree = release.map(|f| f.release_tree().display().to_string());
    let mut all = args.to_vec();
    if let Some(tree) = &tree {
        all.extend(["--release", tree]);
    }
    let (output, result) = build_for("bookworm", &all, out);
    assert!(
        output.status.success(),
        "{result}\n{}",
        fs_err::read_to_string(out.join("build.log")).unwrap_or_default()
    );
    result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .filter(|n| n.ends_with(".dsc") || n.ends_with(".deb"))
        .map(|n| out.join(n))
        .collect()
}

fn rebuild_release(farm: &Farm) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = run(
        "perestroika-queue",
        &[
            "--config",
            farm.path.to_str().unwrap(),
            "--json",
            "rebuild-release",
            &farm.customer,
            "9.0",
        ],
    );
    let reports = perestroika_tests::rebuild_reports(&out);
    (out, reports)
}

/// `rebuild-release` of the farm's live snapshot succeeds and reports exactly `sources`, each
/// rebuilt identically.
fn assert_rebuilt_identically(farm: &Farm, sources: &[&str]) {
    let (out, reports) = rebuild_release(farm);
    perestroika_tests::assert_rebuilt_identically(&out, &reports, sources);
}

/// greet (C), greet-user (build-depends on greet) and greet-more (on greet-user), each built
/// against the release and published; the release's snapshot rebuilds all three from its own
/// source packages, bit-identical. A release holding greet-user without greet cannot rebuild
/// it, and says greet is missing.
#[test]
fn a_release_of_three_interdependent_packages_rebuilds_identically() {
    let key = OperatorKey::new();
    let farm = release(&key);
    let work = farm.dir.path();
    let args = GreetRepos::init(work, "Hello, rebuilt").build_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let greet = build(&args, &work.join("out-greet"), None);
    farm.publish("bookworm", &greet);
    let mut user_files = Vec::new();
    for (name, depends, step) in [
        ("greet-user", "greet", "greet"),
        (
            "greet-more",
            "greet-user",
            "cat /usr/share/greet-user/output",
        ),
    ] {
        let mut repo = GitRepo::init(&work.join(name));
        let commit = repo.commit(&dh_package(name, depends, step), name);
        let url = repo.url();
        let made = build(
            &["--git", &url, "--commit", &commit],
            &work.join(format!("out-{name}")),
            Some(&farm),
        );
        farm.publish("bookworm", &made);
        if name == "greet-user" {
            user_files = made;
        }
    }

    assert_rebuilt_identically(&farm, &["greet", "greet-more", "greet-user"]);

    // greet-user alone in another release: its build dependency is missing, by name.
    let lacking = release(&key);
    lacking.publish("bookworm", &user_files);
    let (out, reports) = rebuild_release(&lacking);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["result"], "failed", "{:#}", reports[0]);
    assert_eq!(reports[0]["step"], "build-deps");
    assert_eq!(
        reports[0]["missing"],
        serde_json::json!(["greet"]),
        "{:#}",
        reports[0]
    );
}

/// The rpm side: greet (arch-specific) and greet-motd (noarch, build-requires greet from the
/// release), built from git, published and signed; the snapshot's source rpms rebuild into
/// packages with the same header digests (the same headers and payloads; only the publisher's
/// signature is not made again).
#[test]
fn an_rpm_release_rebuilds_identically() {
    use perestroika_tests::debian::{greet_motd_spec, RPM_DISTRO};

    let key = OperatorKey::new();
    let farm = signed_farm(
        NO_BROKER,
        &[&key],
        &format!("[build]\npackage_cache = \"{}\"\n", package_cache()),
        &format!(r#"{{ name = "9.0", rpm = ["{RPM_DISTRO}"] }}"#),
    );
    let work = farm.dir.path();
    let rpms = |out: &Path, result: &serde_json::Value| -> Vec<std::path::PathBuf> {
        result["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| out.join(a["name"].as_str().unwrap()))
            .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
            .collect()
    };
    let args = GreetRepos::init(work, "Hello, rebuilt rpm").build_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = work.join("out-greet");
    let (output, result) = build_for(RPM_DISTRO, &args, &out);
    assert!(output.status.success(), "{result}");
    farm.publish(RPM_DISTRO, &rpms(&out, &result));

    let mut motd = GitRepo::init(&work.join("greet-motd"));
    let commit = motd.commit(&greet_motd_spec(), "motd");
    let (url, tree) = (motd.url(), farm.release_tree().display().to_string());
    let out = work.join("out-motd");
    let (output, result) = build_for(
        RPM_DISTRO,
        &["--git", &url, "--commit", &commit, "--release", &tree],
        &out,
    );
    assert!(output.status.success(), "{result}");
    farm.publish(RPM_DISTRO, &rpms(&out, &result));

    assert_rebuilt_identically(&farm, &["greet", "greet-motd"]);
}
