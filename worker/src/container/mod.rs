//! The build container and what it stands on: its life from creation to removal
//! ([`sandbox`]), the Docker engine and the containers a worker owns ([`docker`]), the build
//! log its commands write ([`buildlog`]), the package cache relay into it ([`relay`]) and the
//! overlay build roots its commands run in ([`rootfs`]).

pub mod buildlog;
pub mod docker;
pub mod error;
pub mod relay;
pub mod rootfs;
pub mod sandbox;

pub use docker::connect;
pub use error::SandboxError;
