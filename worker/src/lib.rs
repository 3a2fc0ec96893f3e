//! The worker: builds packages from git in a fresh, unprivileged container per build.
//!
//! - [`build`]: one build, from input to artifacts, whatever its family;
//! - [`steps`]: what every family's steps in the container share (the request, the build
//!   environment, failures, input, build dependencies, results);
//! - [`deb`] and [`rpm`]: each family's sources and steps;
//! - [`source`]: the sources before any family's rules (git mirrors, archives, input);
//! - [`container`]: the build container, its log, the package cache relay, build roots;
//! - [`image`]: base images and how they are bootstrapped;
//! - [`farm`]: farm mode (intake, leases, hand-over to the publisher, cleanup at start);
//! - [`local`]: a build asked for on the command line;
//! - [`preflight`]: what `check` and `run` verify first;
//! - [`rebuild`]: rebuilding a published release from its snapshot;
//! - [`rebuild_release`]: `rebuild-release`, every package of a snapshot rebuilt and reported.

pub mod build;
pub mod container;
pub mod deb;
pub mod farm;
pub mod image;
pub mod local;
pub mod preflight;
pub(crate) mod process;
pub mod rebuild;
pub mod rebuild_release;
pub mod rpm;
pub mod source;
pub mod steps;
pub mod version;

/// The path [`rebuild`] reads source rpms' headers by.
pub use rpm::source as rpm_source;
