//! The package formats the farm reads and writes: Debian and rpm versions and their ordering,
//! package relations, repository indexes and rpm headers.

pub mod relations;
pub mod release_index;
pub mod rpm_header;
pub mod versions;
