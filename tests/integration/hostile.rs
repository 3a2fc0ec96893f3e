//! Attacks a hostile patch set or a hostile build dependency makes on the worker, performed
//! against the real worker, Docker and a signed release repository; each must fail, and the
//! next legitimate build must still work.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use perestroika_tests::debian::{dh_package, minimal_package, GitRepo};
use perestroika_tests::{sh, Farm, NO_BROKER};

use crate::worker::{artifact_names, build_in, failure};

/// `perestroika-worker --config <farm> build` of a git commit for bookworm into `out`, with the
/// farm's `[build]` settings; returns the output and result.json.
fn build_with(
    farm: &Farm,
    repo: &GitRepo,
    commit: &str,
    extra: &[&str],
    out: &Path,
) -> (Output, serde_json::Value) {
    let url = repo.url();
    let mut args = vec!["--git", &url, "--commit", commit];
    args.extend_from_slice(extra);
    build_in(Some(&farm.path), "bookworm", &args, out)
}

fn succeeded(output: &Output, result: &serde_json::Value, out: &Path) {
    assert!(
        output.status.success() && result["outcome"]["status"] == "succeeded",
        "{result}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        fs_err::read_to_string(out.join("build.log")).unwrap_or_default()
    );
}

/// Item 1: a patch set whose `debian/changelog` is a link climbing out of the tree, through a
/// directory the patch set ships whose name makes the link's target read as a changelog. The
/// worker writes its changelog entry as root on the host: it must refuse, and write nothing.
#[test]
fn a_changelog_linked_out_of_the_tree_writes_nothing_on_the_host() {
    let farm = Farm::new(NO_BROKER, "");
    let dir = farm.dir.path();
    let victim = dir.join("victim");
    fs_err::write(&victim, "original\n").unwrap();

    let mut repo = GitRepo::init(&dir.join("linky"));
    let files: Vec<(String, String)> = minimal_package("linky", "true")
        .into_iter()
        .filter(|(name, _)| name != "debian/changelog")
        .collect();
    // A directory named as a changelog's first line, and a link through it that climbs to /.
    let head = "\nlinky (1.0) unstable; urgency=medium\n";
    let shipped = repo.path.join("debian").join(head);
    fs_err::create_dir_all(&shipped).unwrap();
    fs_err::write(shipped.join("keep"), "").unwrap();
    let target = format!(
        "{head}/{}{}",
        "../".repeat(48),
        victim.display().to_string().trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&target, repo.path.join("debian/changelog")).unwrap();
    let commit = repo.commit(&files, "a changelog that is a link");

    let out = dir.join("out-link");
    let (output, result) = build_with(&farm, &repo, &commit, &[], &out);
    assert_eq!(output.status.code(), Some(1), "{result}");
    let (step, reason) = failure(&result);
    assert_eq!(step, "source", "{reason}");
    assert!(reason.contains("symbolic link"), "{reason}");
    assert_eq!(
        fs_err::read_to_string(&victim).unwrap(),
        "original\n",
        "the worker wrote through the link"
    );

    // The next legitimate build of the same repository works.
    fs_err::remove_file(repo.path.join("debian/changelog")).unwrap();
    fs_err::remove_dir_all(&shipped).unwrap();
    let commit = repo.commit(&minimal_package("linky", "true"), "a real changelog");
    let out = dir.join("out-fixed");
    let (output, result) = build_with(&farm, &repo, &commit, &[], &out);
    succeeded(&output, &result, &out);
    assert!(artifact_names(&result)
        .iter()
        .any(|n| n.starts_with("linky_") && n.ends_with(".deb")));
}

/// Item 2 and 5: a build that leaves a sparse terabyte as a result, eats memory and fills /tmp
/// is bounded (the worker reads back no more than build.max_result_bytes and lives on); a
/// build that leaves files named as tar options gets no option read from them.
#[test]
fn what_a_build_leaves_is_bounded_and_no_file_name_is_an_option() {
    let farm = Farm::with_sections(
        NO_BROKER,
        "",
        "[build]\nmemory = \"768m\"\ntmp_size = \"16m\"\nmax_result_bytes = 67108864\n",
    );
    let dir = farm.dir.path();
    let hog = "perl -e '$$x = \"a\" x (1536 << 20); print \"ALLOCATED\\n\"' \
               || echo ALLOCATION-STOPPED; \
               dd if=/dev/zero of=/tmp/fill bs=1M count=64 || echo TMP-FULL; rm -f /tmp/fill; \
               truncate -s 1T ../huge.deb";
    let mut repo = GitRepo::init(&dir.join("hog"));
    let commit = repo.commit(&minimal_package("hog", hog), "hog");
    let out = dir.join("out-hog");
    let (output, result) = build_with(&farm, &repo, &commit, &[], &out);
    assert_eq!(output.status.code(), Some(1), "{result}");
    let (step, reason) = failure(&result);
    assert_eq!(step, "limit", "{reason}");
    assert!(reason.contains("build.max_result_bytes"), "{reason}");
    let log = fs_err::read_to_string(out.join("build.log")).unwrap();
    assert!(log.contains("ALLOCATION-STOPPED"), "{log}");
    assert!(!log.contains("ALLOCATED\n"), "{log}");
    assert!(log.contains("TMP-FULL"), "{log}");
    // Nothing of the terabyte stayed behind.
    let left: u64 = fs_err::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(left < 64 << 20, "{left} bytes left in {}", out.display());

    // Names a build chose, which tar reads as options where they are passed as such: `-C..`
    // moves tar out of the results (every name after it is then looked up elsewhere).
    let step = "touch -- '../-C..' '../--checkpoint=1' \
                '../--checkpoint-action=exec=echo PWNED-BY-TAR | rev >&2'";
    let mut repo = GitRepo::init(&dir.join("names"));
    let commit = repo.commit(&minimal_package("names", step), "names");
    let out = dir.join("out-names");
    let (output, result) = build_with(&farm, &repo, &commit, &[], &out);
    succeeded(&output, &result, &out);
    let log = fs_err::read_to_string(out.join("build.log")).unwrap();
    assert!(
        artifact_names(&result)
            .iter()
            .any(|n| n.starts_with("names_") && n.ends_with("_all.deb")),
        "{result}"
    );
    assert!(
        !log.contains("RAT-YB-DENWP"),
        "tar ran the build's action:\n{log}"
    );
    assert!(artifact_names(&result).iter().all(|n| !n.starts_with('-')));
}

/// This host's address on Docker's default bridge (what a container on it reaches the host
/// by).
fn bridge_gateway() -> String {
    let out = sh(Command::new("ip").args(["-4", "-o", "addr", "show", "docker0"]));
    let cidr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("docker0 has no IPv4 address: {out}"));
    cidr.split('/').next().unwrap().to_owned()
}

/// A listener on all of this host's addresses, and its address as a container on Docker's
/// default bridge would reach it: what an attack tries to connect to.
fn listener_on_the_bridge() -> (TcpListener, String) {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!(
        "{}:{}",
        bridge_gateway(),
        listener.local_addr().unwrap().port()
    );
    (listener, target)
}

/// Asserts that nothing connected to `listener`.
fn nobody_came(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the build reached the host: {other:?}"),
    }
}

/// A binary package whose postinst runs `script` as root when a build installs it.
fn package_with_postinst(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
    let root = dir.join(format!("{name}-root"));
    fs_err::create_dir_all(root.join("DEBIAN")).unwrap();
    fs_err::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nSection: misc\nPriority: optional\nArchitecture: all\nMaintainer: Test <test@example.invalid>\n\
             Description: a build dependency that attacks\n It attacks the build farm.\n"
        ),
    )
    .unwrap();
    let postinst = root.join("DEBIAN/postinst");
    fs_err::write(&postinst, script).unwrap();
    fs_err::set_permissions(&postinst, std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = dir.join(format!("{name}_1.0_all.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&root)
        .arg(&deb));
    deb
}

/// Items 3 and 4: a build dependency in the release repository whose maintainer script, run as
/// root in the build root, (4) reaches for an address on the worker's host and (3) leaves the
/// chroot to replace the `setpriv` every later command of the build runs with CAP_SYS_ADMIN,
/// so as to remount the customer's trees read-write. Neither works; the build goes on.
#[test]
fn a_build_dependency_gets_neither_out_of_the_build_root_nor_onto_the_network() {
    let key = perestroika_tests::apt::OperatorKey::new();
    let farm = perestroika_tests::apt::signed_farm(
        NO_BROKER,
        &[&key],
        "",
        perestroika_tests::apt::BOOKWORM_RELEASE,
    );
    let dir = farm.dir.path();
    let (listener, target) = listener_on_the_bridge();
    let script = format!(
        r##"#!/bin/sh
echo "evil: postinst as uid $(id -u)"
perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], Timeout => 5);
  print $s ? "evil: REACHED $ARGV[0]\n" : "evil: no way to $ARGV[0]: $@\n"' {target}
perl -e 'mkdir "/.evil"; chroot "/.evil" or die "evil: chroot: $!\n"; chdir ".." for 1..64;
  chroot "." or die "evil: chroot out: $!\n"; exec "/bin/sh", "-c", $ARGV[0]' '
  test -d /newroot && echo "evil: out of the build root"
  if cp /usr/bin/setpriv /usr/bin/.setpriv.real 2>&1 &&
     printf "#!/bin/sh\nmount -o remount,bind,rw /newroot/srv/releases && touch /newroot/srv/releases/PWNED\nexec /usr/bin/.setpriv.real \"\$@\"\n" > /usr/bin/setpriv; then
    echo "evil: setpriv replaced"
  else
    echo "evil: could not replace setpriv"
  fi'
exit 0
"##
    );
    let evil = package_with_postinst(dir, "evil-dep", &script);
    farm.publish("bookworm", &[&evil]);

    let mut repo = GitRepo::init(&dir.join("victim"));
    let commit = repo.commit(
        &dh_package("victim", "evil-dep", "echo built"),
        "depends on evil-dep",
    );
    let out = dir.join("out");
    let tree = farm.release_tree();
    let (output, result) = build_with(
        &farm,
        &repo,
        &commit,
        &["--release", tree.to_str().unwrap()],
        &out,
    );
    succeeded(&output, &result, &out);
    let log = fs_err::read_to_string(out.join("build.log")).unwrap();
    assert!(log.contains("evil: postinst as uid 0"), "{log}");
    // 4: no connection reached the host; the dependencies still came through the cache.
    assert!(log.contains("evil: no way to"), "{log}");
    assert!(!log.contains("evil: REACHED"), "{log}");
    nobody_came(&listener);
    // 3: whether or not it left the chroot, it changed nothing later commands run.
    assert!(log.contains("evil: could not replace setpriv"), "{log}");
    let customer = tree.parent().unwrap();
    assert!(customer.is_dir());
    assert!(
        !customer.join("PWNED").exists(),
        "the build wrote into the customer's trees"
    );
    // The build's own package is fine and publishes.
    let deb = artifact_names(&result)
        .into_iter()
        .find(|n| n.starts_with("victim_") && n.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no victim package: {result}"));
    farm.publish("bookworm", &[out.join(deb)]);
}

/// Item 2, at the source: a patch set holding a file far larger than build.max_source_bytes
/// (a gigabyte of zeros is a few megabytes in git) is refused before it fills the worker's
/// memory or disk.
#[test]
fn sources_beyond_the_limit_are_refused_at_the_source_step() {
    let farm = Farm::with_sections(NO_BROKER, "", "[build]\nmax_source_bytes = 8388608\n");
    let dir = farm.dir.path();
    let mut repo = GitRepo::init(&dir.join("big"));
    sh(Command::new("truncate")
        .args(["-s", "1G"])
        .arg(repo.path.join("zeros")));
    let commit = repo.commit(&minimal_package("big", "true"), "a gigabyte of zeros");
    let out = dir.join("out");
    let (output, result) = build_with(&farm, &repo, &commit, &[], &out);
    assert_eq!(output.status.code(), Some(1), "{result}");
    let (step, reason) = failure(&result);
    assert_eq!(step, "source", "{reason}");
    assert!(reason.contains("build.max_source_bytes"), "{reason}");
}

/// Item 4 for rpm: a spec's shell expansions run when it is parsed, before any dependency is
/// installed; they reach no address (the container has no network at all then).
#[test]
fn a_spec_reaches_no_network_while_it_is_parsed() {
    let (listener, target) = listener_on_the_bridge();
    let spec = format!(
        "%global reach %(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(PeerAddr => \"{target}\", Timeout => 5) ? \"REACHED\" : \"unreachable\"')\n\
         Name: reach\nVersion: 1.0\nRelease: %autorelease\nSummary: reach %{{reach}}\nLicense: MIT\nBuildArch: noarch\n\n\
         %description\nTries the network when parsed: %{{reach}}.\n\n%build\necho parsed-as-%{{reach}}\n\n\
         %install\nmkdir -p %{{buildroot}}%{{_datadir}}/reach\necho %{{reach}} > %{{buildroot}}%{{_datadir}}/reach/result\n\n\
         %files\n%{{_datadir}}/reach/result\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut repo = GitRepo::init(&dir.path().join("reach"));
    let commit = repo.commit(&[("reach.spec".into(), spec)], "reach");
    let out = dir.path().join("out");
    let (output, result) = crate::worker::build_for(
        perestroika_tests::debian::RPM_DISTRO,
        &["--git", &repo.url(), "--commit", &commit],
        &out,
    );
    succeeded(&output, &result, &out);
    let log = fs_err::read_to_string(out.join("build.log")).unwrap();
    assert!(log.contains("parsed-as-unreachable"), "{log}");
    assert!(!log.contains("REACHED"), "{log}");
    nobody_came(&listener);
}
