//! rpm repositories: each `.rpm` signed with rpmsign (the publisher's keyring), kept in the
//! shared pool under `rpm/<suite>/<arch>/Packages/`, indexed with createrepo_c (`--update`),
//! and `repomd.xml` signed detached (`repomd.xml.asc`) through gpgme.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An rpm tool failed or a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    #[error("{tool} failed for {subject}: {detail}")]
    Tool {
        tool: &'static str,
        subject: String,
        detail: String,
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RpmError + '_ {
    move |source| RpmError::Io {
        path: path.to_owned(),
        source,
    }
}

fn run(tool: &'static str, subject: &str, cmd: &mut Command) -> Result<String, RpmError> {
    let out = cmd.output().map_err(|e| RpmError::Tool {
        tool,
        subject: subject.to_owned(),
        detail: e.to_string(),
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

/// The architecture an rpm file is built for (`noarch`, `x86_64`, `src`).
pub fn file_arch(path: &Path) -> Result<String, RpmError> {
    let name = path.display().to_string();
    let arch = run(
        "rpm",
        &name,
        Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", "%{ARCH}"])
            .arg(path),
    )?;
    let source = run(
        "rpm",
        &name,
        Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", "%{SOURCERPM}"])
            .arg(path),
    )?;
    Ok(if source.is_empty() || source == "(none)" {
        "src".into()
    } else {
        arch
    })
}

fn header_digest(path: &Path) -> Result<String, RpmError> {
    run(
        "rpm",
        &path.display().to_string(),
        Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", "%{SHA256HEADER}"])
            .arg(path),
    )
}

/// Signs `file` in place with rpmsign, using the keyring at `gnupg_home`.
pub fn sign(
    file: &Path,
    gnupg_home: &Path,
    fingerprint: &str,
    passphrase_file: Option<&Path>,
) -> Result<(), RpmError> {
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
    cmd.arg(file);
    run("rpmsign", &file.display().to_string(), &mut cmd).map(drop)
}

/// Places a signed copy of `file` in `packages/` (the shared pool). Idempotent: the same
/// package again is a no-op; a different one under the same name is refused.
pub fn add_to_pool(
    file: &Path,
    packages: &Path,
    gnupg_home: &Path,
    fingerprint: &str,
    passphrase_file: Option<&Path>,
) -> Result<bool, RpmError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = packages.join(&name);
    if dest.exists() {
        // Signing changes the file but not its header digest.
        if header_digest(&dest)? == header_digest(file)? {
            return Ok(false);
        }
        return Err(RpmError::Conflict { name });
    }
    fs_err::create_dir_all(packages).map_err(io(packages))?;
    let tmp = packages.join(format!(".{name}.tmp"));
    fs_err::copy(file, &tmp).map_err(io(&tmp))?;
    if let Err(e) = sign(&tmp, gnupg_home, fingerprint, passphrase_file) {
        let _ = fs_err::remove_file(&tmp);
        return Err(e);
    }
    fs_err::rename(&tmp, &dest).map_err(io(&dest))?;
    Ok(true)
}

/// Indexes `repo_root/Packages/*.rpm` with createrepo_c into `output/repodata`.
pub fn index(repo_root: &Path, output: &Path) -> Result<(), RpmError> {
    fs_err::create_dir_all(repo_root.join("Packages")).map_err(io(repo_root))?;
    fs_err::create_dir_all(output).map_err(io(output))?;
    let mut cmd = Command::new("createrepo_c");
    cmd.args(["--quiet", "--no-database", "--unique-md-filenames"]);
    if output.join("repodata/repomd.xml").is_file() {
        cmd.arg("--update");
    }
    cmd.arg("--outputdir").arg(output).arg(repo_root);
    run("createrepo_c", &repo_root.display().to_string(), &mut cmd).map(drop)
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
