//! Debian roots, made with mmdebstrap from the host's own mirror ([`super::apt_sources`]): a
//! build root of a Debian distro, or an rpm build root with Debian's rpm and dnf for farms that
//! cannot reach an rpm distribution's mirror.

use std::path::Path;
use std::process::Stdio;

use super::apt_sources::{host_codename, HostMirrors};
use super::bootstrap::{run_streaming, PACKAGE_LIST};
use super::error::ImageError;

/// Packages every base image holds beyond mmdebstrap's buildd variant (fakeroot for packages
/// that do not declare `Rules-Requires-Root: no`).
const EXTRA_PACKAGES: &str = "ca-certificates,fakeroot";
/// Debian packages an rpm build image made from a Debian root holds beyond the buildd variant.
const RPM_ON_DEBIAN_PACKAGES: &str = "rpm,dnf,dnf-plugins-core,createrepo-c,file";
/// Run chrooted in that root: makes the Debian packages visible to rpm (see the script).
const RPM_ON_DEBIAN: &str = include_str!("../../scripts/image/rpm-on-debian.sh");

/// A Debian root of `distro` into `tarball`; its package list is copied out to `scratch`.
pub(super) async fn debian_root(
    distro: &str,
    scratch: &Path,
    tarball: &Path,
) -> Result<(), ImageError> {
    mmdebstrap(distro, distro, &[], scratch, tarball).await
}

/// An rpm build root for `distro` made from a Debian root of the host's own release into
/// `tarball`; its package list is copied out to `scratch`.
pub(super) async fn rpm_on_debian(
    distro: &str,
    scratch: &Path,
    tarball: &Path,
) -> Result<(), ImageError> {
    let debian = host_codename().ok_or(ImageError::HostRelease)?;
    let script = scratch.join(format!("rpm-on-debian.{}.sh", std::process::id()));
    fs_err::write(&script, RPM_ON_DEBIAN)?;
    let extra = [
        format!("--include={RPM_ON_DEBIAN_PACKAGES}"),
        format!(
            "--customize-hook=upload {} /tmp/rpm-on-debian.sh",
            script.display()
        ),
        format!("--customize-hook=chroot \"$1\" sh /tmp/rpm-on-debian.sh {distro}"),
        "--customize-hook=rm -f \"$1/tmp/rpm-on-debian.sh\"".to_owned(),
    ];
    let made = mmdebstrap(distro, &debian, &extra, scratch, tarball).await;
    let _ = fs_err::remove_file(&script);
    made
}

/// Runs mmdebstrap for a Debian root of `suite` into `tarball`, with `extra` options; the
/// package list is copied out to `scratch`.
async fn mmdebstrap(
    distro: &str,
    suite: &str,
    extra: &[String],
    scratch: &Path,
    tarball: &Path,
) -> Result<(), ImageError> {
    let mirrors = HostMirrors::from_host().lines_for(suite);
    let mut cmd = tokio::process::Command::new("mmdebstrap");
    cmd.arg("--variant=buildd")
        .arg(format!("--include={EXTRA_PACKAGES}"))
        .arg("--skip=cleanup/apt/lists")
        .arg("--customize-hook=chroot \"$1\" useradd --create-home --uid 1000 --user-group builder")
        .args(extra)
        .arg(format!(
            "--customize-hook=chroot \"$1\" dpkg-query -W -f='${{Package}} ${{Version}}\\n' | LC_ALL=C sort > \"$1{PACKAGE_LIST}\""
        ))
        .arg(format!("--customize-hook=copy-out {PACKAGE_LIST} {}", scratch.display()))
        .arg(suite)
        .arg(tarball)
        .args(&mirrors)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    tracing::info!(%distro, %suite, mirrors = %mirrors.join(" "), "bootstrapping a base root with mmdebstrap");
    if let Some((code, tail)) = run_streaming(&mut cmd).await? {
        let _ = fs_err::remove_file(tarball);
        return Err(ImageError::Bootstrap {
            distro: distro.to_owned(),
            code,
            tail,
        });
    }
    Ok(())
}
