//! Files shared between generations and the pool: hard links where possible, copies where not.

use std::path::Path;

use crate::error::{io, PublishError};

/// Links `from` to `to` (its directory made first), or copies it where linking is not
/// possible.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> Result<(), PublishError> {
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).map_err(io(parent))?;
    }
    if fs_err::hard_link(from, to).is_err() {
        fs_err::copy(from, to).map_err(io(to))?;
    }
    Ok(())
}

/// [`link_or_copy`] into the pool: the new name (and a copy's content) on disk before a
/// generation naming it can be switched live.
pub(crate) fn link_or_copy_durable(from: &Path, to: &Path) -> Result<(), PublishError> {
    use perestroika_host::files::{create_dir_durable, sync_dir, sync_file};
    if let Some(parent) = to.parent() {
        create_dir_durable(parent).map_err(io(parent))?;
    }
    link_or_copy(from, to)?;
    sync_file(to).map_err(io(to))?;
    let dir = to.parent().expect("a file in a directory");
    sync_dir(dir).map_err(io(dir))
}

/// Links (or copies) every file below `from` into the same place below `to`.
pub(crate) fn link_dir(from: &Path, to: &Path) -> Result<(), PublishError> {
    fs_err::create_dir_all(to).map_err(io(to))?;
    for entry in fs_err::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io(&src))?.is_dir() {
            link_dir(&src, &dst)?;
        } else if fs_err::hard_link(&src, &dst).is_err() {
            // reprepro and the history step replace indexes by renaming new files over them,
            // so a generation can share the inode; a copy where linking is not possible.
            fs_err::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}
