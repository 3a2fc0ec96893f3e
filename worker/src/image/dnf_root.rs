//! rpm build roots bootstrapped the way mock does it: `dnf --installroot` at the distro's
//! release version from the repositories the configuration names, with the host's dnf and
//! nothing of the host's own dnf or rpm configuration. The root gets the `builder` user and a
//! repository file naming the same repositories, which builds later take their build
//! dependencies from (through the package cache).
//!
//! Runs as root on the worker host (dnf must chown the files it installs).

use std::path::Path;
use std::process::Stdio;

use perestroika_config::settings::RpmRoot;

use super::bootstrap::{run_streaming, PACKAGE_LIST};
use super::error::ImageError;

/// The repository file the root keeps, naming the repositories it came from.
pub const BASE_REPO_FILE: &str = "etc/yum.repos.d/perestroika-base.repo";

/// Installs `root.packages` into a fresh directory, makes it a build root and tars it into
/// `tarball`; returns the package list (`name epoch:version-release` per line, sorted).
pub async fn bootstrap(
    distro: &str,
    root: &RpmRoot,
    scratch: &Path,
    tarball: &Path,
) -> Result<String, ImageError> {
    let work = scratch.join(format!("{distro}.{}.dnf", std::process::id()));
    let _ = fs_err::remove_dir_all(&work);
    let result = bootstrap_in(distro, root, &work, tarball).await;
    let _ = fs_err::remove_dir_all(&work);
    if result.is_err() {
        let _ = fs_err::remove_file(tarball);
    }
    result
}

async fn bootstrap_in(
    distro: &str,
    root: &RpmRoot,
    work: &Path,
    tarball: &Path,
) -> Result<String, ImageError> {
    let failed = |detail: String| ImageError::Dnf {
        distro: distro.to_owned(),
        detail,
    };
    let (dir, home, conf) = (work.join("root"), work.join("home"), work.join("dnf.conf"));
    for d in [&dir, &home, &work.join("repos.d")] {
        fs_err::create_dir_all(d)?;
    }
    // The host's rpm may keep its database elsewhere (Debian: ~/.rpmdb); inside the root it
    // belongs where the distro's own rpm looks.
    fs_err::write(home.join(".rpmmacros"), "%_dbpath /var/lib/rpm\n")?;
    fs_err::write(
        &conf,
        format!(
            "[main]\nreposdir={}\ncachedir={}\ninstall_weak_deps=False\ntsflags=nodocs\nplugins=False\n",
            work.join("repos.d").display(),
            work.join("cache").display()
        ),
    )?;
    let mut cmd = tokio::process::Command::new("dnf");
    cmd.env("HOME", &home)
        .arg("-y")
        .arg(format!("--config={}", conf.display()))
        .arg(format!("--installroot={}", dir.display()))
        .arg(format!("--releasever={}", root.releasever));
    for (i, url) in root.repos.iter().enumerate() {
        let id = format!("base{i}");
        cmd.arg(format!("--repofrompath={id},{url}"));
        if root.gpgkeys.is_empty() {
            cmd.arg(format!("--setopt={id}.gpgcheck=0"));
        } else {
            cmd.arg(format!("--setopt={id}.gpgcheck=1"));
            cmd.arg(format!("--setopt={id}.gpgkey={}", root.gpgkeys.join(" ")));
        }
    }
    cmd.arg("install").args(&root.packages);
    tracing::info!(%distro, releasever = %root.releasever, repos = %root.repos.join(" "), "bootstrapping an rpm root with dnf --installroot");
    // dnf's progress goes to stderr with the rest: stdout is the command's result.
    let progress = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
    let tail = run_streaming(cmd.stdout(Stdio::from(progress)).stderr(Stdio::piped())).await?;
    if let Some((code, tail)) = tail {
        return Err(failed(format!("dnf exited with {code}: {tail}")));
    }

    add_builder(&dir)?;
    fs_err::create_dir_all(dir.join("etc/yum.repos.d"))?;
    fs_err::write(dir.join(BASE_REPO_FILE), repo_file(root))?;

    let list = tokio::process::Command::new("rpm")
        .env("HOME", &home)
        .arg(format!("--root={}", dir.display()))
        .args([
            "-qa",
            "--qf",
            "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n",
        ])
        .output()
        .await?;
    if !list.status.success() {
        return Err(failed(format!(
            "listing the root's packages: {}",
            String::from_utf8_lossy(&list.stderr).trim()
        )));
    }
    let mut lines: Vec<&str> = std::str::from_utf8(&list.stdout)
        .map_err(|e| failed(format!("package list: {e}")))?
        .lines()
        .collect();
    lines.sort_unstable();
    let list = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    fs_err::write(dir.join(PACKAGE_LIST.trim_start_matches('/')), &list)?;

    let tar = tokio::process::Command::new("tar")
        .args(["--numeric-owner", "-c", "-f"])
        .arg(tarball)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .output()
        .await?;
    if !tar.status.success() {
        return Err(failed(format!(
            "packing the root: {}",
            String::from_utf8_lossy(&tar.stderr).trim()
        )));
    }
    Ok(list)
}

/// The repository file of the root: the repositories it came from, for build dependencies.
fn repo_file(root: &RpmRoot) -> String {
    let mut out = String::new();
    for (i, url) in root.repos.iter().enumerate() {
        out.push_str(&format!(
            "[perestroika-base{i}]\nname=Base repository {i} of the build root\nbaseurl={url}\nenabled=1\n"
        ));
        if root.gpgkeys.is_empty() {
            out.push_str("gpgcheck=0\n\n");
        } else {
            out.push_str(&format!(
                "gpgcheck=1\ngpgkey={}\n\n",
                root.gpgkeys.join(" ")
            ));
        }
    }
    out
}

/// Adds the unprivileged `builder` user (uid and gid 1000) every build runs as, without
/// running anything of the root.
fn add_builder(dir: &Path) -> Result<(), std::io::Error> {
    let etc = dir.join("etc");
    fs_err::create_dir_all(&etc)?;
    let append = |file: &str, line: &str| -> Result<(), std::io::Error> {
        let path = etc.join(file);
        let mut text = fs_err::read_to_string(&path).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("builder:")) {
            return Ok(());
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        fs_err::write(&path, text)
    };
    append("passwd", "builder:x:1000:1000::/home/builder:/bin/sh")?;
    append("group", "builder:x:1000:")?;
    if etc.join("shadow").exists() {
        append("shadow", "builder:!:1::::::")?;
    }
    let home = dir.join("home/builder");
    fs_err::create_dir_all(&home)?;
    std::os::unix::fs::chown(&home, Some(1000), Some(1000))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_file_names_every_repository_and_its_keys() {
        let root = RpmRoot {
            releasever: "9".into(),
            repos: vec!["http://m/BaseOS/".into(), "http://m/AppStream/".into()],
            gpgkeys: vec!["file:///k1".into(), "file:///k2".into()],
            packages: vec![],
        };
        let text = repo_file(&root);
        assert!(text.contains("[perestroika-base0]\n"));
        assert!(text.contains("baseurl=http://m/AppStream/\n"));
        assert_eq!(text.matches("gpgkey=file:///k1 file:///k2\n").count(), 2);
        let unsigned = RpmRoot {
            gpgkeys: vec![],
            ..root
        };
        assert_eq!(repo_file(&unsigned).matches("gpgcheck=0").count(), 2);
    }

    #[test]
    fn builder_is_added_once() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("etc")).unwrap();
        fs_err::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh").unwrap();
        add_builder(dir.path()).unwrap();
        add_builder(dir.path()).unwrap();
        let passwd = fs_err::read_to_string(dir.path().join("etc/passwd")).unwrap();
        assert_eq!(
            passwd,
            "root:x:0:0::/root:/bin/sh\nbuilder:x:1000:1000::/home/builder:/bin/sh\n"
        );
    }
}
