//! Debian packages: the input laid out as a source tree with the farm's changelog entry and
//! its upstream tarball, or a `.dsc` with its files ([`source`], reading [`changelog`] and
//! [`dsc`]), and the deb steps inside the build container ([`steps`]).

pub mod changelog;
pub mod dsc;
pub mod source;
pub mod steps;

pub use source::{DebSourceError, PreparedSource};
