//! The deb worker: real Docker, real Debian source packages, real dpkg.

use std::path::Path;
use std::process::{Command, Output};

use perestroika_tests::assert_success;
use perestroika_tests::debian::{
    base_image, containers_of_job, debian_source, greet_code, greet_packaging, minimal_package,
    package_cache, rpm_image, GitRepo, RPM_DISTRO,
};
use perestroika_tests::debian::{dh_package, GreetRepos};
use perestroika_tests::{run, NO_BROKER};

/// Runs `perestroika-worker build` for bookworm and returns its output and result.json.
fn build(args: &[&str], out: &Path) -> (Output, serde_json::Value) {
    build_for("bookworm", args, out)
}

/// Runs `perestroika-worker build` for `distro` (made if missing: the tests' rpm distro or a
/// Debian one), asserts the build's container is gone, and returns its output and result.json.
pub(crate) fn build_for(distro: &str, args: &[&str], out: &Path) -> (Output, serde_json::Value) {
    build_in(None, distro, args, out)
}

/// [`build_for`] with the `[build]` settings of the farm configuration `config`, if given.
pub(crate) fn build_in(
    config: Option<&Path>,
    distro: &str,
    args: &[&str],
    out: &Path,
) -> (Output, serde_json::Value) {
    if distro == RPM_DISTRO {
        rpm_image();
    } else {
        base_image(distro);
    }
    let cache = package_cache();
    let mut all = Vec::new();
    if let Some(config) = config {
        all.extend(["--config", config.to_str().unwrap()]);
    }
    all.extend([
        "build",
        "--quiet",
        "--distro",
        distro,
        "--package-cache",
        &cache,
    ]);
    let out_s = out.to_str().unwrap();
    all.extend(["--out", out_s]);
    all.extend_from_slice(args);
    let output = run("perestroika-worker", &all);
    let record = fs_err::read(out.join("result.json")).unwrap_or_else(|_| {
        panic!(
            "no result.json; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let result: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let job = result["job_id"].as_str().unwrap();
    assert!(
        containers_of_job(job).is_empty(),
        "the build container of {job} is still there"
    );
    (output, result)
}

pub(crate) fn artifact_names(result: &serde_json::Value) -> Vec<String> {
    result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn failure(result: &serde_json::Value) -> (String, String) {
    assert_eq!(result["outcome"]["status"], "failed", "{result}");
    (
        result["outcome"]["step"].as_str().unwrap().to_owned(),
        result["outcome"]["reason"].as_str().unwrap().to_owned(),
    )
}

/// Installs .debs from `dir` with dpkg in a fresh container without network, then runs `check`.
fn install_and_run(dir: &Path, debs: &[&str], check: &str) -> String {
    let image = base_image("bookworm");
    let mut script = String::from("set -e; dpkg -i");
    for d in debs {
        script.push_str(&format!(" /debs/{d}"));
    }
    script.push_str(&format!("; {check}"));
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/debs:ro", dir.display()))
        .args([&image, "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "installing {debs:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What `check` printed: the last line (dpkg talks first).
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn hello_from_bookworm_sources_builds_and_installs() {
    let dsc = debian_source("hello");
    let out = tempfile::tempdir().unwrap();
    let (output, result) = build(&[dsc.to_str().unwrap()], out.path());
    assert_success(&output);
    assert_eq!(result["outcome"]["status"], "succeeded");
    let names = artifact_names(&result);
    for wanted in [
        "hello_2.10-3_amd64.deb",
        "hello_2.10-3_amd64.buildinfo",
        "hello_2.10-3_amd64.changes",
        "hello_2.10-3.dsc",
        "build-root.list",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }
    // The record's checksums are the files' checksums.
    for a in result["artifacts"].as_array().unwrap() {
        let path = out.path().join(a["name"].as_str().unwrap());
        let sum = perestroika_protocol::messages::Artifact::of_file(&path)
            .unwrap()
            .sha256;
        assert_eq!(a["sha256"], sum.as_str());
    }
    // The build root is recorded: build dependencies with exact versions.
    let root = fs_err::read_to_string(out.path().join("build-root.list")).unwrap();
    assert!(root.lines().any(|l| l.starts_with("debhelper ")), "{root}");
    let buildinfo =
        fs_err::read_to_string(out.path().join("hello_2.10-3_amd64.buildinfo")).unwrap();
    assert!(buildinfo.contains("Installed-Build-Depends:"));
    assert!(result["image_id"].as_str().unwrap().starts_with("sha256:"));
    let record = fs_err::read_to_string(out.path().join("result.json")).unwrap();
    crate::pinned::pin!("worker_result_json", &record);
    let log = fs_err::read_to_string(out.path().join("build.log")).unwrap();
    assert!(
        log.contains("no network; building as user builder"),
        "{log}"
    );

    let said = install_and_run(out.path(), &["hello_2.10-3_amd64.deb"], "hello");
    assert_eq!(said.trim(), "Hello, world!");

    // Nothing of the build survived in the shared base roots the builds are overlaid on.
    let roots =
        std::path::Path::new(&std::env::var("HOME").unwrap()).join(".cache/perestroika/roots");
    for root in fs_err::read_dir(&roots).unwrap() {
        let status =
            fs_err::read_to_string(root.unwrap().path().join("var/lib/dpkg/status")).unwrap();
        assert!(
            !status.contains("Package: debhelper\n"),
            "a build dependency leaked into a base root"
        );
    }
}

#[test]
fn a_package_with_a_udeb_yields_the_udeb() {
    let dsc = debian_source("libtextwrap");
    let out = tempfile::tempdir().unwrap();
    let (output, result) = build(&[dsc.to_str().unwrap()], out.path());
    assert_success(&output);
    let names = artifact_names(&result);
    let udeb = names
        .iter()
        .find(|n| n.ends_with(".udeb"))
        .unwrap_or_else(|| panic!("no udeb in {names:?}"));
    assert!(udeb.starts_with("libtextwrap1-udeb_"));
    let changes = names.iter().find(|n| n.ends_with(".changes")).unwrap();
    let changes = fs_err::read_to_string(out.path().join(changes)).unwrap();
    assert!(changes.contains(udeb.as_str()), "{changes}");
    // dpkg sees a real udeb.
    let info = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(out.path().join(udeb))
        .arg("Package")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&info.stdout).trim(),
        "libtextwrap1-udeb"
    );
}

#[test]
fn own_package_from_two_git_repositories_is_versioned_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let mut code = GitRepo::init(&dir.path().join("code"));
    code.commit(&greet_code("Hello from code 1"), "first");
    let code_commit = code.commit(&greet_code("Hello from the farm"), "second");
    let mut packaging = GitRepo::init(&dir.path().join("packaging"));
    let pkg_commit = packaging.commit(&greet_packaging(), "packaging");

    let git_args = |rebuild: &'static str| {
        vec![
            "--git".to_owned(),
            code.url(),
            "--commit".into(),
            code_commit.clone(),
            "--packaging-git".into(),
            packaging.url(),
            "--packaging-commit".into(),
            pkg_commit.clone(),
            "--rebuild".into(),
            rebuild.into(),
        ]
    };
    let outs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut debs = Vec::new();
    for out in &outs {
        let args = git_args("0");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (output, result) = build(&args, out.path());
        assert_success(&output);
        // 2 code commits, 1 packaging commit, first build: the rule in docs/design.md.
        assert_eq!(result["package_version"], "1.0+git2-1+p1.0");
        let deb = out.path().join("greet_1.0+git2-1+p1.0_amd64.deb");
        debs.push(fs_err::read(&deb).unwrap());
        let names = artifact_names(&result);
        assert!(
            names.contains(&"greet_1.0+git2.orig.tar.gz".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"greet_1.0+git2-1+p1.0.dsc".to_owned()),
            "{names:?}"
        );
    }
    assert!(debs[0] == debs[1], "two builds of the same commits differ");
    let orig = |i: usize| fs_err::read(outs[i].path().join("greet_1.0+git2.orig.tar.gz")).unwrap();
    assert!(
        orig(0) == orig(1),
        "the generated upstream tarball is not reproducible"
    );

    let said = install_and_run(
        outs[0].path(),
        &["greet_1.0+git2-1+p1.0_amd64.deb"],
        "greet",
    );
    assert_eq!(said.trim(), "Hello from the farm");

    // The farm's entry is in the built package's changelog, naming the commits.
    let changes =
        fs_err::read_to_string(outs[0].path().join("greet_1.0+git2-1+p1.0_amd64.changes")).unwrap();
    assert!(changes.contains(&code_commit), "{changes}");
}

#[test]
fn a_build_that_needs_the_network_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = GitRepo::init(&dir.path().join("net"));
    let commit = repo.commit(
        &minimal_package("needsnet", "apt-get download hello"),
        "net",
    );
    let out = tempfile::tempdir().unwrap();
    let (output, result) = build(&["--git", &repo.url(), "--commit", &commit], out.path());
    assert_eq!(output.status.code(), Some(1));
    let (step, _) = failure(&result);
    assert_eq!(step, "dpkg-buildpackage");
    let log = fs_err::read_to_string(out.path().join("build.log")).unwrap();
    assert!(
        log.contains("Temporary failure resolving")
            || log.contains("unreachable")
            || log.contains("Could not resolve"),
        "the log does not show a network failure:\n{log}"
    );
}

#[test]
fn a_broken_control_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = GitRepo::init(&dir.path().join("broken"));
    let mut pkg = minimal_package("broken", "true");
    pkg.retain(|(n, _)| n != "debian/control");
    pkg.push((
        "debian/control".into(),
        "Source broken\nthis is not a control file\n".into(),
    ));
    let commit = repo.commit(&pkg, "broken");
    let out = tempfile::tempdir().unwrap();
    let (output, result) = build(&["--git", &repo.url(), "--commit", &commit], out.path());
    assert_eq!(output.status.code(), Some(1));
    let (step, reason) = failure(&result);
    assert_eq!(step, "control");
    assert!(reason.contains("debian/control"), "{reason}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("build failed at step control"), "{stderr}");
}

#[test]
fn a_build_past_its_timeout_is_stopped_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = GitRepo::init(&dir.path().join("slow"));
    let commit = repo.commit(&minimal_package("slow", "sleep 600"), "slow");
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (output, result) = build(
        &["--timeout", "8", "--git", &repo.url(), "--commit", &commit],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed().as_secs() < 120,
        "the timeout did not stop the build"
    );
    let (step, reason) = failure(&result);
    assert_eq!(step, "timeout");
    assert!(reason.contains("longer than 8 s"), "{reason}");
}

#[test]
fn a_source_tree_builds_with_the_version_of_its_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("treepkg");
    // The build sees the container's /proc and /dev inside its build root.
    let step = "test -r /proc/self/status && test -c /dev/null && test -d /dev/shm";
    for (name, content) in minimal_package("treepkg", step) {
        let path = tree.join(name);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, content).unwrap();
    }
    Command::new("chmod")
        .arg("+x")
        .arg(tree.join("debian/rules"))
        .status()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (output, result) = build(&[tree.to_str().unwrap()], out.path());
    assert_success(&output);
    assert_eq!(result["package_version"], "1.0");
    assert!(out.path().join("treepkg_1.0_all.deb").is_file());
    assert!(out.path().join("treepkg_1.0.tar.xz").is_file());
}

fn trixie_images() -> Vec<serde_json::Value> {
    let out = run("perestroika-worker", &["image", "list", "--json"]);
    assert!(out.status.success());
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter()
        .filter(|i| i["distro"] == "trixie")
        .collect()
}

/// trixie end to end: two images, refresh finds nothing new, prune keeps the newest, and a
/// package builds on it.
#[test]
fn trixie_images_are_built_refreshed_pruned_and_used() {
    for _ in 0..2 {
        let out = run(
            "perestroika-worker",
            &["image", "build", "--distro", "trixie"],
        );
        assert_success(&out);
    }
    assert!(trixie_images().len() >= 2);
    let out = run(
        "perestroika-worker",
        &["image", "refresh", "--distro", "trixie"],
    );
    assert_success(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("unchanged:"), "{said}");

    let out = run(
        "perestroika-worker",
        &["image", "prune", "--keep", "1", "--distro", "trixie"],
    );
    assert_success(&out);
    let left = trixie_images();
    assert_eq!(left.len(), 1, "{left:?}");

    let dir = tempfile::tempdir().unwrap();
    let mut repo = GitRepo::init(&dir.path().join("trixiepkg"));
    let commit = repo.commit(&minimal_package("trixiepkg", "true"), "one");
    let out = tempfile::tempdir().unwrap();
    let cache = package_cache();
    let output = run(
        "perestroika-worker",
        &[
            "build",
            "--quiet",
            "--distro",
            "trixie",
            "--package-cache",
            &cache,
            "--out",
            out.path().to_str().unwrap(),
            "--git",
            &repo.url(),
            "--commit",
            &commit,
        ],
    );
    assert_success(&output);
    let log = fs_err::read_to_string(out.path().join("build.log")).unwrap();
    assert!(
        log.contains(left[0]["id"].as_str().unwrap()),
        "the build did not use the newest trixie image"
    );
    assert!(out.path().join("trixiepkg_1.0+p1.0_all.deb").is_file());
}

/// Inside a build root, no command the build runs keeps CAP_SYS_ADMIN: root cannot mount.
#[tokio::test]
async fn commands_in_a_build_root_cannot_mount() {
    use perestroika_worker::container::buildlog::BuildLog;
    use perestroika_worker::container::rootfs::{base_root, BuildRoot};
    use perestroika_worker::container::sandbox::{As, Sandbox, SandboxSpec};

    let tag = base_image("bookworm");
    let docker = perestroika_worker::container::connect().unwrap();
    let id = docker.inspect_image(&tag).await.unwrap().id.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let base = base_root(&docker, &id, &scratch.path().join("roots"), "test")
        .await
        .unwrap();
    let root = BuildRoot::mount(&base, &scratch.path().join("root"), "1g").expect("overlayfs");
    let job = perestroika_tests::unique("capcheck");
    let spec = SandboxSpec {
        image: id,
        job_id: job.clone(),
        owner: "test".into(),
        tmpfs_size: "1g".into(),
        tmp_size: "64m".into(),
        memory_bytes: 1 << 30,
        read_only_binds: Vec::new(),
        root: Some(root.path()),
    };
    let sandbox = Sandbox::start(&docker, &spec).await.unwrap();
    let mut log = BuildLog::create(&scratch.path().join("log"), 1 << 20, false).unwrap();
    let mount = sandbox
        .exec(
            As::Root,
            &["mount", "-t", "tmpfs", "x", "/mnt"],
            &[],
            None,
            &mut log,
        )
        .await
        .unwrap();
    let (_, status) = sandbox
        .exec_capture(As::Root, &["cat", "/proc/self/status"], 1 << 20, &mut log)
        .await
        .unwrap();
    let (_, who) = sandbox
        .exec_capture(As::Builder, &["id", "-u"], 64, &mut log)
        .await
        .unwrap();
    sandbox.remove().await;
    root.release();
    assert_ne!(mount, 0, "root mounted a file system inside the build root");
    let status = String::from_utf8(status).unwrap();
    let bounding = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let bits = u64::from_str_radix(bounding.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        bits & (1 << 21),
        0,
        "CAP_SYS_ADMIN is in the bounding set: {bounding}"
    );
    assert_eq!(String::from_utf8(who).unwrap().trim(), "1000");
    assert!(containers_of_job(&job).is_empty());
}

/// A package whose Build-Depends are in the release (not in the base) builds with the
/// release's signed repository and fails clearly without it.
#[test]
fn build_dependencies_come_from_the_release_repository() {
    let key = perestroika_tests::apt::OperatorKey::new();
    let farm = perestroika_tests::apt::signed_farm(
        NO_BROKER,
        &[&key],
        "",
        r#"{ name = "9.0", deb = ["bookworm"] }"#,
    );
    let dir = farm.dir.path();
    let greet_out = dir.join("out-greet");
    let args = GreetRepos::init(dir, "Hello from the release").build_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (output, _) = build(&args, &greet_out);
    assert!(output.status.success());
    let deb = greet_out.join("greet_1.0+git1-1+p1.0_amd64.deb");
    farm.publish("bookworm", &[&deb]);

    let files = dh_package("greet-user", "greet", "greet");
    let mut user = GitRepo::init(&dir.join("greet-user"));
    let user_commit = user.commit(&files, "user");
    let user_url = user.url();
    let args = ["--git", user_url.as_str(), "--commit", &user_commit];

    let alone = dir.join("alone");
    let (output, result) = build(&args, &alone);
    assert_eq!(output.status.code(), Some(1));
    let (step, reason) = failure(&result);
    assert_eq!(step, "build-deps", "{reason}");
    assert!(reason.contains("greet"), "{reason}");

    let tree = farm.release_tree();
    let mut with_release = args.to_vec();
    with_release.extend(["--release", tree.to_str().unwrap()]);
    let with = dir.join("with-release");
    let (output, _) = build(&with_release, &with);
    assert!(
        output.status.success(),
        "{}",
        fs_err::read_to_string(with.join("build.log")).unwrap_or_default()
    );
    let root = fs_err::read_to_string(with.join("build-root.list")).unwrap();
    assert!(root.contains("greet 1.0+git1-1+p1.0 amd64"), "{root}");
}
