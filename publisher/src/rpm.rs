//! rpm repositories: each `.rpm` signed with rpmsign (the publisher's keyring), kept in the
//! shared pool under `rpm/<suite>/<arch>/Packages/`, indexed with createrepo_c (`--update`),
//! and `repomd.xml` signed detached (`repomd.xml.asc`) through gpgme. rpmsign and
//! createrepo_c run with the deadline of `publish.command_timeout_secs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use perestroika_host::command::{self, CommandError, Deadline};

/// An rpm tool failed or a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    #[error("{tool} failed for {subject}: {detail}")]
    Tool {
        tool: &'static str,
        subject: String,
        detail: String,
    },
    /// A tool could not be started or did not finish in time.
    #[error("{tool} for {subject}: {source}")]
    Command {
        tool: &'static str,
        subject: String,
        #[source]
        source: CommandError,
    },
    #[error("{name} is already published with different content; the farm never replaces a published file")]
    Conflict { name: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RpmError {
    /// Whether a tool ran out of time (the farm could not do it now; the files may be fine).
    pub fn is_timeout(&self) -> bool {
        matches!(self, RpmError::Command { source, .. } if source.is_timeout())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RpmError + '_ {
    move |source| RpmError::Io {
        path: path.to_owned(),
        source,
    }
}

fn run(
    tool: &'static str,
    subject: &str,
    cmd: &mut Command,
    deadline: Deadline,
) -> Result<String, RpmError> {
    let out = command::output(cmd, deadline).map_err(|source| RpmError::Command {
        tool,
        subject: subject.to_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(RpmError::Tool {
            tool,
            subject: subject.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rpm architecture a Debian architecture name stands for.
pub fn rpm_arch(deb_arch: &str) -> &str {
    match deb_arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "i386" => "i686",
        "ppc64el" => "ppc64le",
        other => other,
    }
}

/// One query of many rpm files: a `--qf` format applied to each, one line per file.
fn query(files: &[&Path], format: &str) -> Result<Vec<String>, RpmError> {
    perestroika_formats::rpm_header::query(files, format).map_err(|e| RpmError::Tool {
        tool: "rpm",
        subject: e.subject,
        detail: e.detail,
    })
}

/// The architecture each rpm file is built for (`noarch`, `x86_64`, or `src` for a source rpm),
/// read from the files themselves.
pub fn file_arches(files: &[&Path]) -> Result<Vec<String>, RpmError> {
    files
        .iter()
        .map(|f| {
            perestroika_formats::rpm_header::architecture(f).map_err(|e| RpmError::Tool {
                tool: "rpm",
                subject: e.subject,
                detail: e.detail,
            })
        })
        .collect()
}

/// Signs files in place with one rpmsign run, using the keyring at `gnupg_home`.
pub fn sign(
    files: &[PathBuf],
    gnupg_home: &Path,
    fingerprint: &str,
    passphrase_file: Option<&Path>,
    deadline: Deadline,
) -> Result<(), RpmError> {
    if files.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("rpmsign");
    cmd.arg("--addsign")
        .arg("--define")
        .arg(format!("_gpg_name {fingerprint}"))
        .arg("--define")
        .arg(format!("_gpg_path {}", gnupg_home.display()))
        // Debian's rpm names gpg2, which bookworm does not have.
        .arg("--define")
        .arg("__gpg /usr/bin/gpg");
    if let Some(pass) = passphrase_file {
        cmd.arg("--define").arg(format!(
            "_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file {}",
            pass.display()
        ));
    }
    cmd.args(files);
    run(
        "rpmsign",
        &format!("{} files", files.len()),
        &mut cmd,
        deadline,
    )
    .map(drop)
}

/// Places signed copies of rpm files in pool directories: `(file, packages dir)` pairs,
/// durably (fsynced, with their directories). Idempotent: a package already there is skipped; a different one under the same name is
/// refused before anything is written. Returns how many were added.
pub fn add_to_pool(
    plan: &[(PathBuf, PathBuf)],
    gnupg_home: &Path,
    fingerprint: &str,
    passphrase_file: Option<&Path>,
    deadline: Deadline,
) -> Result<usize, RpmError> {
    let name = |f: &Path| {
        f.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let existing: Vec<(&PathBuf, PathBuf)> = plan
        .iter()
        .map(|(file, packages)| (file, packages.join(name(file))))
        .filter(|(_, dest)| dest.exists())
        .collect();
    // Signing changes a file but not its header digest.
    let theirs = query(
        &existing
            .iter()
            .map(|(_, d)| d.as_path())
            .collect::<Vec<_>>(),
        "%{SHA256HEADER}",
    )?;
    let ours = query(
        &existing
            .iter()
            .map(|(f, _)| f.as_path())
            .collect::<Vec<_>>(),
        "%{SHA256HEADER}",
    )?;
    for ((file, _), (a, b)) in existing.iter().zip(theirs.iter().zip(&ours)) {
        if a != b {
            return Err(RpmError::Conflict { name: name(file) });
        }
    }
    let mut moves = Vec::new();
    for (file, packages) in plan {
        let dest = packages.join(name(file));
        if dest.exists() || moves.iter().any(|(_, d)| d == &dest) {
            continue;
        }
        perestroika_host::files::create_dir_durable(packages).map_err(io(packages))?;
        let tmp = packages.join(format!(".{}.tmp", name(file)));
        fs_err::copy(file, &tmp).map_err(io(&tmp))?;
        moves.push((tmp, dest));
    }
    let tmps: Vec<PathBuf> = moves.iter().map(|(t, _)| t.clone()).collect();
    if let Err(e) = sign(&tmps, gnupg_home, fingerprint, passphrase_file, deadline) {
        for t in &tmps {
            let _ = fs_err::remove_file(t);
        }
        return Err(e);
    }
    // Durable before the generation naming them is switched live: each file signed, then its
    // directory once all are in place.
    let mut dirs = std::collections::BTreeSet::new();
    for (tmp, dest) in &moves {
        perestroika_host::files::sync_file(tmp).map_err(io(tmp))?;
        fs_err::rename(tmp, dest).map_err(io(dest))?;
        dirs.extend(dest.parent());
    }
    for dir in dirs {
        perestroika_host::files::sync_dir(dir).map_err(io(dir))?;
    }
    Ok(moves.len())
}

/// Indexes `repo_root/Packages/*.rpm` with createrepo_c into `output/repodata`.
pub fn index(repo_root: &Path, output: &Path, deadline: Deadline) -> Result<(), RpmError> {
    fs_err::create_dir_all(repo_root.join("Packages")).map_err(io(repo_root))?;
    fs_err::create_dir_all(output).map_err(io(output))?;
    let mut cmd = Command::new("createrepo_c");
    cmd.args(["--quiet", "--no-database", "--unique-md-filenames"]);
    if output.join("repodata/repomd.xml").is_file() {
        cmd.arg("--update");
    }
    cmd.arg("--outputdir").arg(output).arg(repo_root);
    run(
        "createrepo_c",
        &repo_root.display().to_string(),
        &mut cmd,
        deadline,
    )
    .map(drop)
}

/// The repodata files a `repomd.xml` names (`repodata/<file>`).
pub fn repomd_locations(repomd: &str) -> Vec<String> {
    repomd
        .split("<location href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_arches() {
        let repomd = r#"<repomd><data type="primary"><location href="repodata/abc-primary.xml.gz"/></data><data type="filelists"><location href="repodata/def-filelists.xml.gz"/></data></repomd>"#;
        assert_eq!(
            repomd_locations(repomd),
            [
                "repodata/abc-primary.xml.gz",
                "repodata/def-filelists.xml.gz"
            ]
        );
        assert_eq!(rpm_arch("amd64"), "x86_64");
        assert_eq!(rpm_arch("riscv64"), "riscv64");
    }
}
