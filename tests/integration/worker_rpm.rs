//! The rpm worker: real Docker, real rpmbuild and dnf (Debian's, in an rpm build image made
//! from a Debian root), the release's repository made by the real publisher.

use std::path::{Path, PathBuf};
use std::process::Command;

use perestroika_tests::apt::{dnf_installs, make_rpm, signed_farm, OperatorKey};
use perestroika_tests::debian::{greet_motd_spec, GitRepo, GreetRepos, RPM_DISTRO};
use perestroika_tests::{assert_success, run, sh, unique, Farm, NO_BROKER};

use crate::worker::{artifact_names, build_for, failure};

fn build(args: &[&str], out: &Path) -> (std::process::Output, serde_json::Value) {
    build_for(RPM_DISTRO, args, out)
}

fn succeeded(result: &serde_json::Value, out: &Path) {
    assert_eq!(
        result["outcome"]["status"],
        "succeeded",
        "{result}\n{}",
        fs_err::read_to_string(out.join("build.log")).unwrap_or_default()
    );
}

/// `rpm -qp --dump` of a package: every file with its size, mtime, digest, mode and owner.
fn dump(rpm: &Path) -> String {
    sh(Command::new("rpm").arg("-qp").arg("--dump").arg(rpm))
}

/// The files a build made, by name.
fn file(out: &Path, name: &str) -> PathBuf {
    let path = out.join(name);
    assert!(path.is_file(), "{name} is missing in {}", out.display());
    path
}

/// A release of the tests' rpm distro with its own signing key.
fn rpm_release(key: &OperatorKey) -> Farm {
    signed_farm(
        NO_BROKER,
        &[key],
        "",
        &format!(r#"{{ name = "9.0", rpm = ["{RPM_DISTRO}"] }}"#),
    )
}

/// greet (an arch-specific C program, code and spec in two repositories) builds reproducibly;
/// greet-motd (noarch) build-requires it from the release's signed repository and fails
/// clearly without it; both install with dnf from the published repository, signatures
/// checked; and greet's source rpm rebuilds to the same files.
#[test]
fn rpm_packages_build_against_the_release_and_install_with_dnf() {
    let key = OperatorKey::new();
    let farm = rpm_release(&key);
    let work = farm.dir.path();
    let git_args = GreetRepos::init(work, "Hello from the rpm farm").build_args();
    let git_args: Vec<&str> = git_args.iter().map(String::as_str).collect();

    let first = work.join("first");
    let (_, result) = build(&git_args, &first);
    succeeded(&result, &first);
    // Version from the spec, Release from the commits: one code commit, one packaging commit.
    assert_eq!(result["package_version"], "1.0-git1.p1.0");
    assert_eq!(
        artifact_names(&result),
        [
            "greet-1.0-git1.p1.0.src.rpm",
            "greet-1.0-git1.p1.0.x86_64.rpm",
            "build-root.list"
        ]
    );
    assert_eq!(result["log"]["name"], "build.log");
    let binary = file(&first, "greet-1.0-git1.p1.0.x86_64.rpm");
    let source = file(&first, "greet-1.0-git1.p1.0.src.rpm");
    let log = fs_err::read_to_string(first.join("build.log")).unwrap();
    assert!(
        log.contains("no network; building as user builder"),
        "{log}"
    );
    assert!(
        log.contains("making greet-1.0.tar.gz from the code"),
        "{log}"
    );
    let root_list = fs_err::read_to_string(first.join("build-root.list")).unwrap();
    assert!(root_list.contains("\ngcc "), "{root_list}");

    // The same commits again: the same payload, byte for byte the same packages.
    let second = work.join("second");
    let (_, again) = build(&git_args, &second);
    succeeded(&again, &second);
    let binary2 = file(&second, "greet-1.0-git1.p1.0.x86_64.rpm");
    assert_eq!(dump(&binary), dump(&binary2));
    assert!(
        dump(&binary).starts_with("/usr/bin/greet "),
        "{}",
        dump(&binary)
    );
    assert_eq!(
        fs_err::read(&binary).unwrap(),
        fs_err::read(&binary2).unwrap(),
        "two builds of the same commits differ"
    );
    assert_eq!(
        fs_err::read(&source).unwrap(),
        fs_err::read(file(&second, "greet-1.0-git1.p1.0.src.rpm")).unwrap()
    );

    // The source rpm builds on its own, with its own version, into the same package.
    let from_srpm = work.join("from-srpm");
    let (_, rebuilt) = build(&[source.to_str().unwrap()], &from_srpm);
    succeeded(&rebuilt, &from_srpm);
    assert_eq!(rebuilt["package_version"], "1.0-git1.p1.0");
    let names = artifact_names(&rebuilt);
    assert!(
        names.contains(&"greet-1.0-git1.p1.0.src.rpm".to_owned()),
        "{names:?}"
    );
    // Its SOURCE_DATE_EPOCH is the source rpm's recorded build time: the same package.
    assert_eq!(
        fs_err::read(&binary).unwrap(),
        fs_err::read(file(&from_srpm, "greet-1.0-git1.p1.0.x86_64.rpm")).unwrap(),
        "the source rpm's rebuild differs from the git build"
    );

    // greet-motd needs greet at build time: without the release it cannot be built ...
    let mut motd = GitRepo::init(&work.join("greet-motd"));
    let motd_commit = motd.commit(&greet_motd_spec(), "motd");
    let motd_url = motd.url();
    let motd_args = ["--git", &motd_url, "--commit", &motd_commit];
    let lonely = work.join("motd-alone");
    let (output, result) = build(&motd_args, &lonely);
    assert_eq!(output.status.code(), Some(1));
    let (step, reason) = failure(&result);
    assert_eq!(step, "build-deps", "{reason}");
    assert!(
        reason.contains("greet"),
        "the reason does not name greet: {reason}"
    );

    // ... and with greet published in the release, it builds against it.
    farm.publish(RPM_DISTRO, &[&binary, &source]);
    let tree = farm.release_tree();
    let motd_out = work.join("motd");
    let mut with_release = motd_args.to_vec();
    let tree_arg = tree.to_str().unwrap();
    with_release.extend(["--release", tree_arg]);
    let (_, result) = build(&with_release, &motd_out);
    succeeded(&result, &motd_out);
    assert_eq!(result["package_version"], "1.0-p1.0");
    let root_list = fs_err::read_to_string(motd_out.join("build-root.list")).unwrap();
    assert!(
        root_list.contains("greet 1.0-git1.p1.0 x86_64"),
        "greet from the release is not in the build root:\n{root_list}"
    );
    let motd_rpm = file(&motd_out, "greet-motd-1.0-p1.0.noarch.rpm");
    farm.publish(
        RPM_DISTRO,
        &[&motd_rpm, &file(&motd_out, "greet-motd-1.0-p1.0.src.rpm")],
    );

    // Dynamic build requirements: %generate_buildrequires names greet, dnf installs it.
    let mut dynamic = GitRepo::init(&work.join("greet-dynamic"));
    let spec =
        "Name: greet-dynamic\nVersion: 1.0\nRelease: %autorelease\nSummary: s\nLicense: MIT\n\
                BuildArch: noarch\n\n%description\nBuild requirements found at build time.\n\n\
                %generate_buildrequires\necho greet\n\n%build\ngreet > said\n\n%install\n\
                install -D -m 0644 said %{buildroot}%{_datadir}/greet-dynamic/said\n\n\
                %files\n%{_datadir}/greet-dynamic/said\n";
    let dynamic_commit = dynamic.commit(&[("greet-dynamic.spec".into(), spec.into())], "dynamic");
    let dynamic_url = dynamic.url();
    let dynamic_out = work.join("dynamic");
    let (_, result) = build(
        &[
            "--git",
            &dynamic_url,
            "--commit",
            &dynamic_commit,
            "--release",
            tree_arg,
        ],
        &dynamic_out,
    );
    succeeded(&result, &dynamic_out);
    let log = fs_err::read_to_string(dynamic_out.join("build.log")).unwrap();
    assert!(
        log.contains("greet-dynamic-1.0-p1.0.buildreqs.nosrc.rpm"),
        "dnf did not install from the dynamic requirements:\n{log}"
    );

    // dnf installs both from the published repository, signatures checked.
    let root = dnf_installs(
        &format!("file://{}", tree.display()),
        RPM_DISTRO,
        "greet-motd",
    );
    assert_eq!(
        fs_err::read_to_string(root.path().join("usr/share/greet-motd/motd")).unwrap(),
        "Hello from the rpm farm\n"
    );
    let greeted = sh(&mut Command::new(root.path().join("usr/bin/greet")));
    assert_eq!(greeted, "Hello from the rpm farm\n");
}

/// A spec that does not parse, and one that ignores the farm's release, fail at step `spec`
/// with rpm's own words; neither leaves a container behind (checked by `build_for`).
#[test]
fn broken_specs_are_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let spec = |name: &str, release: &str, extra: &str| {
        vec![(
            format!("{name}.spec"),
            format!(
                "Name: {name}\nVersion: 1.0\nRelease: {release}\nSummary: s\nLicense: MIT\n\
                 BuildArch: noarch\n{extra}\n%description\nd\n\n%files\n"
            ),
        )]
    };
    let cases = [
        (
            "typo",
            spec("typo", "%{perestroika_release}", "Sumary: misspelt\n"),
            "Unknown tag",
        ),
        (
            "own-release",
            spec("own-release", "7", ""),
            "%{perestroika_release}",
        ),
    ];
    for (name, files, expected) in cases {
        let mut repo = GitRepo::init(&work.path().join(name));
        let commit = repo.commit(&files, name);
        let out = work.path().join(format!("{name}-out"));
        let url = repo.url();
        let (output, result) = build(&["--git", &url, "--commit", &commit], &out);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let (step, reason) = failure(&result);
        assert_eq!(step, "spec", "{name}: {reason}");
        assert!(reason.contains(expected), "{name}: {reason}");
    }
}

/// mock's way: an rpm distro's root installed with `dnf --installroot` from the repositories
/// the configuration names (here a local repository made with createrepo_c), with the
/// builder user and a repository file for later build dependencies.
#[test]
fn an_rpm_root_is_bootstrapped_from_the_configured_repositories() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    fs_err::create_dir_all(&repo).unwrap();
    for name in ["rootbase", "roottool"] {
        let (binary, _) = make_rpm(work.path(), name, "2.0", name);
        fs_err::copy(&binary, repo.join(binary.file_name().unwrap())).unwrap();
    }
    sh(Command::new("createrepo_c").arg("-q").arg(&repo));
    let distro = unique("dnfroot");
    let farm = Farm::with_sections(
        NO_BROKER,
        "",
        &format!(
            "[rpm_roots.{distro}]\nreleasever = \"1\"\nrepos = [\"file://{}\"]\n\
             packages = [\"rootbase\", \"roottool\"]\n",
            repo.display()
        ),
    );
    let out = run(
        "perestroika-worker",
        &[
            "--config",
            farm.path.to_str().unwrap(),
            "image",
            "build",
            "--rpm",
            "--distro",
            &distro,
        ],
    );
    assert_success(&out);
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&run("perestroika-worker", &["image", "list", "--json"]).stdout)
            .unwrap();
    let image = listed
        .iter()
        .find(|i| i["distro"] == distro.as_str())
        .expect("the new image is listed")
        .clone();
    let tag = image["tag"].as_str().unwrap().to_owned();
    let removal = scopeguard(&tag);
    assert_eq!(image["family"], "rpm");
    assert_eq!(image["package_count"], 2);

    // Read the image's files without running anything of it.
    let container = sh(Command::new("docker").args(["create", &tag, "/bin/true"]))
        .trim()
        .to_owned();
    let copy_out = |path: &str| -> PathBuf {
        let dest = work.path().join("out").join(path.trim_start_matches('/'));
        fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
        sh(Command::new("docker")
            .arg("cp")
            .arg(format!("{container}:{path}"))
            .arg(&dest));
        dest
    };
    let marker = copy_out("/usr/share/rootbase/marker");
    let passwd = copy_out("/etc/passwd");
    let repo_file = copy_out("/etc/yum.repos.d/perestroika-base.repo");
    let db = copy_out("/var/lib/rpm");
    sh(Command::new("docker").args(["rm", &container]));
    assert_eq!(fs_err::read_to_string(marker).unwrap(), "rootbase\n");
    assert!(fs_err::read_to_string(passwd)
        .unwrap()
        .contains("builder:x:1000:1000:"));
    assert!(fs_err::read_to_string(repo_file)
        .unwrap()
        .contains(&format!("baseurl=file://{}\n", repo.display())));
    let installed = sh(Command::new("rpm")
        .arg(format!("--dbpath={}", db.display()))
        .args(["-qa", "--qf", "%{NAME}-%{VERSION}\\n"]));
    let mut installed: Vec<&str> = installed.lines().collect();
    installed.sort_unstable();
    assert_eq!(installed, ["rootbase-2.0", "roottool-2.0"]);
    drop(removal);
}

/// Removes the test's image when dropped (also when an assertion failed).
fn scopeguard(tag: &str) -> impl Drop + '_ {
    struct Remove<'a>(&'a str);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rmi", "-f", self.0]).output();
        }
    }
    Remove(tag)
}

/// A local directory (code with the spec in rpm/) builds with Release 0, below any build of
/// the farm.
#[test]
fn a_local_directory_builds_with_release_zero() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("greet");
    for (name, content) in perestroika_tests::debian::greet_code("Hello, local")
        .into_iter()
        .chain(perestroika_tests::debian::greet_packaging())
    {
        let path = dir.join(name);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, content).unwrap();
    }
    let out = work.path().join("out");
    let (_, result) = build(&[dir.to_str().unwrap()], &out);
    succeeded(&result, &out);
    assert_eq!(result["package_version"], "1.0-0");
    file(&out, "greet-1.0-0.x86_64.rpm");
    file(&out, "greet-1.0-0.src.rpm");
}
