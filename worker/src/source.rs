//! Turning a build's input into what the build container unpacks: a source tree with the
//! farm's changelog entry and its upstream tarball, or a `.dsc` with its files.
//!
//! Upstream tarball convention for non-native packages built from git: the code repository's
//! tree at the code commit without its `debian/` directory, as
//! `<source>_<upstream version>.orig.tar.gz` with the top directory
//! `<source>-<upstream version>/`, made by `git archive` (so it is byte-identical every time).

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use perestroika_config::settings::BuildSettings;
use perestroika_protocol::messages::{GitSource, Sources};
use rustix::fs::{Mode, OFlags};

use crate::changelog::{farm_entry, parse_head};
use crate::git::{GitCache, GitError, Repo};
use crate::version::{farm_version, Counts, DebVersion};

/// What went wrong with the sources (the build fails at step `source`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    /// Whether the farm could not get the sources now (their host unreachable, a full disk)
    /// rather than the sources being broken: the job is tried again later, and nothing is
    /// said about the change.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Git(e) => e.is_transient(),
            SourceError::Invalid(_) => false,
            SourceError::Io { source, .. } => is_resource_shortage(source),
        }
    }
}

/// Whether an I/O error is the host running short (space, quota, memory, files) rather than
/// something about the file.
pub fn is_resource_shortage(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    [
        Errno::NOSPC,
        Errno::DQUOT,
        Errno::NOMEM,
        Errno::MFILE,
        Errno::NFILE,
        Errno::IO,
    ]
    .iter()
    .any(|errno| errno.raw_os_error() == code)
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a build starts from.
#[derive(Debug, Clone)]
pub enum SourceInput {
    /// Code and packaging at exact commits, with the job's rebuild number; `review` for a
    /// review build (whose rebuild number is its patch set).
    Git {
        sources: Box<Sources>,
        rebuild: u32,
        review: bool,
    },
    /// An unpacked source tree on this machine (version taken as is).
    Dir(PathBuf),
    /// A source package on this machine (version taken as is).
    Dsc(PathBuf),
    /// A source rpm on this machine (version taken as is).
    Srpm(PathBuf),
}

/// The build input laid out in `dir/in/`, ready to be sent to the container.
#[derive(Debug, Clone)]
pub struct PreparedSource {
    pub source: String,
    pub version: String,
    /// `tree` or `dsc`, the layout `prepare.sh` expects.
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
) -> Result<PreparedSource, SourceError> {
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
        SourceInput::Srpm(path) => Err(SourceError::Invalid(format!(
            "{}: a source rpm cannot be built for a Debian distro",
            path.display()
        ))),
    }
}

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

/// Puts the farm's entry on top of `debian/changelog` in `tree` without following a link:
/// neither `debian` nor `debian/changelog` may be one (the worker writes as root on the host).
fn write_changelog(tree: &Path, text: &str) -> Result<(), SourceError> {
    use std::io::Write;
    let path = tree.join("debian/changelog");
    let refused = |what: &str| {
        SourceError::Invalid(format!(
            "{what} is a symbolic link or not what it should be; the farm writes its changelog \
             entry there and follows no link in the sources"
        ))
    };
    let open_err = |what: &'static str| {
        let path = &path;
        move |e: rustix::io::Errno| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => refused(what),
            other => io(path)(other.into()),
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
        return Err(refused("debian/changelog"));
    }
    rustix::fs::ftruncate(&file, 0).map_err(|e| io(&path)(e.into()))?;
    std::fs::File::from(file)
        .write_all(text.as_bytes())
        .map_err(io(&path))
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
) -> Result<PreparedSource, SourceError> {
    let fetched = Fetched::fetch(sources, git)?;
    let (code, packaging) = (fetched.code, fetched.packaging);
    let (code_repo, pkg_repo) = (&fetched.code_repo, &fetched.pkg_repo);
    let changelog = pkg_repo
        .read(&packaging.commit, "debian/changelog")?
        .ok_or_else(|| {
            SourceError::Invalid(format!(
                "{} at {} has no debian/changelog",
                packaging.project, packaging.commit
            ))
        })?;
    let head = parse_head(&changelog).map_err(SourceError::Invalid)?;
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

pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), SourceError> {
    fs_err::create_dir_all(to).map_err(io(to))?;
    for entry in fs_err::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = fs_err::read_link(&src).map_err(io(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io(&dst))?;
        } else {
            fs_err::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

fn from_dir(path: &Path, dir: &Path) -> Result<PreparedSource, SourceError> {
    let changelog_path = path.join("debian/changelog");
    let changelog = fs_err::read_to_string(&changelog_path).map_err(|_| {
        SourceError::Invalid(format!(
            "{} is not a Debian source tree (no debian/changelog)",
            path.display()
        ))
    })?;
    let head = parse_head(&changelog).map_err(SourceError::Invalid)?;
    let format = fs_err::read_to_string(path.join("debian/source/format")).ok();
    if !is_native(format.as_deref(), &head.version) {
        let parent = path.parent().unwrap_or(Path::new("."));
        let stem = format!("{}_{}.orig.tar.", head.source, head.version.upstream);
        let orig = fs_err::read_dir(parent)
            .map_err(io(parent))?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&stem))
            .ok_or_else(|| {
                SourceError::Invalid(format!(
                    "non-native package: expected its upstream tarball {stem}* in {}",
                    parent.display()
                ))
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

/// The fields of a .dsc the worker needs.
fn parse_dsc(text: &str) -> Result<(String, String, Vec<String>), String> {
    let mut source = None;
    let mut version = None;
    let mut files = Vec::new();
    let mut in_files = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
        if let Some(rest) = line.strip_prefix(' ') {
            if in_files {
                if let Some(name) = rest.split_whitespace().nth(2) {
                    files.push(name.to_owned());
                }
            }
            continue;
        }
        in_files = false;
        if let Some((key, value)) = line.split_once(':') {
            match key {
                "Source" => source = Some(value.trim().to_owned()),
                "Version" => version = Some(value.trim().to_owned()),
                "Files" => in_files = true,
                _ => {}
            }
        }
    }
    let source = source.ok_or("no Source field")?;
    let version = version.ok_or("no Version field")?;
    perestroika_config::names::check_token("source package", &source).map_err(|e| e.to_string())?;
    DebVersion::parse(&version)
        .ok_or_else(|| format!("Version {version:?} is not a Debian version"))?;
    for f in &files {
        perestroika_config::names::check_file_name(f).map_err(|e| e.to_string())?;
    }
    if files.is_empty() {
        return Err("no Files field".into());
    }
    Ok((source, version, files))
}

fn from_dsc(path: &Path, dir: &Path) -> Result<PreparedSource, SourceError> {
    let text = fs_err::read_to_string(path).map_err(io(path))?;
    let (source, version, files) =
        parse_dsc(&text).map_err(|e| SourceError::Invalid(format!("{}: {e}", path.display())))?;
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    perestroika_config::names::check_file_name(&name)
        .map_err(|e| SourceError::Invalid(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsc_fields() {
        let dsc = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nFormat: 3.0 (quilt)\nSource: hello\nVersion: 2.10-3\nFiles:\n 6cd0ffea3884a4e79330338dcc2987d6 725946 hello_2.10.orig.tar.gz\n e5ca2 12688 hello_2.10-3.debian.tar.xz\nChecksums-Sha256:\n abc 725946 hello_2.10.orig.tar.gz\n\n-----BEGIN PGP SIGNATURE-----\n x y z\n";
        let (s, v, f) = parse_dsc(dsc).unwrap();
        assert_eq!((s.as_str(), v.as_str()), ("hello", "2.10-3"));
        assert_eq!(f, ["hello_2.10.orig.tar.gz", "hello_2.10-3.debian.tar.xz"]);
        assert!(parse_dsc("Source: x\nVersion: 1\nFiles:\n a 1 ../../etc/passwd\n").is_err());
    }
}
