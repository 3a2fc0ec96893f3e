//! The package formats the farm reads and writes: Debian and rpm versions and their ordering,
//! the farm's own version rule ([`build_version`]), package relations, deb822 paragraphs
//! ([`deb822`]: `Release`, `Packages`, `Sources`), repository indexes and rpm headers.

pub mod build_version;
pub mod deb822;
pub mod relations;
pub mod release_index;
pub mod rpm_header;
pub mod versions;
