//! The sources' git repositories, fetched at their commits, and the archives made of them on
//! their way into a build's input.

use std::path::{Path, PathBuf};

use perestroika_protocol::messages::{GitSource, Sources};

use super::error::{io, SourceError};
use super::git::{GitCache, Repo};
use crate::version::Counts;

/// The repositories of git sources, fetched at their commits.
pub(crate) struct Fetched<'a> {
    pub code: &'a GitSource,
    pub packaging: &'a GitSource,
    pub code_repo: Repo,
    pub pkg_repo: Repo,
    split: bool,
}

impl<'a> Fetched<'a> {
    /// Fetches the code and packaging repositories (one repository when combined).
    pub fn fetch(sources: &'a Sources, git: &GitCache) -> Result<Self, SourceError> {
        let fetch = |s: &GitSource| -> Result<Repo, SourceError> {
            Ok(git.fetch(&s.url, &s.commit, s.fetch_ref.as_deref())?)
        };
        let (code, packaging, split) = match sources {
            Sources::Split { code, packaging } => (code, packaging, true),
            Sources::Combined { repo } => (repo, repo, false),
        };
        let code_repo = fetch(code)?;
        let pkg_repo = if split {
            fetch(packaging)?
        } else {
            code_repo.clone()
        };
        Ok(Self {
            code,
            packaging,
            code_repo,
            pkg_repo,
            split,
        })
    }

    /// Whether code and packaging live in two repositories.
    pub fn split(&self) -> bool {
        self.split
    }

    /// The commit counts the version rule uses.
    pub fn counts(&self) -> Result<Counts, SourceError> {
        Ok(if self.split {
            Counts::Split {
                code: self.code_repo.count(&self.code.commit)?,
                packaging: self.pkg_repo.count(&self.packaging.commit)?,
            }
        } else {
            Counts::Combined(self.code_repo.count(&self.code.commit)?)
        })
    }

    /// The newer commit time of the two: the build's SOURCE_DATE_EPOCH.
    pub fn time(&self) -> Result<i64, SourceError> {
        Ok(self
            .code_repo
            .time(&self.code.commit)?
            .max(self.pkg_repo.time(&self.packaging.commit)?))
    }
}

/// Where a build's git archives are written on their way to being unpacked, and how large
/// each may be.
pub(crate) struct Archives {
    pub dir: PathBuf,
    pub limit: u64,
}

impl Archives {
    /// Writes `repo`'s archive of `paths` at `commit` to `name` in the archives' directory.
    pub fn write(
        &self,
        repo: &Repo,
        commit: &str,
        (format, prefix): (&str, &str),
        paths: &[&str],
        name: &str,
    ) -> Result<PathBuf, SourceError> {
        let path = self.dir.join(name);
        let _ = fs_err::remove_file(&path);
        repo.archive_to(commit, format, prefix, paths, &path, self.limit)?;
        Ok(path)
    }

    /// Unpacks `repo`'s tar of `paths` at `commit` into `into`. Links are unpacked as links
    /// (the build sees them as the repository holds them); no entry lands outside `into`.
    pub fn unpack(
        &self,
        repo: &Repo,
        commit: &str,
        paths: &[&str],
        into: &Path,
    ) -> Result<(), SourceError> {
        let tar = self.write(repo, commit, ("tar", ""), paths, ".unpack.tar")?;
        fs_err::create_dir_all(into).map_err(io(into))?;
        let file = fs_err::File::open(&tar).map_err(io(&tar))?;
        let unpacked = tar::Archive::new(file).unpack(into).map_err(io(into));
        let _ = fs_err::remove_file(&tar);
        unpacked
    }
}
