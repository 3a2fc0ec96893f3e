//! What can go wrong with base images.

use perestroika_config::names::NameError;

/// Something went wrong with base images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("mmdebstrap failed for {distro} (exit {code}): {tail}")]
    Bootstrap {
        distro: String,
        code: i32,
        tail: String,
    },
    #[error("Docker: {what}: {source}")]
    Docker {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("no base image for {distro}; make one with `perestroika-worker image build --distro {distro}` (add --rpm for an rpm distro)")]
    Missing { distro: String },
    #[error("bootstrapping the {distro} root with dnf failed: {detail}")]
    Dnf { distro: String, detail: String },
    #[error(transparent)]
    Distro(#[from] NameError),
    #[error("cannot tell the host's Debian release (no VERSION_CODENAME in /etc/os-release)")]
    HostRelease,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Turns Docker's error about `what` into an [`ImageError::Docker`].
pub(super) fn docker_err(
    what: impl Into<String>,
) -> impl FnOnce(bollard::errors::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Docker { what, source }
}
