//! The publisher's rpm path, judged by rpm -K and dnf with gpgcheck and repo_gpgcheck on.

use std::path::Path;
use std::process::Command;

use perestroika_tests::apt::{dnf_install, dnf_installs, make_rpm, signed_farm, OperatorKey};
use perestroika_tests::{assert_success, sh, NO_BROKER};

#[test]
fn rpms_are_signed_indexed_and_installable_with_dnf() {
    let key = OperatorKey::new();
    let farm = signed_farm(NO_BROKER, &[&key], "", r#"{ name = "9.0", rpm = ["el9"] }"#);
    let work = tempfile::tempdir().unwrap();
    let (binary, source) = make_rpm(work.path(), "rpmtest", "1.0", "a");
    let include = |files: &[&Path]| farm.include("el9", &[], files).output().unwrap();
    let out = include(&[&binary, &source]);
    assert_success(&out);
    let tree = farm.release_tree();
    let repo = tree.join("rpm/el9/x86_64");
    assert!(repo.join("repodata/repomd.xml.asc").is_file());
    assert!(tree.join("rpm/el9/source/repodata/repomd.xml").is_file());
    // Its shape pinned (rpm and dnf judge the repository below).
    let repomd = fs_err::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    crate::pinned::pin!("rpm_repomd", &repomd);

    // rpm -K passes with the published key imported into an rpm database.
    let db = tempfile::tempdir().unwrap();
    let dbpath = format!("--dbpath={}", db.path().display());
    sh(Command::new("rpm")
        .arg(&dbpath)
        .arg("--import")
        .arg(tree.join("KEY.asc")));
    let published = repo.join("Packages/rpmtest-1.0-1.noarch.rpm");
    let check = Command::new("rpm")
        .arg(&dbpath)
        .arg("-K")
        .arg(&published)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("signatures OK"),
        "{said}"
    );

    // dnf installs it with both package and repository signatures checked.
    let root = dnf_installs(&format!("file://{}", tree.display()), "el9", "rpmtest");
    assert!(root.path().join("usr/share/rpmtest/marker").is_file());

    // The same rpm again changes nothing; another rpm under the same name is refused.
    let again = include(&[&binary]);
    assert!(
        String::from_utf8_lossy(&again.stdout).starts_with("unchanged:"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let other = tempfile::tempdir().unwrap();
    let (changed, _) = make_rpm(other.path(), "rpmtest", "1.0", "b");
    let refused = include(&[&changed]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("already published with different content"));

    // A repository whose metadata was altered after signing is rejected by dnf.
    let repomd = repo.join("repodata/repomd.xml");
    let text = fs_err::read_to_string(&repomd).unwrap();
    fs_err::remove_file(&repomd).unwrap();
    fs_err::write(&repomd, text.replace("<revision>", "<revision>1")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = dnf_install(
        &format!("file://{}", tree.display()),
        "el9",
        root.path(),
        "rpmtest",
    );
    assert!(!out.status.success(), "dnf accepted a tampered repomd.xml");
}

/// A release with a deb and an rpm distro whose first publish is an rpm: it is published (it
/// was refused for want of the deb side's indexes), and the generation holds a signed, empty
/// deb side apt reads; a deb published afterwards joins it.
#[test]
fn an_rpm_published_first_into_a_release_with_a_deb_distro_leaves_both_sides_valid() {
    use perestroika_tests::apt::{make_deb, AptRoot};
    let key = OperatorKey::new();
    let farm = signed_farm(
        NO_BROKER,
        &[&key],
        "",
        r#"{ name = "9.0", deb = ["bookworm"], rpm = ["el9"] }"#,
    );
    let work = tempfile::tempdir().unwrap();
    let (binary, _) = make_rpm(work.path(), "rpmfirst", "1.0", "a");
    assert_success(&farm.include("el9", &[], &[&binary]).output().unwrap());
    let tree = farm.release_tree();
    let apt = AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", tree.display()),
    );
    apt.update();
    assert!(apt.versions("debafter").is_empty());
    dnf_installs(&format!("file://{}", tree.display()), "el9", "rpmfirst");

    let deb = make_deb(work.path(), "debafter", "1.0", false, "d");
    assert_success(&farm.include("bookworm", &[], &[&deb]).output().unwrap());
    apt.update();
    assert_eq!(apt.versions("debafter"), ["1.0"]);
}
