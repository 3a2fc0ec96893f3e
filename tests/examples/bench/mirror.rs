//! One new package into a mirror holding many: `perestroika-mirror sync` next to a plain
//! `rsync -a --delete` of the same tree, time and bytes sent, each to its own rsync daemon on
//! loopback.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use perestroika_tests::apt::BOOKWORM_RELEASE;
use perestroika_tests::rsyncd::RsyncHost;
use perestroika_tests::{bin, try_sh};

use crate::data;
use crate::measure::{header, median, row, timed};
use crate::publisher::PublishOnly;

/// How many packages the mirrored release holds.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "BENCH_PACKAGES", default_value_t = 10_000)]
    packages: usize,
}

/// The bytes `perestroika-mirror sync` says it sent (`…in sync (3 files, 1234 bytes sent, …)`).
fn bytes_synced(out: &str) -> Option<f64> {
    let before = &out[..out.find(" bytes sent")?];
    before.rsplit([' ', '(']).next()?.parse().ok()
}

/// The bytes `rsync --stats` says it sent (`Total bytes sent: 1,234`).
fn bytes_rsynced(out: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix("Total bytes sent:"))?
        .trim()
        .replace(',', "")
        .parse()
        .ok()
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    let n = args.packages;
    let debs = data::debs(root, n)?;
    let (all, extra) = debs.split_at(n);
    let ours_host = RsyncHost::start();
    let plain_host = RsyncHost::start();
    let release = PublishOnly::new(
        BOOKWORM_RELEASE,
        &format!(
            "[[mirrors]]\nname = \"ours\"\ntarget = \"{}\"\n",
            ours_host.url()
        ),
    );
    let farm = &release.farm;
    let tree = format!("{}/9.0", farm.customer);
    let public = farm.customer_root();
    let sync = || {
        try_sh(
            Command::new(bin("perestroika-mirror"))
                .arg("--config")
                .arg(&farm.path)
                .args(["sync", &tree]),
        )
    };
    let plain = || {
        try_sh(
            Command::new("rsync")
                .args(["-a", "--delete", "--stats"])
                .arg(format!("{}/", public.display()))
                .arg(format!("{}{}/", plain_host.url(), farm.customer)),
        )
    };
    println!("bench: a release of {n} packages, copied to both targets");
    release.include("bookworm", all)?;
    sync()?;
    plain()?;
    let (mut t_ours, mut t_plain, mut b_ours, mut b_plain) = (vec![], vec![], vec![], vec![]);
    for deb in extra {
        release.include("bookworm", std::slice::from_ref(deb))?;
        let (secs, out) = timed(sync);
        t_ours.push(secs);
        b_ours
            .push(bytes_synced(&out?).context("perestroika-mirror sync names the bytes it sent")?);
        let (secs, out) = timed(plain);
        t_plain.push(secs);
        b_plain.push(bytes_rsynced(&out?).context("rsync --stats names the bytes sent")?);
    }
    println!();
    println!(
        "{}",
        header(
            &format!("one new package into {n}, to a mirror"),
            "perestroika",
            "rsync -a"
        )
    );
    println!(
        "{}",
        row(
            &format!("seconds (median of {})", extra.len()),
            median(&t_ours),
            median(&t_plain),
            3
        )
    );
    println!(
        "{}",
        row("bytes sent (median)", median(&b_ours), median(&b_plain), 0)
    );
    println!("(perestroika-mirror sync: new pool files and the new generation (hard-linked to the previous");
    println!(" one on the target, indexes as deltas), then the link switch, then deletions — ordered, against");
    println!(
        " an rsync daemon on loopback; plain: one rsync -a --delete of the same tree, unordered)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_of_both_tools() {
        let ours = "ours: c1/9.0 generation 4 in sync (3 files, 98765 bytes sent, 0.17 s)\n";
        assert_eq!(bytes_synced(ours), Some(98765.0));
        let plain = "Number of files: 12\nTotal bytes sent: 1,234,567\nTotal bytes received: 9\n";
        assert_eq!(bytes_rsynced(plain), Some(1_234_567.0));
    }
}
