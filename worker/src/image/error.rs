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
    #[error("the registry {registry} has no base image of {distro}; push one with `perestroika-worker image build --distro {distro}` (or `image push`) on the host that makes images")]
    NotInRegistry { registry: String, distro: String },
    #[error("cannot resolve the base image of {distro} at the registry {registry} ({detail}), and this worker has resolved none before; the job waits until the registry answers")]
    Unresolved {
        registry: String,
        distro: String,
        detail: String,
    },
    #[error("cannot pull the base image {reference}: {detail}; the job waits until it can be pulled (it never builds on another base)")]
    Pull { reference: String, detail: String },
    #[error("cannot push to {repository}: {detail}; a registry on another host needs TLS or the engine's insecure-registries")]
    Push { repository: String, detail: String },
    #[error("{reference} is not a base image of {distro} of this worker's recipe")]
    NotABase { reference: String, distro: String },
    #[error("{distro} is pinned to the base {digest}, but no [images] registry is configured to pull it from")]
    PinWithoutRegistry { distro: String, digest: String },
}

/// Turns Docker's error about `what` into an [`ImageError::Docker`].
pub(super) fn docker_err(
    what: impl Into<String>,
) -> impl FnOnce(bollard::errors::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Docker { what, source }
}
