//! Source trees on this machine, copied into a build's input.

use std::path::Path;

use super::error::{io, SourceError};

/// Copies the tree at `from` to `to`, links as links, without `.git`.
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
