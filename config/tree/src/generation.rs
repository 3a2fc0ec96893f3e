//! A generation's number and directory, and the repository paths inside it.

use std::fmt;
use std::path::{Path, PathBuf};

/// The number of one generation (snapshot) of a tree; the first is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(pub u64);

impl Generation {
    /// The number as it is carried in messages and records.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The generation a directory entry of `.<name>.gen` names: only a complete one (`<N>`),
    /// never an unfinished `<N>.tmp` or a `<N>.pruned` being removed.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        name.parse().ok().map(Self)
    }

    /// The one after this.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Generation {
    fn from(n: u64) -> Self {
        Self(n)
    }
}

/// The directory of one generation (or of anything laid out like one: a repository built
/// aside, a snapshot a rebuild reads), and the paths of its repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationDir(PathBuf);

impl GenerationDir {
    /// The generation (or look-alike) at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `deb/dists`, holding one directory per suite.
    pub fn deb_dists(&self) -> PathBuf {
        self.0.join(Self::DEB_DISTS)
    }

    /// `deb/dists/<suite>`.
    pub fn deb_suite(&self, suite: &str) -> PathBuf {
        self.deb_dists().join(suite)
    }

    /// `deb/dists/<suite>/Release`.
    pub fn deb_release(&self, suite: &str) -> PathBuf {
        self.deb_suite(suite).join("Release")
    }

    /// `deb/dists/<suite>/<component>/source/Sources` (read it with `.gz` or `.xz` beside).
    pub fn deb_sources(&self, suite: &str, component: &str) -> PathBuf {
        self.deb_suite(suite).join(component).join("source/Sources")
    }

    /// `rpm`, holding one directory per suite.
    pub fn rpm(&self) -> PathBuf {
        self.0.join("rpm")
    }

    /// `rpm/<suite>/<arch>` (`source` for source rpms), holding `repodata/`.
    pub fn rpm_repo(&self, suite: &str, arch: &str) -> PathBuf {
        self.rpm().join(suite).join(arch)
    }

    /// The snapshot's record, `snapshot.json`.
    pub fn record(&self) -> PathBuf {
        self.0.join("snapshot.json")
    }

    /// The release's public key, `KEY.asc`.
    pub fn key(&self) -> PathBuf {
        self.0.join("KEY.asc")
    }

    /// Every deb suite of the generation, as named by its `deb/dists` entries, sorted.
    pub fn deb_suites(&self) -> Vec<String> {
        subdirs(&self.deb_dists())
    }

    /// The components of deb suite `suite` (`main`, `restricted`, …), as named by its
    /// directories, sorted; none when the suite is not there.
    pub fn deb_components(&self, suite: &str) -> Vec<String> {
        subdirs(&self.deb_suite(suite))
    }

    /// Every `Sources` index of the generation: `(suite, component, path without extension)`.
    pub fn deb_source_indexes(&self) -> Vec<(String, String, PathBuf)> {
        let mut out = Vec::new();
        for suite in self.deb_suites() {
            for component in self.deb_components(&suite) {
                let path = self.deb_sources(&suite, &component);
                out.push((suite.clone(), component, path));
            }
        }
        out
    }

    /// `deb/dists` relative to a generation.
    pub const DEB_DISTS: &'static str = "deb/dists";
}

impl AsRef<Path> for GenerationDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// The names of the directories in `dir`, sorted; none when it cannot be read.
fn subdirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs_err::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_complete_generations_only() {
        assert_eq!(Generation::from_dir_name("12"), Some(Generation(12)));
        for other in ["12.tmp", "3.pruned", "", "x"] {
            assert_eq!(Generation::from_dir_name(other), None, "{other}");
        }
        assert_eq!(Generation(4).next(), Generation(5));
    }

    #[test]
    fn repository_paths() {
        let g = GenerationDir::new("/p/acme/.9.0.gen/3");
        assert_eq!(
            g.deb_release("bookworm-proposed"),
            Path::new("/p/acme/.9.0.gen/3/deb/dists/bookworm-proposed/Release")
        );
        assert_eq!(
            g.deb_sources("bookworm", "main"),
            Path::new("/p/acme/.9.0.gen/3/deb/dists/bookworm/main/source/Sources")
        );
        assert_eq!(
            g.rpm_repo("el9", "x86_64"),
            Path::new("/p/acme/.9.0.gen/3/rpm/el9/x86_64")
        );
        assert_eq!(g.record(), Path::new("/p/acme/.9.0.gen/3/snapshot.json"));
        assert_eq!(g.key(), Path::new("/p/acme/.9.0.gen/3/KEY.asc"));
    }

    #[test]
    fn lists_suites_and_source_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let g = GenerationDir::new(dir.path());
        assert!(g.deb_suites().is_empty());
        for d in [
            "bookworm/main/source",
            "bookworm/restricted",
            "bookworm-proposed/main",
        ] {
            fs_err::create_dir_all(g.deb_dists().join(d)).unwrap();
        }
        fs_err::write(g.deb_release("bookworm"), "").unwrap();
        assert_eq!(g.deb_suites(), ["bookworm", "bookworm-proposed"]);
        let found: Vec<(String, String)> = g
            .deb_source_indexes()
            .into_iter()
            .map(|(s, c, _)| (s, c))
            .collect();
        assert_eq!(
            found,
            [
                ("bookworm".into(), "main".into()),
                ("bookworm".into(), "restricted".into()),
                ("bookworm-proposed".into(), "main".into())
            ]
        );
    }
}
