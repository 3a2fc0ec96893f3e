//! Promotion: the exact published files of one source package (its source and every binary
//! built from it) copied from one suite of a release to another — the same bytes, never a
//! rebuild — then the release is re-signed and switched like any publish.
//!
//! Before copying, the promoted packages' runtime and build relations are judged against the
//! target suite as a client sees it: the release suite, the target suite and the promoted
//! packages themselves. Only names the release itself publishes (in any suite) are judged; the
//! rest come from the base distribution, which the publisher does not index.
//!
//! - `apply`: the promotion itself — select, judge, copy, re-index and switch;
//! - `deb_selection`, `rpm_selection`: the files of one source package in a suite, and what
//!   their relations leave unsatisfied in the target suite;
//! - `refusal`: where the package is when it is not in the `from` suite, and what to do.

mod apply;
mod deb_selection;
mod refusal;
mod rpm_selection;

pub use apply::Promoted;
