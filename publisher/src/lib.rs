//! The publisher: signed deb and rpm repositories, switched live atomically.
//!
//! - [`publisher`]: the handle on the farm's trees, releases and keys that every operation
//!   takes; [`trees`]: the same without the keys (tree paths, locks, snapshots); [`error`]: why
//!   one did not happen;
//! - [`publish`]: packages included, a failed build's log, signatures refreshed, review
//!   repositories retired — each a new generation switched live ([`tree`]);
//! - [`promote`]: published files copied from one suite to another;
//! - [`retention`]: old generations pruned, shipped ones kept; [`snapshots`]: what there is;
//! - [`deb`] (reprepro), [`rpm`] (rpmsign, createrepo_c), [`history`] (every version in the
//!   deb indexes), [`release_file`], [`suite_contents`], [`links`]: the tools and files below;
//! - [`signing`] (gpgme) and [`keys`] (the keys the configuration names);
//! - [`farm`]: the queue consumer; [`staged`]: a worker's files taken as hostile input;
//!   [`fetch`]: those files pulled from a worker on another host;
//!   [`preflight`]: `check`; [`crash`]: crash points for the tests.

pub mod crash;
pub mod deb;
pub mod error;
pub mod farm;
pub mod fetch;
pub mod history;
pub mod keys;
pub mod links;
pub mod preflight;
pub mod promote;
pub mod publish;
pub mod publisher;
pub mod release_file;
pub mod retention;
pub mod rpm;
pub mod signing;
pub mod snapshots;
pub mod staged;
pub mod suite_contents;
pub mod tree;
#[cfg(test)]
mod tree_tests;
pub mod trees;
