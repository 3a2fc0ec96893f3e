//! The mirror: copies what the publisher switched live to mirror hosts with rsync, packages
//! first and indexes last, and serves a mirror tree over http and rsync.

pub mod daemon;
pub mod http;
pub mod live;
pub mod preflight;
pub mod rsync;
pub mod rsyncd;
pub mod selection;
pub mod status;
pub mod sync;
pub mod verify;
