//! The benchmarks' inputs, made once and kept: many small debs and rpms.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use perestroika_tests::apt::make_deb;
use perestroika_tests::try_sh;

/// `n` + 3 small debs `bench<i>_1.0_all.deb` in `root/debs-<n>` (the last three are the ones
/// a benchmark adds one at a time), made with dpkg-deb in parallel and kept.
pub fn debs(root: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let dir = root.join(format!("debs-{n}"));
    let path = |i: usize| dir.join(format!("bench{i}_1.0_all.deb"));
    if !dir.join(".complete").exists() {
        println!(
            "bench: generating {n} small packages with dpkg-deb (kept in {})",
            dir.display()
        );
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for w in 0..workers {
                let dir = &dir;
                s.spawn(move || {
                    for i in (w..n + 3).step_by(workers) {
                        let made =
                            make_deb(dir, &format!("bench{i}"), "1.0", false, &i.to_string());
                        assert_eq!(made, path(i), "make_deb names its file as apt does");
                        let tree = dir.join(format!("bench{i}-1.0-{i}"));
                        fs_err::remove_dir_all(tree).expect("make_deb's tree");
                    }
                });
            }
        });
        fs_err::write(dir.join(".complete"), "")?;
    }
    Ok((0..n + 3).map(path).collect())
}

/// `n` + 3 small noarch rpms `rb<i>-1.0-1.noarch.rpm` in `root/rpms-<n>`, from one spec with
/// that many subpackages, kept.
pub fn rpms(root: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let dir = root.join(format!("rpms-{n}"));
    if !dir.join(".complete").exists() {
        let _ = fs_err::remove_dir_all(&dir);
        let top = dir.join("top");
        fs_err::create_dir_all(top.join("SPECS"))?;
        let mut spec = String::from(
            "Name: rbset\nVersion: 1.0\nRelease: 1\nSummary: set\nLicense: MIT\nBuildArch: noarch\n%description\nset\n",
        );
        for i in 0..n + 3 {
            spec.push_str(&format!(
                "%package -n rb{i}\nSummary: rb{i}\n%description -n rb{i}\nrb\n%files -n rb{i}\n"
            ));
        }
        let spec_file = top.join("SPECS/set.spec");
        fs_err::write(&spec_file, spec)?;
        try_sh(
            Command::new("rpmbuild")
                .args(["--quiet", "--define"])
                .arg(format!("_topdir {}", top.display()))
                .arg("-bb")
                .arg(&spec_file),
        )?;
        for entry in fs_err::read_dir(top.join("RPMS/noarch"))? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_owned();
            if name.to_string_lossy().starts_with("rb")
                && !name.to_string_lossy().starts_with("rbset")
            {
                fs_err::rename(&path, dir.join(name))?;
            }
        }
        fs_err::remove_dir_all(&top)?;
        fs_err::write(dir.join(".complete"), "")?;
    }
    Ok((0..n + 3)
        .map(|i| dir.join(format!("rb{i}-1.0-1.noarch.rpm")))
        .collect())
}
