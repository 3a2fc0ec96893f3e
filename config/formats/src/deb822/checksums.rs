//! The checksum lists of a `Release` file (`MD5Sum`, `SHA1`, `SHA256`, `SHA512`): one line per
//! index file, ` <sum> <size> <path relative to the suite>`.

use std::fmt;

use super::Paragraph;

/// One line of a checksum list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumEntry {
    /// The sum, in hex.
    pub sum: String,
    pub size: u64,
    /// Path relative to the suite's directory (`main/binary-amd64/Packages.xz`).
    pub path: String,
}

/// A checksum list's line is not `<sum> <size> <path>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checksum list {field}: line {line:?} is not <sum> <size> <path>")]
pub struct ChecksumError {
    pub field: String,
    pub line: String,
}

impl ChecksumEntry {
    /// The entries of the checksum list `field` (`SHA256`, say); empty when there is none.
    pub fn list(release: &Paragraph, field: &str) -> Result<Vec<Self>, ChecksumError> {
        let Some(value) = release.get(field) else {
            return Ok(Vec::new());
        };
        value
            .split('\n')
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let bad = || ChecksumError {
                    field: field.to_owned(),
                    line: line.to_owned(),
                };
                let mut parts = line.split_whitespace();
                let (Some(sum), Some(size), Some(path), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                let hex = !sum.is_empty() && sum.bytes().all(|b| b.is_ascii_hexdigit());
                let size = size.parse().ok().filter(|_| hex).ok_or_else(bad)?;
                Ok(Self {
                    sum: sum.to_owned(),
                    size,
                    path: path.to_owned(),
                })
            })
            .collect()
    }

    /// The value of a checksum list of `entries`, as [`Paragraph::set`] takes it.
    pub fn value(entries: &[Self]) -> String {
        entries.iter().map(|e| format!("\n{e}")).collect()
    }
}

/// The entry as its line in the list, without the leading space.
impl fmt::Display for ChecksumEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.sum, self.size, self.path)
    }
}
