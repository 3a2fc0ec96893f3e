//! Real clients and real packages for the publisher tests: debs made with dpkg-deb, the
//! operator's key made with gpg, and apt in a private root judging what was published.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds a small binary package with dpkg-deb; `udeb` makes a `.udeb`. `marker` goes into a
/// file, so that two packages of the same name and version can differ.
pub fn make_deb(dir: &Path, name: &str, version: &str, udeb: bool, marker: &str) -> PathBuf {
    let fields = if udeb {
        "Section: debian-installer\nPackage-Type: udeb\n"
    } else {
        "Section: misc\n"
    };
    make_deb_with(dir, name, version, udeb, fields, marker)
}

/// [`make_deb`] with control `fields` of the test's choosing (`Section`, `Depends`, `Source`),
/// each line ending in a newline; `Section` must be among them.
pub fn make_deb_with(
    dir: &Path,
    name: &str,
    version: &str,
    udeb: bool,
    fields: &str,
    marker: &str,
) -> PathBuf {
    let root = dir.join(format!("{name}-{version}-{marker}"));
    fs_err::create_dir_all(root.join("DEBIAN")).unwrap();
    fs_err::create_dir_all(root.join(format!("usr/share/{name}"))).unwrap();
    fs_err::write(root.join(format!("usr/share/{name}/marker")), marker).unwrap();
    fs_err::write(
        root.join("DEBIAN/control"),
        format!("Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Test <test@example.invalid>\n{fields}Priority: optional\nDescription: test package {name}\n A package of the publisher tests.\n"),
    )
    .unwrap();
    let ext = if udeb { "udeb" } else { "deb" };
    let file = dir.join(format!("{name}_{version}_all.{ext}"));
    ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-b"])
            .arg(&root)
            .arg(&file)
            .output()
            .unwrap(),
        "dpkg-deb",
    );
    file
}

/// Builds a native source package with `dpkg-source -b` (no build tools needed); returns its
/// `.dsc`, with the tarball beside it.
pub fn make_dsc(dir: &Path, name: &str, version: &str, build_depends: &str) -> PathBuf {
    let root = dir.join(format!("src-{name}-{version}"));
    fs_err::create_dir_all(root.join("debian/source")).unwrap();
    fs_err::write(root.join("debian/source/format"), "3.0 (native)\n").unwrap();
    fs_err::write(
        root.join("debian/control"),
        format!("Source: {name}\nSection: misc\nPriority: optional\nMaintainer: Test <test@example.invalid>\nBuild-Depends: {build_depends}\n\nPackage: {name}\nArchitecture: all\nDescription: test package {name}\n A package of the publisher tests.\n"),
    )
    .unwrap();
    fs_err::write(
        root.join("debian/changelog"),
        format!("{name} ({version}) unstable; urgency=medium\n\n  * Test.\n\n -- Test <test@example.invalid>  Thu, 01 Jan 2026 00:00:00 +0000\n"),
    )
    .unwrap();
    ok(
        Command::new("dpkg-source")
            .current_dir(dir)
            .args(["-b"])
            .arg(root.file_name().unwrap())
            .output()
            .unwrap(),
        "dpkg-source -b",
    );
    let dsc = dir.join(format!("{name}_{version}.dsc"));
    assert!(dsc.is_file(), "dpkg-source made no {}", dsc.display());
    dsc
}

/// The operator's own signing key, made with gpg in a private home.
pub struct OperatorKey {
    home: tempfile::TempDir,
    pub fingerprint: String,
    /// The ASCII-armored secret key file, as `key import` takes it.
    pub secret_file: PathBuf,
}

impl OperatorKey {
    pub fn new() -> Self {
        let home = tempfile::Builder::new()
            .prefix("op")
            .tempdir_in("/tmp")
            .unwrap();
        let gpg = |args: &[&str]| {
            ok(
                Command::new("gpg")
                    .arg("--homedir")
                    .arg(home.path())
                    .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                    .args(args)
                    .output()
                    .unwrap(),
                "gpg",
            )
        };
        gpg(&[
            "--quick-gen-key",
            "Farm Operator <ops@example.invalid>",
            "ed25519",
            "sign",
            "2y",
        ]);
        let listing =
            String::from_utf8(gpg(&["--with-colons", "--list-secret-keys"]).stdout).unwrap();
        let fingerprint = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_owned();
        let secret = gpg(&["--armor", "--export-secret-keys", &fingerprint]).stdout;
        let secret_file = home.path().join("secret.asc");
        fs_err::write(&secret_file, secret).unwrap();
        Self {
            home,
            fingerprint,
            secret_file,
        }
    }
}

impl OperatorKey {
    /// The gpg home holding the secret key (for tools that sign with it directly).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The public half, armored, in a file beside the secret.
    pub fn public_file(&self) -> PathBuf {
        let public = self.home.path().join("public.asc");
        let exported = self.gpg(&["--armor", "--export", &self.fingerprint]);
        fs_err::write(&public, exported.stdout).unwrap();
        public
    }

    /// Signs `data` into `out`: clearsigned (an `InRelease`) or as an armored detached
    /// signature (`Release.gpg`, `repomd.xml.asc`).
    pub fn sign(&self, data: &Path, out: &Path, clear: bool) {
        let _ = fs_err::remove_file(out);
        let how = if clear {
            "--clearsign"
        } else {
            "--detach-sign"
        };
        self.gpg(&[
            "--armor",
            "--local-user",
            &self.fingerprint,
            "--output",
            out.to_str().unwrap(),
            how,
            data.to_str().unwrap(),
        ]);
    }

    fn gpg(&self, args: &[&str]) -> Output {
        ok(
            Command::new("gpg")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
                .output()
                .unwrap(),
            "gpg",
        )
    }
}

impl Default for OperatorKey {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OperatorKey {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// apt in a private root, trusting only `key` for one repository line.
pub struct AptRoot {
    pub dir: tempfile::TempDir,
}

impl AptRoot {
    /// `source` is the part after `deb [signed-by=KEY]`, e.g. `file:/srv/acme/9.0/deb bookworm main`.
    pub fn new(key: &Path, source: &str) -> Self {
        Self::with_sources(
            &format!("deb [signed-by={}] {source}\n", key.display()),
            false,
        )
    }

    /// A root with no sources yet: [`AptRoot::run_as_client`] adds them as a client would.
    /// apt fetches and reads keys as its unprivileged `_apt` user here, as on a client (so a
    /// key it may not read fails the update).
    pub fn empty() -> Self {
        Self::with_sources("", true)
    }

    /// A root whose `sources.list` is `text`; `as_apt_user`: apt drops to `_apt` (else it
    /// stays root).
    fn with_sources(text: &str, as_apt_user: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if as_apt_user {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let d = dir.path();
        for sub in [
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "etc/apt/apt.conf.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
        ] {
            fs_err::create_dir_all(d.join(sub)).unwrap();
        }
        fs_err::write(d.join("var/lib/dpkg/status"), "").unwrap();
        fs_err::write(d.join("etc/apt/sources.list"), text).unwrap();
        fs_err::write(
            d.join("apt.conf"),
            format!(
                "Dir \"{0}/\";\nDir::State::status \"{0}/var/lib/dpkg/status\";\nAPT::Sandbox::User \"{1}\";\nAcquire::Languages \"none\";\nAPT::Architecture \"amd64\";\n",
                d.display(),
                if as_apt_user { "_apt" } else { "root" }
            ),
        )
        .unwrap();
        Self { dir }
    }

    /// Runs a client's setup commands exactly as the farm prints them (`install -d -m 0755
    /// /etc/apt/keyrings`, `curl … -o /etc/apt/keyrings/….asc <url>/KEY.asc`, `echo 'deb [signed-by=/etc/apt/keyrings/….asc]
    /// …' > /etc/apt/sources.list.d/….list`) with `sh`, asserting success; the one change is
    /// that `/etc/apt/` is this root's.
    pub fn run_as_client(&self, commands: &[&str]) {
        let etc = format!("{}/etc/apt/", self.dir.path().display());
        for command in commands {
            let command = command.replace("/etc/apt/", &etc);
            ok(
                Command::new("sh").args(["-ec", &command]).output().unwrap(),
                &command,
            );
        }
    }

    /// Runs apt-get with this root's configuration.
    pub fn apt_get(&self, args: &[&str]) -> Output {
        Command::new("apt-get")
            .args(args)
            .env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .output()
            .unwrap()
    }

    /// `apt-get update`, asserting success and no warnings about signatures or hashes.
    pub fn update(&self) -> Output {
        ok(
            self.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"]),
            "apt-get update",
        )
    }

    /// Versions of `package` apt knows of; fails when `apt-cache` itself fails (an empty
    /// answer must mean "apt knows none").
    pub fn versions(&self, package: &str) -> Vec<String> {
        let out = Command::new("apt-cache")
            .args(["madison", package])
            .env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apt-cache madison {package} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned()))
            .collect()
    }
}

/// Builds a small noarch rpm (and its source rpm) with rpmbuild; returns (binary, source).
pub fn make_rpm(dir: &Path, name: &str, version: &str, marker: &str) -> (PathBuf, PathBuf) {
    make_rpm_with(dir, name, version, "", marker)
}

/// [`make_rpm`] with more spec preamble lines (e.g. `Requires: libx >= 2.0\n`).
pub fn make_rpm_with(
    dir: &Path,
    name: &str,
    version: &str,
    preamble: &str,
    marker: &str,
) -> (PathBuf, PathBuf) {
    let top = dir.join(format!("rpmbuild-{name}-{marker}"));
    for sub in ["SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS"] {
        fs_err::create_dir_all(top.join(sub)).unwrap();
    }
    let spec = top.join(format!("SPECS/{name}.spec"));
    fs_err::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test package {name}\nLicense: MIT\nBuildArch: noarch\n{preamble}\n\
             %description\nA package of the publisher tests.\n\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
             echo {marker} > %{{buildroot}}/usr/share/{name}/marker\n\n%files\n/usr/share/{name}/marker\n"
        ),
    )
    .unwrap();
    ok(
        Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--nodeps", "-ba"])
            .arg(&spec)
            .output()
            .unwrap(),
        "rpmbuild",
    );
    let binary = top.join(format!("RPMS/noarch/{name}-{version}-1.noarch.rpm"));
    let source = top.join(format!("SRPMS/{name}-{version}-1.src.rpm"));
    assert!(binary.is_file() && source.is_file());
    (binary, source)
}

/// A farm whose publisher holds `keys` (the first signs, the others sign alongside), with
/// more `sections` and the customer's release `9.0` written as `release`.
pub fn signed_farm(
    amqp_url: &str,
    keys: &[&OperatorKey],
    sections: &str,
    release: &str,
) -> crate::Farm {
    signed_farm_on(amqp_url, "", keys, sections, release)
}

/// [`signed_farm`] whose `[broker]` section also holds `broker_extra` (e.g. a cluster's
/// other nodes).
pub fn signed_farm_on(
    amqp_url: &str,
    broker_extra: &str,
    keys: &[&OperatorKey],
    sections: &str,
    release: &str,
) -> crate::Farm {
    let also: Vec<String> = keys[1..]
        .iter()
        .map(|k| format!("\"{}\"", k.fingerprint))
        .collect();
    let signing = format!(
        "[signing]\nfingerprint = \"{}\"\nalso_sign_with = [{}]\n{sections}",
        keys[0].fingerprint,
        also.join(", ")
    );
    let farm = crate::Farm::custom(amqp_url, broker_extra, &signing, release);
    for key in keys {
        farm.import_key(key);
    }
    farm
}

impl crate::Farm {
    /// `perestroika-publisher key import` of `key`'s secret part into this farm's keyring.
    pub fn import_key(&self, key: &OperatorKey) {
        let out = crate::run(
            "perestroika-publisher",
            &[
                "--config",
                self.path.to_str().unwrap(),
                "key",
                "import",
                key.secret_file.to_str().unwrap(),
            ],
        );
        ok(out, "key import");
    }

    /// [`crate::Farm::include`] of `files` into the review repository of `change`, asserting
    /// that it succeeded.
    pub fn publish_review<P: AsRef<Path>>(&self, distro: &str, change: u64, files: &[P]) {
        let files: Vec<&Path> = files.iter().map(AsRef::as_ref).collect();
        let out = self
            .include(distro, &["--review", &change.to_string()], &files)
            .output()
            .unwrap();
        ok(out, "publishing for review");
    }
}

/// The release line of the test farms: 9.0 for bookworm.
pub const BOOKWORM_RELEASE: &str = r#"{ name = "9.0", deb = ["bookworm"] }"#;

/// `dnf install` into a private root from the `distro` repository of the release at `base`
/// (`file:///…/acme/9.0` or `http://…/acme/9.0`), with package and repository signatures
/// checked against the release's own `KEY.asc`.
pub fn dnf_install(base: &str, distro: &str, root: &Path, package: &str) -> Output {
    Command::new("dnf")
        .arg(format!("--installroot={}", root.display()))
        .args([
            "--releasever=9",
            "--disablerepo=*",
            "-y",
            "-q",
            "--setopt=install_weak_deps=False",
        ])
        .arg(format!("--repofrompath=farm,{base}/rpm/{distro}/x86_64"))
        .args(["--setopt=farm.gpgcheck=1", "--setopt=farm.repo_gpgcheck=1"])
        .arg(format!("--setopt=farm.gpgkey={base}/KEY.asc"))
        .args(["--enablerepo=farm", "install", package])
        .output()
        .unwrap()
}

/// [`dnf_install`] of `package` into a fresh root, asserting that dnf succeeded; the root is
/// returned for the test to look into.
pub fn dnf_installs(base: &str, distro: &str, package: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let out = dnf_install(base, distro, root.path(), package);
    assert!(
        out.status.success(),
        "dnf could not install {package} from {base} ({distro}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    root
}
