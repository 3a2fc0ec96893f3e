//! The worker: builds packages from git in a fresh, unprivileged container per build.

pub mod apt_sources;
pub mod build;
pub mod buildlog;
pub mod changelog;
pub mod dnf_root;
pub mod farm;
pub mod git;
pub mod image;
pub mod intake;
pub mod lease;
pub mod preflight;
pub mod rebuild;
pub mod relay;
pub mod retention;
pub mod rootfs;
pub mod rpm_build;
pub mod rpm_source;
pub mod sandbox;
pub mod source;
pub mod version;
