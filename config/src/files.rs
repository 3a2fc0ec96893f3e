//! Writing a file so that a reader, or a crash, sees the old content or the new, never part.

use std::io::Write;
use std::path::{Path, PathBuf};

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_renamed(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let tmp = temporary(path);
    let mut file = fs_err::File::create(&tmp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    fs_err::rename(&tmp, path)
}

/// Writes `bytes` to `path` through a temporary file renamed over it (creating the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, false)
}

/// Like [`write_atomic`], with the content on disk (fsync) before the rename: for state that
/// must survive a power loss.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, true)
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
}
