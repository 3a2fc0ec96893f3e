//! Writing a file so that a reader, or a crash, sees the old content or the new, never part;
//! and making what was written survive a power loss (fsync) before anything points at it.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_renamed(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if durable => create_dir_durable(dir)?,
        Some(dir) => fs_err::create_dir_all(dir)?,
        None => {}
    }
    let tmp = temporary(path);
    let mut file = fs_err::File::create(&tmp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    fs_err::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if durable => sync_dir(dir),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it (creating the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, false)
}

/// Like [`write_atomic`], with the content on disk (fsync) before the rename and the rename
/// (and any directory created for it) on disk before returning: for state that must survive
/// a power loss.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, true)
}

/// An error of a system call on `path`, naming it.
fn at(path: &Path) -> impl FnOnce(rustix::io::Errno) -> std::io::Error + '_ {
    move |e| {
        let e = std::io::Error::from(e);
        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    }
}

/// Opens `name` (relative to `dir`, or absolute) without following a symlink in its last part.
fn open_nofollow(
    dir: impl AsFd,
    name: impl rustix::path::Arg,
    directory: bool,
) -> rustix::io::Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if directory {
        flags |= OFlags::DIRECTORY;
    }
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// Flushes a directory's entries (names created, renamed or removed in it) to disk: what makes
/// a rename or a new file in it survive a power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(dir))?;
    rustix::fs::fsync(fd).map_err(at(dir))
}

/// Flushes one regular file's content to disk (fsync), without following a symlink.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    let fd = open_nofollow(rustix::fs::CWD, path, false).map_err(at(path))?;
    rustix::fs::fsync(fd).map_err(at(path))
}

/// Creates the directory `path` with its missing ancestors, each new one made durable in its
/// parent (fsync of the parent), so that a power cut cannot lose a directory a later switch
/// points into.
pub fn create_dir_durable(path: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && fs_err::symlink_metadata(a).is_err())
        .collect();
    fs_err::create_dir_all(path)?;
    for dir in missing {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes the directory tree at `root` durable: every regular file's content and every
/// directory's entries are flushed to disk (fsync), deepest first and `root` last, so that
/// once it returns nothing in the tree can be lost to a power cut. Symlinks are never followed
/// (a link itself is an entry of its directory, flushed with it); other special files are left
/// alone. `root` itself must be a directory, not a link to one.
pub fn sync_tree(root: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(root))?;
    sync_dir_fd(fd, root)
}

/// [`sync_tree`] of the open directory `fd`, which is `path`.
fn sync_dir_fd(fd: OwnedFd, path: &Path) -> std::io::Result<()> {
    let dir = rustix::fs::Dir::read_from(&fd).map_err(at(path))?;
    for entry in dir {
        let entry = entry.map_err(at(path))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let child = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let kind = match entry.file_type() {
            FileType::Unknown => {
                let stat = rustix::fs::statat(&fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(at(&child))?;
                FileType::from_raw_mode(stat.st_mode)
            }
            kind => kind,
        };
        match kind {
            FileType::Directory => {
                let sub = open_nofollow(&fd, name, true).map_err(at(&child))?;
                sync_dir_fd(sub, &child)?;
            }
            FileType::RegularFile => {
                let file = open_nofollow(&fd, name, false).map_err(at(&child))?;
                rustix::fs::fsync(file).map_err(at(&child))?;
            }
            _ => {}
        }
    }
    rustix::fs::fsync(&fd).map_err(at(path))
}

/// Flushes everything written to the filesystem that holds `path` (syncfs(2)): one call for
/// many files written by another program, whose names are not known here.
pub fn sync_filesystem(path: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(at(path))?;
    rustix::fs::syncfs(fd).map_err(at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        write_durable(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"two");
        assert_eq!(fs_err::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn syncs_a_tree_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("gen");
        fs_err::create_dir_all(root.join("deb/dists/bookworm/main")).unwrap();
        fs_err::write(root.join("KEY.asc"), "key").unwrap();
        fs_err::write(root.join("deb/dists/bookworm/InRelease"), "signed").unwrap();
        // Followed, each of these would fail: a link to nowhere, a link to a directory that
        // holds a link to nowhere, a link climbing to the root's parent.
        std::os::unix::fs::symlink("../../nowhere", root.join("deb/pool")).unwrap();
        let outside = dir.path().join("outside");
        fs_err::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink("missing", outside.join("dangling")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("logs")).unwrap();
        std::os::unix::fs::symlink("..", root.join("deb/dists/up")).unwrap();
        sync_tree(&root).unwrap();
        sync_dir(&root.join("deb")).unwrap();
        sync_filesystem(&root).unwrap();
    }

    #[test]
    fn refuses_a_linked_or_missing_root_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs_err::create_dir_all(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = sync_tree(&link).unwrap_err();
        assert!(e.to_string().contains(&link.display().to_string()), "{e}");
        let missing = dir.path().join("missing");
        for e in [
            sync_tree(&missing).unwrap_err(),
            sync_dir(&missing).unwrap_err(),
            sync_filesystem(&missing).unwrap_err(),
        ] {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert!(
                e.to_string().contains(&missing.display().to_string()),
                "{e}"
            );
        }
        fs_err::write(real.join("file"), "").unwrap();
        assert!(
            sync_dir(&real.join("file")).is_err(),
            "a file is not a directory"
        );
        sync_file(&real.join("file")).unwrap();
        std::os::unix::fs::symlink(real.join("file"), dir.path().join("file-link")).unwrap();
        assert!(
            sync_file(&dir.path().join("file-link")).is_err(),
            "a link is not followed"
        );
    }

    #[test]
    fn creates_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&deep).unwrap();
    }
}
