//! Turning a build's input into what an rpm build container unpacks.
//!
//! The spec is the one `*.spec` file in the packaging repository's `rpm/` directory, or else at
//! its top; every file beside it (patches, further sources) goes to rpmbuild's `SOURCES`. The
//! code repository at its commit goes along as a plain tar, from which the container makes
//! `Source0` — named as the spec says once rpm has parsed it there, with the top directory
//! `<Source0 without its extension>/`, deterministically (sorted, owner 0, every mtime the
//! commit time) — unless the packaging holds that file itself. The spec is parsed only inside
//! the container: parsing runs the spec's shell expansions.

use std::path::{Path, PathBuf};

use perestroika_config::names::NameError;
use perestroika_formats::rpm_header::QueryError;

use crate::source::error::{io, SourceError};
use crate::source::fetch::{Archives, Fetched};
use crate::source::git::{GitCache, GitError, Repo};
use crate::source::tree::copy_tree;
use crate::source::SourceInput;
use crate::version::rpm_release;

/// Why an rpm source cannot be built (the build fails at step `source`), or could not be had
/// now ([`RpmSourceError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub enum RpmSourceError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// What is wrong with the packaging's spec, in `place` (a project at a commit, or a
    /// directory).
    #[error("{place}: {problem}")]
    Spec {
        place: String,
        #[source]
        problem: Box<SpecError>,
    },
    #[error("{path}: expected a source rpm (*.src.rpm)")]
    NotSourceRpm { path: PathBuf },
    #[error("{path}: a Debian source package cannot be built for an rpm distro")]
    Dsc { path: PathBuf },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("not a readable rpm: {0}")]
    Unreadable(#[source] QueryError),
}

impl RpmSourceError {
    /// Whether the farm could not get the sources now rather than the sources being broken
    /// (see [`SourceError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, RpmSourceError::Source(e) if e.is_transient())
    }
}

impl From<GitError> for RpmSourceError {
    fn from(e: GitError) -> Self {
        RpmSourceError::Source(e.into())
    }
}

/// What is wrong with where the spec should be.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{count} specs in {dir}: {names}; keep one")]
    Many {
        count: usize,
        dir: String,
        names: String,
    },
    #[error("no .spec file in rpm/ or at the top of the packaging")]
    Missing,
    #[error(transparent)]
    Name(#[from] NameError),
    /// git refused to list the packaging (a missing commit, say).
    #[error(transparent)]
    Git(GitError),
}

/// Where the spec lives in a packaging tree, tried in order.
const SPEC_DIRS: [&str; 2] = ["rpm", ""];

/// The rpm build input laid out in `dir/in/`, ready to be sent to the container.
#[derive(Debug, Clone)]
pub struct PreparedRpm {
    /// `tree` (in/SOURCES/ plus in/code.tar) or `srpm`, the layout `rpm/prepare.sh` expects.
    pub layout: &'static str,
    /// The spec's file name in in/SOURCES, or the source rpm's in in/.
    pub file: String,
    /// The farm's `Release:` (git builds), which the spec must use; `None` for local inputs
    /// (the macros then hold a source rpm's own release, or 0 for a directory).
    pub release: Option<String>,
    /// SOURCE_DATE_EPOCH (git builds: the newer commit time); `None` lets rpm take it from
    /// the spec's changelog.
    pub source_date_epoch: Option<i64>,
    /// Where the input was laid out (its `in/` directory).
    pub dir: PathBuf,
}

/// Lays out the input under `work/in/`.
pub fn prepare(
    input: &SourceInput,
    git: &GitCache,
    settings: &perestroika_config::settings::BuildSettings,
    work: &Path,
) -> Result<PreparedRpm, RpmSourceError> {
    let dir = work.join("in");
    fs_err::create_dir_all(&dir).map_err(io(&dir))?;
    match input {
        SourceInput::Git {
            sources, rebuild, ..
        } => {
            let fetched = Fetched::fetch(sources, git)?;
            let (spec_dir, spec) = find_spec_in_git(&fetched.pkg_repo, &fetched.packaging.commit)?
                .map_err(|problem| RpmSourceError::Spec {
                    place: format!(
                        "{} at {}",
                        fetched.packaging.project, fetched.packaging.commit
                    ),
                    problem: Box::new(problem),
                })?;
            let commit = &fetched.packaging.commit;
            let scratch = work.join("packaging");
            let paths: Vec<String> = fetched
                .pkg_repo
                .files(commit, &spec_dir)?
                .into_iter()
                .map(|f| join(&spec_dir, &f))
                .collect();
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            let archives = Archives {
                dir: work.to_owned(),
                limit: settings.max_source_bytes,
            };
            archives.unpack(&fetched.pkg_repo, commit, &paths, &scratch)?;
            let from = scratch.join(&spec_dir);
            let sources_dir = dir.join("SOURCES");
            fs_err::rename(&from, &sources_dir).map_err(io(&from))?;
            let code = archives.write(
                &fetched.code_repo,
                &fetched.code.commit,
                ("tar", ""),
                &[],
                "code.tar",
            )?;
            let code_tar = dir.join("code.tar");
            fs_err::rename(&code, &code_tar).map_err(io(&code_tar))?;
            Ok(PreparedRpm {
                layout: "tree",
                file: spec,
                release: Some(rpm_release(fetched.counts()?, *rebuild)),
                source_date_epoch: Some(fetched.time()?),
                dir,
            })
        }
        SourceInput::Dir(path) => {
            let (spec_dir, spec) =
                find_spec_in_dir(path).map_err(|problem| RpmSourceError::Spec {
                    place: path.display().to_string(),
                    problem: Box::new(problem),
                })?;
            let sources_dir = dir.join("SOURCES");
            fs_err::create_dir_all(&sources_dir).map_err(io(&sources_dir))?;
            let from = path.join(&spec_dir);
            for entry in fs_err::read_dir(&from).map_err(io(&from))? {
                let entry = entry.map_err(io(&from))?;
                if entry.file_type().map_err(io(&from))?.is_file() {
                    let dst = sources_dir.join(entry.file_name());
                    fs_err::copy(entry.path(), &dst).map_err(io(&dst))?;
                }
            }
            let code = work.join("code");
            copy_tree(path, &code)?;
            let mut tar = tar::Builder::new(Vec::new());
            tar.follow_symlinks(false);
            tar.append_dir_all(".", &code).map_err(io(&code))?;
            let code_tar = dir.join("code.tar");
            fs_err::write(&code_tar, tar.into_inner().map_err(io(&code))?)
                .map_err(io(&code_tar))?;
            Ok(PreparedRpm {
                layout: "tree",
                file: spec,
                release: None,
                source_date_epoch: None,
                dir,
            })
        }
        SourceInput::Srpm(path) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            perestroika_config::names::check_file_name(&name)?;
            if !name.ends_with(".src.rpm") {
                return Err(RpmSourceError::NotSourceRpm { path: path.clone() });
            }
            let dst = dir.join(&name);
            fs_err::copy(path, &dst).map_err(io(path))?;
            Ok(PreparedRpm {
                layout: "srpm",
                file: name,
                release: None,
                // A source rpm made with SOURCE_DATE_EPOCH records it as its build time: the
                // rebuild uses the same, so that it can be bit-identical.
                source_date_epoch: query(&dst, "%{BUILDTIME}")?.trim().parse().ok(),
                dir,
            })
        }
        SourceInput::Dsc(path) => Err(RpmSourceError::Dsc { path: path.clone() }),
    }
}

/// One header field of a package, read by the host's rpm (the header only).
pub fn query(package: &Path, format: &str) -> Result<String, RpmSourceError> {
    perestroika_formats::rpm_header::query(&[package], format)
        .map(|mut lines| lines.remove(0))
        .map_err(RpmSourceError::Unreadable)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The one spec among `files`, if there is exactly one.
fn only_spec(files: &[String], dir: &str) -> Result<Option<String>, SpecError> {
    let specs: Vec<&String> = files.iter().filter(|f| f.ends_with(".spec")).collect();
    match specs.as_slice() {
        [] => Ok(None),
        [one] => {
            perestroika_config::names::check_file_name(one)?;
            Ok(Some((*one).clone()))
        }
        many => Err(SpecError::Many {
            count: many.len(),
            dir: if dir.is_empty() {
                "the top directory".to_owned()
            } else {
                dir.to_owned()
            },
            names: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// (directory, spec file name) of the packaging at `commit`, or what is wrong with it; git
/// failing to answer is the outer error.
fn find_spec_in_git(
    repo: &Repo,
    commit: &str,
) -> Result<Result<(String, String), SpecError>, GitError> {
    for dir in SPEC_DIRS {
        let files = match repo.files(commit, dir) {
            Ok(files) => files,
            Err(e @ GitError::Failed { .. }) => return Ok(Err(SpecError::Git(e))),
            Err(e) => return Err(e),
        };
        match only_spec(&files, dir) {
            Ok(Some(spec)) => return Ok(Ok((dir.to_owned(), spec))),
            Ok(None) => {}
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Err(SpecError::Missing))
}

/// (directory, spec file name) of a packaging tree on this machine.
fn find_spec_in_dir(path: &Path) -> Result<(String, String), SpecError> {
    for dir in SPEC_DIRS {
        let Ok(entries) = fs_err::read_dir(path.join(dir)) else {
            continue;
        };
        let files: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if let Some(spec) = only_spec(&files, dir)? {
            return Ok((dir.to_owned(), spec));
        }
    }
    Err(SpecError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_found_in_rpm_before_the_top() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("top.spec"), "").unwrap();
        assert_eq!(
            find_spec_in_dir(dir.path()).unwrap(),
            ("".to_owned(), "top.spec".to_owned())
        );
        fs_err::create_dir(dir.path().join("rpm")).unwrap();
        fs_err::write(dir.path().join("rpm/pkg.spec"), "").unwrap();
        assert_eq!(
            find_spec_in_dir(dir.path()).unwrap(),
            ("rpm".to_owned(), "pkg.spec".to_owned())
        );
        fs_err::write(dir.path().join("rpm/other.spec"), "").unwrap();
        let err = find_spec_in_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("2 specs in rpm"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(find_spec_in_dir(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no .spec"));
    }
}
