//! Real Debian inputs for the tests: source packages from the host's mirror, base images,
//! and small packages of our own in real git repositories.

use crate::assert_success;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{repo_root, run, sh};

static SOURCES: Mutex<()> = Mutex::new(());

/// Downloads a bookworm source package with `apt-get source` (through a private apt
/// configuration with a `deb-src` line for the host's own mirror) and returns its .dsc.
/// Downloads are kept under `target/test-cache/` between runs: they are inputs, not results.
pub fn debian_source(package: &str) -> PathBuf {
    let _lock = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root().join("target/test-cache/apt-source");
    let dir = root.join(package);
    if let Some(dsc) = find_dsc(&dir) {
        return dsc;
    }
    let mirror = perestroika_worker::image::apt_sources::HostMirrors::from_host()
        .archive
        .expect("the host's apt configuration names a Debian mirror");
    for sub in ["lists/partial", "cache/archives/partial", "etc"] {
        fs_err::create_dir_all(root.join(sub)).unwrap();
    }
    fs_err::write(
        root.join("etc/sources.list"),
        format!("deb-src {mirror} bookworm main\n"),
    )
    .unwrap();
    let conf = root.join("apt.conf");
    let r = root.display();
    fs_err::write(
        &conf,
        format!(
            "Dir::State \"{r}\";\nDir::State::Lists \"{r}/lists\";\nDir::Cache \"{r}/cache\";\n\
             Dir::Etc::SourceList \"{r}/etc/sources.list\";\nDir::Etc::SourceParts \"/nonexistent\";\n\
             APT::Sandbox::User \"root\";\n"
        ),
    )
    .unwrap();
    if !root.join("lists").read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with("Sources")
    }) {
        sh(Command::new("apt-get")
            .args(["update", "-q"])
            .env("APT_CONFIG", &conf));
    }
    let tmp = root.join(format!(".{package}.tmp"));
    let _ = fs_err::remove_dir_all(&tmp);
    fs_err::create_dir_all(&tmp).unwrap();
    sh(Command::new("apt-get")
        .args(["source", "--download-only", "-q", package])
        .env("APT_CONFIG", &conf)
        .current_dir(&tmp));
    fs_err::rename(&tmp, &dir).unwrap();
    find_dsc(&dir).expect("apt-get source left a .dsc")
}

fn find_dsc(dir: &Path) -> Option<PathBuf> {
    fs_err::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dsc"))
}

static IMAGES: Mutex<()> = Mutex::new(());

/// The newest base image of `distro`, bootstrapped with `perestroika-worker image build` if
/// there is none yet. Base images are kept between runs (they are the pinned build roots).
pub fn base_image(distro: &str) -> String {
    image_of(distro, &[])
}

/// The rpm build image the tests build rpms in: a Debian root with Debian's rpm, dnf and
/// createrepo-c (no rpm distribution's mirror is reachable here), made if there is none.
pub fn rpm_image() -> String {
    image_of(RPM_DISTRO, &["--rpm"])
}

/// Name of the tests' rpm distro (see [`rpm_image`]).
pub const RPM_DISTRO: &str = "bookworm-rpm";

fn image_of(distro: &str, extra: &[&str]) -> String {
    let _lock = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    let list = |()| {
        let out = run("perestroika-worker", &["image", "list", "--json"]);
        assert_success(&out);
        let images: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        images
            .into_iter()
            .find(|i| i["distro"] == distro)
            .map(|i| i["tag"].as_str().unwrap().to_owned())
    };
    if let Some(tag) = list(()) {
        return tag;
    }
    let mut args = vec!["image", "build", "--distro", distro];
    args.extend_from_slice(extra);
    let out = run("perestroika-worker", &args);
    assert!(
        out.status.success(),
        "image build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    list(()).expect("the image just built is listed")
}

/// The package cache `.ci/test` started, as seen from this host.
pub fn package_cache() -> String {
    std::env::var("FARM_TEST_PACKAGE_CACHE").expect(
        "FARM_TEST_PACKAGE_CACHE is not set: run the suite with `.ci/test`, which starts \
         apt-cacher-ng (or start one with `.ci/apt-cache start DIR PORT` and export its URL)",
    )
}

/// A git repository made by the test, with deterministic commits.
pub struct GitRepo {
    pub path: PathBuf,
    commits: u32,
}

impl GitRepo {
    pub fn init(path: &Path) -> Self {
        fs_err::create_dir_all(path).unwrap();
        sh(Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .current_dir(path));
        Self {
            path: path.to_owned(),
            commits: 0,
        }
    }

    /// A repository that already exists (a clone, say).
    pub fn open(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            commits: 0,
        }
    }

    /// Writes files (path, content) and commits them (an empty commit when nothing changed);
    /// returns the commit id.
    pub fn commit(&mut self, files: &[(String, String)], message: &str) -> String {
        for (name, content) in files {
            let p = self.path.join(name);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(&p, content).unwrap();
            if name.ends_with("rules") {
                sh(Command::new("chmod").arg("+x").arg(&p));
            }
        }
        self.commits += 1;
        let date = format!("2024-01-01T00:{:02}:00Z", self.commits);
        sh(Command::new("git")
            .args(["add", "-A"])
            .current_dir(&self.path));
        sh(Command::new("git")
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(["commit", "-q", "--allow-empty", "-m", message])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .current_dir(&self.path));
        self.head()
    }

    pub fn head(&self) -> String {
        sh(Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&self.path))
        .trim()
        .to_owned()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }
}

/// The files of a directory of the bundled example (`worker/examples/greet/<part>`), as
/// (relative path, content).
fn example(part: &str) -> Vec<(String, String)> {
    example_dir(&format!("worker/examples/greet/{part}"))
}

/// The files under a directory of the repository, as (relative path, content), sorted.
fn example_dir(dir: &str) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in fs_err::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, fs_err::read_to_string(&path).unwrap()));
            }
        }
    }
    let base = repo_root().join(dir);
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

/// The example's upstream code (a small C program), printing `greeting`.
pub fn greet_code(greeting: &str) -> Vec<(String, String)> {
    example("code")
        .into_iter()
        .map(|(name, text)| {
            let text = text.replace("Hello from the farm", greeting);
            (name, text)
        })
        .collect()
}

/// The example in two fresh git repositories (code printing `greeting`, and packaging), one
/// commit each, below `dir`.
pub struct GreetRepos {
    pub code: GitRepo,
    pub packaging: GitRepo,
}

impl GreetRepos {
    pub fn init(dir: &Path, greeting: &str) -> Self {
        let mut code = GitRepo::init(&dir.join("greet"));
        code.commit(&greet_code(greeting), "code");
        let mut packaging = GitRepo::init(&dir.join("greet-packaging"));
        packaging.commit(&greet_packaging(), "packaging");
        Self { code, packaging }
    }

    /// `perestroika-worker build` arguments for the two repositories at their heads.
    pub fn build_args(&self) -> Vec<String> {
        vec![
            "--git".into(),
            self.code.url(),
            "--commit".into(),
            self.code.head(),
            "--packaging-git".into(),
            self.packaging.url(),
            "--packaging-commit".into(),
            self.packaging.head(),
        ]
    }
}

/// The example's packaging: `debian/` (debhelper, 3.0 quilt) and `rpm/greet.spec`.
pub fn greet_packaging() -> Vec<(String, String)> {
    example("packaging")
}

/// The second example, `greet-motd`: a noarch rpm that build-requires greet (a spec only).
pub fn greet_motd_spec() -> Vec<(String, String)> {
    example_dir("worker/examples/greet-motd")
}

/// A native package without build dependencies whose build runs `build_step` (a shell line).
pub fn minimal_package(name: &str, build_step: &str) -> Vec<(String, String)> {
    vec![
        ("debian/changelog".into(), changelog(name, "1.0")),
        ("debian/source/format".into(), "3.0 (native)\n".into()),
        ("debian/control".into(), control(name, "")),
        (
            "debian/rules".into(),
            format!(
                "#!/usr/bin/make -f\nbuild build-arch build-indep:\n\t{build_step}\n\n\
                 binary binary-arch binary-indep: build\n\tmkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/{name}\n\
                 \techo {name} > debian/tmp/usr/share/{name}/README\n\tdpkg-gencontrol -Pdebian/tmp\n\
                 \tdpkg-deb --root-owner-group -b debian/tmp ..\n\nclean:\n\trm -rf debian/tmp\n"
            ),
        ),
    ]
}

/// A native debhelper package (`Architecture: all`) that build-depends on `build_depends`
/// (plus debhelper) and ships what `build_step` (a shell line) writes to `output`.
pub fn dh_package(name: &str, build_depends: &str, build_step: &str) -> Vec<(String, String)> {
    let deps = if build_depends.is_empty() {
        "debhelper-compat (= 13)".to_owned()
    } else {
        format!("debhelper-compat (= 13), {build_depends}")
    };
    vec![
        ("debian/changelog".into(), changelog(name, "1.0")),
        ("debian/source/format".into(), "3.0 (native)\n".into()),
        ("debian/control".into(), control(name, &deps)),
        (
            "debian/rules".into(),
            format!(
                "#!/usr/bin/make -f\n%:\n\tdh $@\n\noverride_dh_auto_build:\n\t{build_step} > output\n\n\
                 override_dh_auto_install:\n\tinstall -D -m644 output debian/{name}/usr/share/{name}/output\n"
            ),
        ),
    ]
}

/// `debian/control` of a test package with one `Architecture: all` binary of its name.
fn control(name: &str, build_depends: &str) -> String {
    let deps = if build_depends.is_empty() {
        String::new()
    } else {
        format!("Build-Depends: {build_depends}\n")
    };
    format!(
        "Source: {name}\nSection: misc\nPriority: optional\nMaintainer: Test <test@example.invalid>\n\
         {deps}Standards-Version: 4.6.2\nRules-Requires-Root: no\n\n\
         Package: {name}\nArchitecture: all\nDescription: a test package\n A test package of the build farm.\n"
    )
}

fn changelog(name: &str, version: &str) -> String {
    format!(
        "{name} ({version}) unstable; urgency=medium\n\n  * Initial release.\n\n -- Test <test@example.invalid>  Mon, 01 Jan 2024 00:00:00 +0000\n"
    )
}

/// Containers still present for a job (any state).
pub fn containers_of_job(job_id: &str) -> Vec<String> {
    sh(Command::new("docker").args([
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=perestroika.job={job_id}"),
    ]))
    .lines()
    .map(String::from)
    .collect()
}
