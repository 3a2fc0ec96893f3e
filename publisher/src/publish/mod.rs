//! One publish: include the checked files, write the next generation of the public tree
//! (indexes with by-hash copies, signed `Release`, the public key), and switch it live.
//! Running the same publish twice changes nothing the second time.
//!
//! - [`include`](Publisher::publish): a build's packages into a suite;
//! - [`logs`](Publisher::publish_log): a failed build's log, in a generation of its own;
//! - [`refresh`](Publisher::refresh_signatures): a release's indexes signed again;
//! - [`retire`](Publisher::retire_review): a review repository taken down;
//! - `generation`, `deb_indexes`, `rpm_repos` and `signatures`: what each of them switches
//!   live.

mod deb_indexes;
mod generation;
mod include;
mod logs;
mod refresh;
mod retire;
mod rpm_repos;
mod signatures;

pub use generation::Published;
pub use include::PublishRequest;

#[cfg(doc)]
use crate::publisher::Publisher;
