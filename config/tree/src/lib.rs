//! The public tree's layout, in one place: what the publisher writes, the mirror copies, the
//! worker rebuilds from and the operator's tools read.
//!
//! ```text
//! <public root>/<customer>/<version>                    a release's tree, or
//! <public root>/<customer>/review/<change or topic>     a review repository's tree:
//!
//! <dir>/<name>             symlink to .<name>.gen/<N>: what clients read
//! <dir>/.<name>.gen/<N>/   generation N: KEY.asc, deb/dists, rpm/<suite>/<arch>/repodata,
//!                          snapshot.json — immutable once complete; every one is a snapshot
//! <dir>/.<name>.pool/      package files (deb/pool, rpm/<suite>/<arch>/Packages) and logs,
//!                          shared by all generations
//! ```
//!
//! Suites are `<distro>` and `<distro>-<suite>` ([`suite_name`]). Nothing here writes: the
//! publisher's writer and the mirror's sync build on these paths.

mod generation;
mod name;
mod public;
mod suites;

pub use generation::{Generation, GenerationDir};
pub use name::{TreeName, TreeNameError};
pub use public::{LiveError, PublicTree};
pub use suites::{distro_suites, suite_name};

/// The directory of a tree's generations, `.<name>.gen`, beside its link.
pub fn generations_dir_name(name: &str) -> String {
    format!(".{name}.gen")
}

/// Whether a directory's name is a tree's generations directory (`.<name>.gen`).
pub fn is_generations_dir_name(dir: &str) -> bool {
    dir.len() > ".gen".len() + 1 && dir.starts_with('.') && dir.ends_with(".gen")
}

/// The directory of a tree's shared pool, `.<name>.pool`, beside its link.
pub fn pool_dir_name(name: &str) -> String {
    format!(".{name}.pool")
}

/// What a tree's link holds when generation `n` is live: `.<name>.gen/<n>`, relative to the
/// link's own directory.
pub fn link_target(name: &str, n: Generation) -> std::path::PathBuf {
    std::path::Path::new(&generations_dir_name(name)).join(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names() {
        assert_eq!(generations_dir_name("9.0"), ".9.0.gen");
        assert_eq!(pool_dir_name("9.0"), ".9.0.pool");
        assert_eq!(
            link_target("12", Generation(3)),
            std::path::Path::new(".12.gen/3")
        );
        assert!(is_generations_dir_name(".9.0.gen"));
        for other in ["9.0", ".9.0.pool", "..gen", ".gen", "x.gen"] {
            assert!(!is_generations_dir_name(other), "{other}");
        }
    }
}
