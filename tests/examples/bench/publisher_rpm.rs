//! One new rpm into a release of many, published by `perestroika-publisher include`, next to
//! the plain chain `rpmsign` + `createrepo_c --update` + a detached signature of `repomd.xml`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use perestroika_tests::try_sh;

use crate::data;
use crate::measure::{median, row, timed};
use crate::publisher::PublishOnly;

pub fn run(root: &Path, n: usize) -> Result<()> {
    println!("bench: {n} rpms");
    let rpms = data::rpms(root, n)?;
    let (all, extra) = rpms.split_at(n);
    let ours = PublishOnly::new(r#"{ name = "9.0", rpm = ["el9"] }"#, "");
    ours.include("el9", all)?;
    // The plain tool chain on the same signed packages.
    let plain = root.join(format!("publisher-rpm-{n}/plain"));
    let _ = fs_err::remove_dir_all(&plain);
    fs_err::create_dir_all(plain.join("Packages"))?;
    let pool = ours
        .farm
        .config
        .paths
        .public_root
        .join(&ours.farm.customer)
        .join(".9.0.pool/rpm/el9/x86_64/Packages");
    for entry in fs_err::read_dir(&pool)? {
        let path = entry?.path();
        fs_err::copy(
            &path,
            plain
                .join("Packages")
                .join(path.file_name().context("a file")?),
        )?;
    }
    try_sh(
        Command::new("createrepo_c")
            .args(["-q", "--no-database"])
            .arg(&plain),
    )?;
    let home = ours.key.home();
    let fpr = &ours.key.fingerprint;
    let (mut o, mut t) = (Vec::new(), Vec::new());
    for rpm in extra {
        o.push(ours.include("el9", std::slice::from_ref(rpm))?);
        let (secs, done) = timed(|| -> Result<()> {
            let copy = plain
                .join("Packages")
                .join(rpm.file_name().context("a file")?);
            fs_err::copy(rpm, &copy)?;
            try_sh(
                Command::new("rpmsign")
                    .arg("--addsign")
                    .args(["--define", &format!("_gpg_name {fpr}")])
                    .args(["--define", &format!("_gpg_path {}", home.display())])
                    .args(["--define", "__gpg /usr/bin/gpg"])
                    .arg(&copy),
            )?;
            try_sh(
                Command::new("createrepo_c")
                    .args(["-q", "--no-database", "--update"])
                    .arg(&plain),
            )?;
            try_sh(
                Command::new("gpg")
                    .arg("--homedir")
                    .arg(home)
                    .args(["--batch", "--yes", "--armor", "--detach-sign"])
                    .arg(plain.join("repodata/repomd.xml")),
            )?;
            Ok(())
        });
        done?;
        t.push(secs);
    }
    println!(
        "{}",
        row(
            &format!("one new rpm into {n}, vs rpmsign+createrepo_c+gpg"),
            median(&o),
            median(&t),
            3
        )
    );
    Ok(())
}
