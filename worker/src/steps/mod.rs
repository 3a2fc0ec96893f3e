//! What every family's steps in the build container share: what to build ([`request`]),
//! how builds run here ([`env`](mod@env)), how a step ends when it does not succeed
//! ([`failure`]), the input sent in ([`input`]), build dependencies ([`deps`]), and the build
//! with no network and its results ([`results`]). The steps themselves are each family's own.

pub mod deps;
pub mod env;
pub mod failure;
pub mod input;
pub mod remote;
pub mod request;
pub mod results;

pub use env::{cache_dir, farm_state, root_dirs, BuildEnv};
pub use failure::InfraError;
pub use request::{BuildRequest, DepRepo};
