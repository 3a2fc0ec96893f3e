//! apt's `Release` file as its readers need it: the index files its SHA256 section names.

/// An index file named in a `Release` file's SHA256 section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub sha256: String,
    pub size: u64,
    /// Path relative to the suite's directory (`main/binary-amd64/Packages.xz`).
    pub path: String,
}

/// The SHA256 entries of a `Release` file.
pub fn sha256_entries(release: &str) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_section = line.trim_end() == "SHA256:";
            continue;
        }
        if in_section {
            let mut parts = line.split_whitespace();
            if let (Some(sum), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next())
            {
                out.push(IndexEntry {
                    sha256: sum.to_owned(),
                    size: size.parse().unwrap_or(0),
                    path: path.to_owned(),
                });
            }
        }
    }
    out
}
