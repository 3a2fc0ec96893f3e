//! The rpm path: `greet-motd` (noarch), which build-requires `greet` from the release's signed
//! repository, built by the worker and by plain `rpmbuild` in a fresh copy of the same image
//! root (unpacked, chrooted, the same repository, `dnf builddep`, `rpmbuild -ba`, torn down).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use perestroika_tests::apt::{signed_farm, OperatorKey};
use perestroika_tests::debian::{rpm_image, GitRepo, RPM_DISTRO};
use perestroika_tests::{repo_root, try_sh};

use crate::measure::{paired_runs, phase_table, timed, PhaseLabels, Phases};
use crate::worker::{git, local, worker_build};

/// A repository holding `dirs` (copied in), committed once; returns it and the commit.
fn commit_dirs(repo: &Path, dirs: &[&Path]) -> Result<String> {
    let mut git = GitRepo::init(repo);
    for dir in dirs {
        try_sh(Command::new("cp").arg("-r").arg(dir).arg(repo))?;
    }
    Ok(git.commit(&[], "bench"))
}

/// Builds greet into a fresh release, then greet-motd with both tools, `runs` times each
/// alternating after one warm-up each; prints the medians side by side.
pub fn run(root: &Path, runs: usize) -> Result<()> {
    let image = rpm_image();
    let work = root.join("worker-rpm");
    let _ = fs_err::remove_dir_all(&work);
    fs_err::create_dir_all(&work)?;
    let key = OperatorKey::new();
    let farm = signed_farm(
        perestroika_tests::NO_BROKER,
        &[&key],
        "[publish]\nsuites = [\"proposed\"]\n",
        &format!(r#"{{ name = "9.0", rpm = ["{RPM_DISTRO}"] }}"#),
    );
    let examples = repo_root().join("worker/examples");
    let greet_dir = work.join("greet");
    let greet = commit_dirs(
        &greet_dir,
        &[
            &examples.join("greet/code/."),
            &examples.join("greet/packaging/rpm"),
        ],
    )?;
    let motd_dir = work.join("greet-motd");
    let motd = commit_dirs(&motd_dir, &[&examples.join("greet-motd/greet-motd.spec")])?;

    let greet_out = work.join("greet-out");
    let mut build = local(RPM_DISTRO, &greet_out);
    build.git = Some(git(&greet_dir, &greet));
    worker_build(build).context("building greet")?;
    let rpms: Vec<_> = fs_err::read_dir(&greet_out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
        .collect();
    farm.publish(RPM_DISTRO, &rpms);
    let tree = farm.release_tree();

    let ours = || {
        let mut build = local(RPM_DISTRO, &work.join("out-ours"));
        build.git = Some(git(&motd_dir, &motd));
        build.release = Some(tree.clone());
        worker_build(build)
    };
    let root_tar = work.join("root.tar");
    let cid = try_sh(Command::new("docker").args(["create", &image, "/bin/true"]))?;
    let cid = cid.trim();
    try_sh(Command::new("sh").args([
        "-ec",
        &format!("docker export {cid} > '{}'", root_tar.display()),
    ]))?;
    try_sh(Command::new("docker").args(["rm", cid]))?;
    let plain = Plain {
        root: work.join("plain-root"),
        tar: root_tar,
        releases: tree.parent().context("the tree has a parent")?.to_owned(),
        spec: motd_dir.join("greet-motd.spec"),
    };

    println!(
        "bench: building greet-motd (rpm, build-requires greet from the release) with \
         perestroika-worker and plain rpmbuild ({runs} runs each, alternating)"
    );
    // Warm the page cache and the exported root.
    ours()?;
    plain.build()?;
    let (o, t) = paired_runs(runs, "plain rpmbuild", ours, || plain.build())?;
    println!();
    phase_table(
        &PhaseLabels {
            title: "median seconds (greet-motd, rpm)",
            theirs: "plain rpmbuild",
            deps: "build dependencies (dnf)",
            build: "rpmbuild -ba",
            cold_deps: None,
        },
        &o,
        &t,
    );
    println!(
        "(setup + teardown = whole build - build dependencies - rpmbuild; plain: fresh copy of the"
    );
    println!(" same image root, chroot, the same signed release repository)");
    Ok(())
}

/// Plain rpmbuild in a fresh copy of the image's root.
struct Plain {
    root: std::path::PathBuf,
    tar: std::path::PathBuf,
    /// The customer's public trees (bound read-only at `/srv/releases`).
    releases: std::path::PathBuf,
    spec: std::path::PathBuf,
}

impl Plain {
    fn build(&self) -> Result<Phases> {
        let start = Instant::now();
        let r = &self.root;
        let _ = fs_err::remove_dir_all(r);
        fs_err::create_dir_all(r.join("srv/releases"))?;
        try_sh(
            Command::new("tar")
                .arg("-x")
                .arg("-p")
                .arg("-f")
                .arg(&self.tar)
                .arg("-C")
                .arg(r),
        )?;
        let result = self.inside();
        self.tear_down();
        let (deps, build) = result?;
        Ok(Phases {
            wall: start.elapsed().as_secs_f64(),
            deps,
            build,
        })
    }

    /// Binds, sets up and builds; the seconds of `dnf builddep` and `rpmbuild -ba`.
    fn inside(&self) -> Result<(f64, f64)> {
        let r = &self.root;
        let mount = |args: &[&str], from: &Path, to: &str| {
            try_sh(Command::new("mount").args(args).arg(from).arg(r.join(to)))
        };
        mount(&["--bind"], Path::new("/proc"), "proc")?;
        mount(&["--rbind"], Path::new("/dev"), "dev")?;
        mount(&["--bind", "-o", "ro"], &self.releases, "srv/releases")?;
        fs_err::write(
            r.join("etc/yum.repos.d/release.repo"),
            format!(
                "[release]\nbaseurl=file:///srv/releases/9.0/rpm/{RPM_DISTRO}/x86_64\n\
                 gpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///srv/releases/9.0/KEY.asc\n"
            ),
        )?;
        fs_err::copy(&self.spec, r.join("home/builder/greet-motd.spec"))?;
        fs_err::write(
            r.join("home/builder/.rpmmacros"),
            "%_topdir /home/builder/rpmbuild\n%autorelease p1.0\n",
        )?;
        let chroot = |user: bool, script: &str| {
            let mut cmd = Command::new("chroot");
            if user {
                cmd.arg("--userspec=1000:1000");
            }
            cmd.arg(r)
                .args(["env", "HOME=/home/builder", "sh", "-c", script]);
            try_sh(&mut cmd)
        };
        chroot(false, "chown -R builder: /home/builder")?;
        chroot(
            true,
            "rpmbuild -bs /home/builder/greet-motd.spec >/dev/null 2>&1",
        )?;
        let (deps, out) = timed(|| {
            chroot(
                false,
                "dnf -y -q builddep /home/builder/rpmbuild/SRPMS/*.src.rpm",
            )
        });
        out.context("plain dnf builddep failed")?;
        let (build, out) = timed(|| chroot(true, "rpmbuild -ba /home/builder/greet-motd.spec"));
        if out.is_err() {
            bail!("plain rpmbuild failed");
        }
        Ok((deps, build))
    }

    /// Stops what is left running in the root (dnf's key import starts gpg-agent), unmounts
    /// and removes it.
    fn tear_down(&self) {
        let r = &self.root;
        if let Ok(entries) = fs_err::read_dir("/proc") {
            for entry in entries.flatten() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                if pid.chars().all(|c| c.is_ascii_digit())
                    && fs_err::read_link(entry.path().join("root")).is_ok_and(|l| l == *r)
                {
                    let _ = Command::new("kill").arg(&pid).status();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let mounts = Command::new("findmnt")
            .args(["-n", "-l", "-o", "TARGET"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let prefix = format!("{}/", r.display());
        let mut inside: Vec<&str> = mounts.lines().filter(|m| m.starts_with(&prefix)).collect();
        inside.sort_unstable_by(|a, b| b.cmp(a));
        for m in inside {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = fs_err::remove_dir_all(r);
    }
}
