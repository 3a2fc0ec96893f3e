//! `perestroika-worker build` of a Debian source package next to `sbuild --chroot-mode=unshare`,
//! both through the same package cache and from a root with baked package lists.
//!
//! `.ci/bench worker` prepares sbuild's side first (sbuild and uidmap installed, an
//! unprivileged user with subordinate ids, a buildd chroot tarball with its package lists kept)
//! and downloads the source package.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use perestroika_config::settings::BuildSettings;
use perestroika_protocol::messages::BuildOutcome;
use perestroika_tests::{repo_root, try_sh};
use perestroika_worker::local::{GitCommit, LocalBuild};

use crate::measure::{paired_runs, phase_table, timed, PhaseLabels, Phases};

/// What the deb comparison builds, and as whom sbuild runs.
#[derive(clap::Args)]
pub struct Args {
    /// The source package's `.dsc` (its other files beside it).
    #[arg(long)]
    dsc: PathBuf,
    /// The unprivileged user sbuild runs as (subordinate ids set up).
    #[arg(long, default_value = "perestroika-bench")]
    sbuild_user: String,
    /// The port the benchmark's package cache listens on.
    #[arg(long, env = "BENCH_CACHE_PORT", default_value_t = 3149)]
    cache_port: u16,
}

/// A build of the example or the benchmark's package by the worker's own code, as
/// `perestroika-worker build` runs it; its phases from the worker's stage timings.
pub fn worker_build(build: LocalBuild) -> Result<Phases> {
    let out = build.out.clone();
    let _ = fs_err::remove_dir_all(&out);
    let runtime = tokio::runtime::Runtime::new()?;
    let (wall, report) = timed(|| runtime.block_on(build.run(&BuildSettings::default())));
    let report = report?;
    if let BuildOutcome::Failed { step, reason } = &report.result.outcome {
        bail!(
            "perestroika-worker build failed at {step}: {reason}; see {}/build.log",
            out.display()
        );
    }
    let stage = |name: &str| {
        report
            .timings
            .iter()
            .find(|(s, _)| *s == name)
            .map(|(_, t)| *t)
    };
    Ok(Phases {
        wall,
        deps: stage("build-deps").context("the worker timed no build-deps stage")?,
        build: stage("build").context("the worker timed no build stage")?,
    })
}

/// A local build of `distro` into `out` with no other input set.
pub fn local(distro: &str, out: &Path) -> LocalBuild {
    LocalBuild {
        distro: distro.to_owned(),
        source: None,
        git: None,
        packaging: None,
        release: None,
        release_url: None,
        rebuild: 0,
        out: out.to_owned(),
        package_cache: None,
        timeout_secs: None,
        echo: false,
    }
}

/// A git commit as `perestroika-worker build --git … --commit …` names it.
pub fn git(repo: &Path, commit: &str) -> GitCommit {
    GitCommit {
        url: format!("file://{}", repo.display()),
        commit: commit.to_owned(),
    }
}

/// The package cache both tools fetch through: `.ci/apt-cache` under `dir`.
struct Cache {
    dir: PathBuf,
    port: u16,
}

impl Cache {
    /// (Re)starts it; `cold` empties it first.
    fn start(&self, cold: bool) -> Result<()> {
        self.stop();
        if cold {
            let _ = fs_err::remove_dir_all(&self.dir);
        }
        try_sh(
            script("apt-cache")
                .arg("start")
                .arg(&self.dir)
                .arg(self.port.to_string()),
        )?;
        Ok(())
    }

    fn stop(&self) {
        let _ = script("apt-cache").arg("stop").arg(&self.dir).output();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.stop();
    }
}

fn script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join(".ci").join(name));
    cmd
}

/// sbuild's side: one build of the `.dsc` copied into `dir`, as `user`.
fn sbuild(dsc: &Path, dir: &Path, user: &str, cache: &Cache) -> Result<Phases> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if [".build", ".deb", ".changes", ".buildinfo"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            fs_err::remove_file(&path)?;
        }
    }
    let proxy = format!(
        r#"echo Acquire::http::Proxy \"{}\"\; > /etc/apt/apt.conf.d/99cache"#,
        cache.url()
    );
    let script = format!(
        "cd '{}' && sbuild --chroot-mode=unshare --dist=bookworm --no-run-lintian \
         --no-run-autopkgtest --no-run-piuparts --no-apt-update --no-apt-upgrade \
         --no-apt-distupgrade --chroot-setup-commands='{proxy}' '{}'",
        dir.display(),
        dsc.file_name().unwrap_or_default().to_string_lossy()
    );
    let (wall, out) = timed(|| Command::new("su").args([user, "-c", &script]).output());
    if !out?.status.success() {
        bail!("sbuild failed; see {}/*.build", dir.display());
    }
    // sbuild's log: the link without the time stamp in its name.
    let log = fs_err::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".build") && !name.contains("-20")
        })
        .context("sbuild left no .build log")?;
    let text = fs_err::read_to_string(&log)?;
    let field = |name: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{}: no {name}", log.display()))
    };
    Ok(Phases {
        wall,
        deps: field("Install-Time:")?,
        build: field("Build-Time:")?,
    })
}

/// Builds the package with both tools, a cold run each and then `runs` warm ones,
/// alternating; prints the medians side by side.
pub fn run(root: &Path, runs: usize, args: &Args) -> Result<()> {
    perestroika_tests::debian::base_image("bookworm");
    let dsc = std::path::absolute(&args.dsc)?;
    let package = dsc
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').next())
        .context("the .dsc's name is not <package>_<version>.dsc")?
        .to_owned();
    let sbuild_dir = root.join("sbuild");
    let _ = fs_err::remove_dir_all(&sbuild_dir);
    fs_err::create_dir_all(&sbuild_dir)?;
    try_sh(Command::new("sh").args([
        "-ec",
        &format!(
            "cp \"{}\"/* \"{}\"/ && chown -R '{}:' \"{1}\"",
            dsc.parent().context("the .dsc has a directory")?.display(),
            sbuild_dir.display(),
            args.sbuild_user
        ),
    ]))?;
    let sbuild_dsc = sbuild_dir.join(dsc.file_name().context("a .dsc file")?);
    let cache = Cache {
        dir: root.join("apt-cache"),
        port: args.cache_port,
    };
    let ours = || {
        let mut build = local("bookworm", &root.join("out-ours"));
        build.source = Some(dsc.clone());
        build.package_cache = Some(cache.url());
        worker_build(build)
    };
    let theirs = || sbuild(&sbuild_dsc, &sbuild_dir, &args.sbuild_user, &cache);

    println!("bench: building {package} with perestroika-worker and sbuild ({runs} warm runs each, alternating)");
    cache.start(true)?;
    let ours_cold = ours()?.deps;
    cache.start(true)?;
    let theirs_cold = theirs()?.deps;
    cache.start(false)?;
    let (o, t) = paired_runs(runs, "sbuild", ours, theirs)?;
    println!();
    phase_table(
        &PhaseLabels {
            title: &format!("median seconds ({package}, bookworm)"),
            theirs: "sbuild",
            deps: "build dependencies, warm cache",
            build: "dpkg-buildpackage",
            cold_deps: Some((ours_cold, theirs_cold)),
        },
        &o,
        &t,
    );
    println!("(setup + teardown = whole build - build dependencies - dpkg-buildpackage; sbuild's");
    println!(" Install-Time and Build-Time are whole seconds)");
    Ok(())
}
