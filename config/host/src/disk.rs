//! Free space on the filesystems the farm writes: a part takes no work that could fail midway
//! for want of space (`paths.min_free_bytes`).

use std::fmt;
use std::path::{Path, PathBuf};

/// A filesystem with less free space than the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowSpace {
    /// The path whose filesystem is short of space.
    pub path: PathBuf,
    /// Bytes available to the farm there (to an unprivileged writer).
    pub free: u64,
    /// The limit, `paths.min_free_bytes`.
    pub min_free: u64,
}

impl fmt::Display for LowSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} free, less than paths.min_free_bytes ({}); free space there or lower that limit",
            self.path.display(),
            human(self.free),
            human(self.min_free)
        )
    }
}

/// Bytes as people read them: `1.5 GiB`, `512.0 MiB`, `300 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Bytes available to an unprivileged writer on the filesystem holding `path` (the nearest
/// existing ancestor when `path` is not made yet).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = rustix::fs::statvfs(existing).map_err(std::io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether the filesystem holding `path` has less than `min_free` bytes free: `Some` with
/// what is free when it has (the caller should take no work that writes there), `None` when
/// there is enough or `min_free` is 0 (the check is off). A filesystem that cannot be asked
/// counts as having enough: the write itself then reports the problem.
pub fn low_space(path: &Path, min_free: u64) -> Option<LowSpace> {
    if min_free == 0 {
        return None;
    }
    let free = free_bytes(path).ok()?;
    (free < min_free).then(|| LowSpace {
        path: path.to_owned(),
        free,
        min_free,
    })
}

/// The first of `paths` whose filesystem is short of `min_free` ([`low_space`]).
pub fn first_short<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
    min_free: u64,
) -> Option<LowSpace> {
    paths.into_iter().find_map(|p| low_space(p, min_free))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_above_the_free_space_is_low_and_says_where_and_which_key() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert_eq!(low_space(dir.path(), 0), None, "0 turns the check off");
        assert_eq!(low_space(dir.path(), 1), None);
        let low = low_space(dir.path(), u64::MAX).expect("no filesystem has 16 EiB free");
        assert_eq!(low.path, dir.path());
        assert!(low.free > 0 && low.free < u64::MAX);
        let message = low.to_string();
        assert!(message.contains("paths.min_free_bytes"), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        // A directory not made yet is judged by the filesystem it will be made on.
        assert!(low_space(&dir.path().join("not/yet"), u64::MAX).is_some());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(300), "300 B");
        assert_eq!(human(2 << 30), "2.0 GiB");
        assert_eq!(human(1536 << 20), "1.5 GiB");
    }
}
