//! Publishing debs with `perestroika-publisher include` next to `reprepro includedeb` and
//! aptly's add + snapshot + `publish switch` (when aptly is installed): a full import, and
//! one new package into many, end to end.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use perestroika_tests::apt::{signed_farm, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::{try_sh, Farm};

use crate::data;
use crate::measure::{header, median, row, timed};

/// How many packages the publisher comparisons hold.
#[derive(clap::Args)]
pub struct Args {
    /// Debs in the release.
    #[arg(long, env = "BENCH_PACKAGES", default_value_t = 10_000)]
    pub packages: usize,
    /// Sizes of the rpm releases one new rpm goes into (space-separated in the environment).
    #[arg(long, env = "BENCH_RPM_SIZES", value_delimiter = ' ', default_values_t = [1_000, 10_000])]
    pub rpm_sizes: Vec<usize>,
}

/// A farm with only a publisher and the operator's key, for one-shot `include`s.
pub struct PublishOnly {
    pub key: OperatorKey,
    pub farm: Farm,
}

impl PublishOnly {
    /// A release 9.0 written as `release` (a TOML inline table), with the fewest suites
    /// besides it a configuration may have: the proposed suite alone.
    pub fn new(release: &str, sections: &str) -> Self {
        let key = OperatorKey::new();
        let farm = signed_farm(
            perestroika_tests::NO_BROKER,
            &[&key],
            &format!("[publish]\nsuites = [\"proposed\"]\n{sections}"),
            release,
        );
        Self { key, farm }
    }

    /// `perestroika-publisher include` of `files` for `distro`; its seconds.
    pub fn include(&self, distro: &str, files: &[PathBuf]) -> Result<f64> {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let (secs, out) = timed(|| self.farm.include(distro, &[], &files).output());
        let out = out?;
        ensure!(
            out.status.success(),
            "perestroika-publisher include failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(secs)
    }
}

/// Runs a command, timing it; fails with its output.
fn time(cmd: &mut Command) -> Result<f64> {
    let (secs, out) = timed(|| try_sh(cmd));
    out?;
    Ok(secs)
}

/// aptly with its own configuration under `dir`.
struct Aptly {
    config: PathBuf,
}

impl Aptly {
    fn new(dir: &Path) -> Result<Self> {
        fs_err::create_dir_all(dir)?;
        let config = dir.join("aptly.conf");
        fs_err::write(
            &config,
            format!(
                "{{\"rootDir\": \"{}\", \"architectures\": [\"amd64\"]}}\n",
                dir.display()
            ),
        )?;
        Ok(Self { config })
    }

    fn run(&self, args: &[&str], files: &[PathBuf]) -> Result<()> {
        try_sh(
            Command::new("aptly")
                .arg(format!("-config={}", self.config.display()))
                .args(args)
                .args(files),
        )?;
        Ok(())
    }
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    let n = args.packages;
    let debs = data::debs(root, n)?;
    let (all, extra) = debs.split_at(n);
    let work = root.join("publisher");
    let _ = fs_err::remove_dir_all(&work);
    fs_err::create_dir_all(&work)?;
    let rr = work.join("reprepro");
    let reprepro = |files: &[PathBuf]| {
        time(
            Command::new("reprepro")
                .arg("-s")
                .arg("-b")
                .arg(&rr)
                .args(["includedeb", "bookworm"])
                .args(files),
        )
    };

    println!("bench: full import of {n} packages, 3 times each, alternating");
    // Both read the same files: from the page cache, not whichever comes first from disk.
    for deb in all {
        fs_err::read(deb)?;
    }
    let (mut full_ours, mut full_theirs) = (Vec::new(), Vec::new());
    let mut ours = None;
    for _ in 0..3 {
        let fresh = PublishOnly::new(BOOKWORM_RELEASE, "");
        full_ours.push(fresh.include("bookworm", all)?);
        // Plain reprepro gets the same kind of repository: the distributions file the
        // publisher wrote.
        let _ = fs_err::remove_dir_all(&rr);
        fs_err::create_dir_all(rr.join("conf"))?;
        let state = &fresh.farm.config.paths.state;
        fs_err::copy(
            state.join(format!(
                "publisher/deb/{}/9.0/conf/distributions",
                fresh.farm.customer
            )),
            rr.join("conf/distributions"),
        )?;
        full_theirs.push(reprepro(all)?);
        ours = Some(fresh);
    }
    let ours = ours.context("three imports ran")?;
    let list = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "   full imports (s): perestroika {}; reprepro {}",
        list(&full_ours),
        list(&full_theirs)
    );

    let aptly = if installed("aptly") {
        println!("bench: aptly repository of {n} packages");
        let aptly = Aptly::new(&work.join("aptly"))?;
        aptly.run(&["repo", "create", "-distribution=bookworm", "bench"], &[])?;
        aptly.run(&["repo", "add", "bench"], all)?;
        aptly.run(&["snapshot", "create", "s0", "from", "repo", "bench"], &[])?;
        aptly.run(
            &[
                "publish",
                "snapshot",
                "-skip-signing",
                "-distribution=bookworm",
                "s0",
            ],
            &[],
        )?;
        Some(aptly)
    } else {
        println!("bench: aptly is not installed: no aptly figure");
        None
    };

    println!(
        "bench: one new package into {n}, {} times each",
        extra.len()
    );
    let (mut one_ours, mut one_reprepro, mut one_aptly) = (Vec::new(), Vec::new(), Vec::new());
    for (i, deb) in extra.iter().enumerate() {
        let deb = std::slice::from_ref(deb);
        one_ours.push(ours.include("bookworm", deb)?);
        one_reprepro.push(reprepro(deb)?);
        if let Some(aptly) = &aptly {
            let snapshot = format!("s{}", i + 1);
            let (secs, done) = timed(|| -> Result<()> {
                aptly.run(&["repo", "add", "bench"], deb)?;
                aptly.run(
                    &["snapshot", "create", &snapshot, "from", "repo", "bench"],
                    &[],
                )?;
                aptly.run(
                    &["publish", "switch", "-skip-signing", "bookworm", &snapshot],
                    &[],
                )
            });
            done?;
            one_aptly.push(secs);
        }
    }
    println!();
    println!(
        "{}",
        header(&format!("seconds ({n} debs)"), "perestroika", "other")
    );
    let ours_one = median(&one_ours);
    println!(
        "{}",
        row(
            "one new deb, end to end, vs reprepro includedeb",
            ours_one,
            median(&one_reprepro),
            3
        )
    );
    if aptly.is_some() {
        println!(
            "{}",
            row(
                "one new deb, end to end, vs aptly add+snapshot+switch",
                ours_one,
                median(&one_aptly),
                3
            )
        );
    }
    println!(
        "{}",
        row(
            "full import vs reprepro includedeb",
            median(&full_ours),
            median(&full_theirs),
            3
        )
    );
    println!("(perestroika: checks, reprepro, by-hash, gpgme signing of Release, atomic switch; reprepro and");
    println!(
        " aptly unsigned; medians of {} single-package publishes and of 3 full imports)",
        extra.len()
    );
    Ok(())
}
