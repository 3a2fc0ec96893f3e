//! Turning a build's input into what the build container unpacks: a source tree with the
//! farm's changelog entry and its upstream tarball, or a `.dsc` with its files.
//!
//! Upstream tarball convention for non-native packages built from git: the code repository's
//! tree at the code commit without its `debian/` directory, as
//! `<source>_<upstream version>.orig.tar.gz` with the top directory
//! `<source>-<upstream version>/`, made by `git archive` (so it is byte-identical every time).

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use perestroika_config::names::NameError;
use perestroika_config::settings::BuildSettings;
use perestroika_protocol::messages::Sources;
use rustix::fs::{Mode, OFlags};

use super::changelog::{farm_entry, parse_head, ChangelogError};
use super::dsc::{parse_dsc, DscError};
use crate::source::error::{io, SourceError};
use crate::source::fetch::{Archives, Fetched};
use crate::source::git::{GitCache, GitError};
use crate::source::tree::copy_tree;
use crate::source::SourceInput;
use crate::version::{farm_version, DebVersion};

/// Why a Debian source cannot be built (the build fails at step `source`), or could not be
/// had now ([`DebSourceError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub enum DebSourceError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: a source rpm cannot be built for a Debian distro")]
    SourceRpm { path: PathBuf },
    #[error("{project} at {commit} has no debian/changelog")]
    NoChangelog { project: String, commit: String },
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    /// `debian` or `debian/changelog` is a link (or not a directory and a file).
    #[error(
        "{what} is a symbolic link or not what it should be; the farm writes its changelog \
             entry there and follows no link in the sources"
    )]
    Link { what: &'static str },
    #[error("{path} is not a Debian source tree (no debian/changelog)")]
    NotATree { path: PathBuf },
    #[error("non-native package: expected its upstream tarball {stem}* in {dir}")]
    NoUpstreamTarball { stem: String, dir: PathBuf },
    #[error("{path}: {error}")]
    Dsc {
        path: PathBuf,
        #[source]
        error: DscError,
    },
    #[error(transparent)]
    Name(#[from] NameError),
}

impl DebSourceError {
    /// Whether the farm could not get the sources now rather than the sources being broken
    /// (see [`SourceError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, DebSourceError::Source(e) if e.is_transient())
    }
}

impl From<GitError> for DebSourceError {
    fn from(e: GitError) -> Self {
        DebSourceError::Source(e.into())
    }
}

/// The build input laid out in `dir/in/`, ready to be sent to the container.
#[derive(Debug, Clone)]
pub struct PreparedSource {
    pub source: String,
    pub version: String,
    /// `tree` or `dsc`, the layout `deb/prepare.sh` expects.
    pub layout: &'static str,
    /// With the `dsc` layout, the .dsc's file name.
    pub dsc: Option<String>,
    /// `-F` (source and binaries) or `-b` (binaries; the given source package is kept).
    pub build_type: &'static str,
    /// Where the input was laid out (its `in/` directory).
    pub dir: PathBuf,
}

/// Lays out the input under `work/in/`; git sources are bounded by `build.max_source_bytes`.
pub fn prepare(
    input: &SourceInput,
    distro: &str,
    git: &GitCache,
    settings: &BuildSettings,
    work: &Path,
) -> Result<PreparedSource, DebSourceError> {
    let dir = work.join("in");
    fs_err::create_dir_all(&dir).map_err(io(&dir))?;
    match input {
        SourceInput::Git {
            sources,
            rebuild,
            review,
        } => {
            let archives = Archives {
                dir: work.to_owned(),
                limit: settings.max_source_bytes,
            };
            from_git(sources, *rebuild, *review, distro, git, &archives, &dir)
        }
        SourceInput::Dir(path) => from_dir(path, &dir),
        SourceInput::Dsc(path) => from_dsc(path, &dir),
        SourceInput::Srpm(path) => Err(DebSourceError::SourceRpm { path: path.clone() }),
    }
}

/// Puts the farm's entry on top of `debian/changelog` in `tree` without following a link:
/// neither `debian` nor `debian/changelog` may be one (the worker writes as root on the host).
fn write_changelog(tree: &Path, text: &str) -> Result<(), DebSourceError> {
    use std::io::Write;
    let path = tree.join("debian/changelog");
    let open_err = |what: &'static str| {
        let path = &path;
        move |e: rustix::io::Errno| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => DebSourceError::Link { what },
            other => io(path)(other.into()).into(),
        }
    };
    let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let top = rustix::fs::open(
        tree,
        OFlags::RDONLY | OFlags::DIRECTORY | flags,
        Mode::empty(),
    )
    .map_err(|e| io(tree)(e.into()))?;
    let debian = rustix::fs::openat(
        &top,
        "debian",
        OFlags::RDONLY | OFlags::DIRECTORY | flags,
        Mode::empty(),
    )
    .map_err(open_err("debian"))?;
    let file = rustix::fs::openat(
        &debian,
        "changelog",
        OFlags::WRONLY | OFlags::NONBLOCK | flags,
        Mode::empty(),
    )
    .map_err(open_err("debian/changelog"))?;
    let stat = rustix::fs::fstat(&file).map_err(|e| io(&path)(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(DebSourceError::Link {
            what: "debian/changelog",
        });
    }
    rustix::fs::ftruncate(&file, 0).map_err(|e| io(&path)(e.into()))?;
    Ok(std::fs::File::from(file)
        .write_all(text.as_bytes())
        .map_err(io(&path))?)
}

fn is_native(format: Option<&str>, version: &DebVersion) -> bool {
    match format.map(str::trim) {
        Some(f) if f.contains("native") => true,
        Some(f) if f.contains("quilt") => false,
        _ => version.revision.is_none(),
    }
}

fn from_git(
    sources: &Sources,
    rebuild: u32,
    review: bool,
    distro: &str,
    git: &GitCache,
    archives: &Archives,
    dir: &Path,
) -> Result<PreparedSource, DebSourceError> {
    let fetched = Fetched::fetch(sources, git)?;
    let (code, packaging) = (fetched.code, fetched.packaging);
    let (code_repo, pkg_repo) = (&fetched.code_repo, &fetched.pkg_repo);
    let changelog = pkg_repo
        .read(&packaging.commit, "debian/changelog")?
        .ok_or_else(|| DebSourceError::NoChangelog {
            project: packaging.project.clone(),
            commit: packaging.commit.clone(),
        })?;
    let head = parse_head(&changelog)?;
    let format = pkg_repo.read(&packaging.commit, "debian/source/format")?;
    let native = is_native(format.as_deref(), &head.version);
    let version = farm_version(&head.version, native, fetched.counts()?, rebuild, review);
    let time = fetched.time()?;

    let tree = dir.join("tree");
    if native {
        archives.unpack(code_repo, &code.commit, &[], &tree)?;
    } else {
        // The plain tree first: sources beyond the limit are refused before anything is
        // compressed.
        let without_debian = [".", ":(exclude)debian"];
        archives.unpack(code_repo, &code.commit, &without_debian, &tree)?;
        let prefix = format!("{}-{}/", head.source, version.upstream);
        let orig_name = format!("{}_{}.orig.tar.gz", head.source, version.upstream);
        let orig = archives.write(
            code_repo,
            &code.commit,
            ("tar.gz", &prefix),
            &without_debian,
            &orig_name,
        )?;
        let orig_path = dir.join(&orig_name);
        fs_err::rename(&orig, &orig_path).map_err(io(&orig_path))?;
    }
    if fetched.split() || !native {
        let debian = tree.join("debian");
        match fs_err::symlink_metadata(&debian) {
            Ok(m) if m.is_dir() => fs_err::remove_dir_all(&debian).map_err(io(&debian))?,
            Ok(_) => fs_err::remove_file(&debian).map_err(io(&debian))?,
            Err(_) => {}
        }
        archives.unpack(pkg_repo, &packaging.commit, &["debian"], &tree)?;
    }

    let built_from: Vec<String> = sources
        .repos()
        .iter()
        .map(|r| format!("{} {}", r.project, r.commit))
        .collect();
    let date = Utc.timestamp_opt(time, 0).single().unwrap_or_else(Utc::now);
    let entry = farm_entry(&head.source, &version, distro, &built_from, date);
    write_changelog(&tree, &format!("{entry}{changelog}"))?;

    Ok(PreparedSource {
        source: head.source,
        version: version.to_string(),
        layout: "tree",
        dsc: None,
        build_type: "-F",
        dir: dir.to_owned(),
    })
}

fn from_dir(path: &Path, dir: &Path) -> Result<PreparedSource, DebSourceError> {
    let changelog_path = path.join("debian/changelog");
    let changelog =
        fs_err::read_to_string(&changelog_path).map_err(|_| DebSourceError::NotATree {
            path: path.to_owned(),
        })?;
    let head = parse_head(&changelog)?;
    let format = fs_err::read_to_string(path.join("debian/source/format")).ok();
    if !is_native(format.as_deref(), &head.version) {
        let parent = path.parent().unwrap_or(Path::new("."));
        let stem = format!("{}_{}.orig.tar.", head.source, head.version.upstream);
        let orig = fs_err::read_dir(parent)
            .map_err(io(parent))?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&stem))
            .ok_or_else(|| DebSourceError::NoUpstreamTarball {
                stem: stem.clone(),
                dir: parent.to_owned(),
            })?;
        let dst = dir.join(orig.file_name());
        fs_err::copy(orig.path(), &dst).map_err(io(&dst))?;
    }
    copy_tree(path, &dir.join("tree"))?;
    Ok(PreparedSource {
        source: head.source,
        version: head.version.to_string(),
        layout: "tree",
        dsc: None,
        build_type: "-F",
        dir: dir.to_owned(),
    })
}

fn from_dsc(path: &Path, dir: &Path) -> Result<PreparedSource, DebSourceError> {
    let text = fs_err::read_to_string(path).map_err(io(path))?;
    let (source, version, files) = parse_dsc(&text).map_err(|error| DebSourceError::Dsc {
        path: path.to_owned(),
        error,
    })?;
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    perestroika_config::names::check_file_name(&name)?;
    for f in files.iter().chain(std::iter::once(&name)) {
        let src = parent.join(f);
        fs_err::copy(&src, dir.join(f)).map_err(io(&src))?;
    }
    Ok(PreparedSource {
        source,
        version,
        layout: "dsc",
        dsc: Some(name),
        build_type: "-b",
        dir: dir.to_owned(),
    })
}
