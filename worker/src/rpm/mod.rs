//! rpm packages: the input laid out as a spec with its sources, or a source rpm ([`source`]),
//! and the rpm steps inside the build container, the way mock runs them ([`steps`]).

pub mod source;
pub mod steps;

pub use source::{PreparedRpm, RpmSourceError};
