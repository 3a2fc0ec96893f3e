//! apt's `Release` file: reading the indexes it names, adding `by-hash/` copies of them, and
//! marking it `Acquire-By-Hash: yes`, so that a client holding an older `InRelease` still finds
//! the indexes it names while the repository moves on.

use std::path::{Path, PathBuf};

use perestroika_config::release_index::IndexEntry;

/// The `Release` text with `Acquire-By-Hash: yes` among its header fields.
pub fn with_acquire_by_hash(release: &str) -> String {
    if release.lines().any(|l| l.starts_with("Acquire-By-Hash:")) {
        return release.to_owned();
    }
    let mut out = String::with_capacity(release.len() + 24);
    let mut added = false;
    for line in release.lines() {
        if !added
            && (line.starts_with("MD5Sum:")
                || line.starts_with("SHA1:")
                || line.starts_with("SHA256:"))
        {
            out.push_str("Acquire-By-Hash: yes\n");
            added = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !added {
        out.push_str("Acquire-By-Hash: yes\n");
    }
    out
}

/// Where the by-hash copy of an index lives: `<dir of index>/by-hash/SHA256/<sum>`.
pub fn by_hash_path(suite_dir: &Path, entry: &IndexEntry) -> PathBuf {
    let index = suite_dir.join(&entry.path);
    index
        .parent()
        .unwrap_or(suite_dir)
        .join("by-hash/SHA256")
        .join(&entry.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use perestroika_config::release_index::sha256_entries;

    const RELEASE: &str = "Origin: acme\nCodename: bookworm\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nArchitectures: amd64 source\nMD5Sum:\n 0123 10 main/binary-amd64/Packages\nSHA256:\n aaaa 10 main/binary-amd64/Packages\n bbbb 7 main/binary-amd64/Packages.xz\n cccc 5 main/debian-installer/binary-amd64/Packages\n";

    #[test]
    fn reads_the_sha256_section_only() {
        let entries = sha256_entries(RELEASE);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].path, "main/binary-amd64/Packages.xz");
        assert_eq!(entries[1].size, 7);
        assert_eq!(
            by_hash_path(Path::new("/d"), &entries[2]),
            Path::new("/d/main/debian-installer/binary-amd64/by-hash/SHA256/cccc")
        );
    }

    #[test]
    fn marks_acquire_by_hash_once_among_the_header_fields() {
        let marked = with_acquire_by_hash(RELEASE);
        assert!(marked.contains("Architectures: amd64 source\nAcquire-By-Hash: yes\nMD5Sum:\n"));
        assert_eq!(with_acquire_by_hash(&marked), marked);
    }
}
