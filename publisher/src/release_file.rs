//! apt's `Release` file: reading the indexes it names, adding `by-hash/` copies of them, and
//! marking it `Acquire-By-Hash: yes`, so that a client holding an older `InRelease` still finds
//! the indexes it names while the repository moves on; its `Date` and `Valid-Until`, so that a
//! client refuses a release frozen in an old state.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use perestroika_formats::deb822::{self, Deb822Error, Paragraph};
use perestroika_formats::release_index::IndexEntry;

/// How `Date` and `Valid-Until` are written (as reprepro and Debian's archive write them).
const DATE_FORMAT: &str = "%a, %d %b %Y %H:%M:%S UTC";

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text
        .trim()
        .trim_end_matches(" UTC")
        .trim_end_matches(" +0000");
    NaiveDateTime::parse_from_str(text, "%a, %d %b %Y %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// The `Valid-Until` of a `Release` text, if it has one (and is a `Release` at all).
pub fn valid_until(release: &str) -> Option<DateTime<Utc>> {
    deb822::parse_one(release)
        .ok()?
        .get("Valid-Until")
        .and_then(parse_date)
}

/// The fields without `Date` and `Valid-Until`: what stays the same when only the signing
/// time changes.
fn undated(release: &str) -> Option<Paragraph> {
    let mut p = deb822::parse_one(release).ok()?;
    p.remove("Date");
    p.remove("Valid-Until");
    Some(p)
}

/// `fresh` (a `Release` about to be signed) dated `now` and valid for `valid_for` — unless
/// `previous` (the same suite's signed `Release` in the live generation) says the same apart
/// from its dates and has more than half of its validity left: then `previous` as it is, so
/// that its signatures are kept. `Valid-Until` follows `Date` (both at the end without one).
pub fn dated(
    fresh: &str,
    previous: Option<&str>,
    valid_for: Duration,
    now: DateTime<Utc>,
) -> Result<String, Deb822Error> {
    let mut out = deb822::parse_one(fresh)?;
    if let Some(previous) = previous {
        let left = valid_until(previous).map(|until| until - now);
        let same = undated(previous).is_some_and(|p| Some(p) == undated(fresh));
        if same && left.is_some_and(|left| left > valid_for / 2) {
            return Ok(previous.to_owned());
        }
    }
    out.remove("Valid-Until");
    out.set("Date", now.format(DATE_FORMAT).to_string());
    out.set_after(
        "Valid-Until",
        (now + valid_for).format(DATE_FORMAT).to_string(),
        "Date",
    );
    Ok(out.to_string())
}

/// The `Release` text with `Acquire-By-Hash: yes` among its header fields (before the
/// checksum lists); unchanged when it says so already.
pub fn with_acquire_by_hash(release: &str) -> Result<String, Deb822Error> {
    let mut p = deb822::parse_one(release)?;
    if p.get("Acquire-By-Hash").is_some() {
        return Ok(release.to_owned());
    }
    p.set_before("Acquire-By-Hash", "yes", &["MD5Sum", "SHA1", "SHA256"]);
    Ok(p.to_string())
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

    #[test]
    fn release_dates() {
        let fresh = "Origin: acme 9.0\nCodename: bookworm\nDate: Wed, 02 Dec 2026 16:30:00 UTC\nArchitectures: amd64\nSHA256:\n abc 1 main/Packages\n";
        let now = "2026-12-03T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let week = Duration::days(7);
        let signed = dated(fresh, None, week, now).unwrap();
        assert!(
            signed.contains(
                "Date: Thu, 03 Dec 2026 00:00:00 UTC\nValid-Until: Thu, 10 Dec 2026 00:00:00 UTC\n"
            ),
            "{signed}"
        );
        assert_eq!(valid_until(&signed), Some(now + week));
        assert!(signed.ends_with(" abc 1 main/Packages\n"));
        // Unchanged and fresh enough: kept as it is (and its signatures with it).
        let later = now + Duration::days(3);
        assert_eq!(dated(fresh, Some(&signed), week, later).unwrap(), signed);
        // Past half of its validity: dated again.
        let late = now + Duration::days(4);
        assert_eq!(
            valid_until(&dated(fresh, Some(&signed), week, late).unwrap()),
            Some(late + week)
        );
        // Changed indexes: dated again.
        let changed = fresh.replace("abc", "def");
        assert_eq!(
            valid_until(&dated(&changed, Some(&signed), week, later).unwrap()),
            Some(later + week)
        );
        // Without a Date line, both are added.
        assert_eq!(
            valid_until(&dated("Origin: x\n", None, week, now).unwrap()),
            Some(now + week)
        );
        assert_eq!(valid_until("Origin: x\n"), None);
    }
    use perestroika_formats::release_index::sha256_entries;

    const RELEASE: &str = "Origin: acme\nCodename: bookworm\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nArchitectures: amd64 source\nMD5Sum:\n 0123 10 main/binary-amd64/Packages\nSHA256:\n aaaa 10 main/binary-amd64/Packages\n bbbb 7 main/binary-amd64/Packages.xz\n cccc 5 main/debian-installer/binary-amd64/Packages\n";

    #[test]
    fn reads_the_sha256_section_only() {
        let entries = sha256_entries(RELEASE).unwrap();
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
        let marked = with_acquire_by_hash(RELEASE).unwrap();
        assert!(marked.contains("Architectures: amd64 source\nAcquire-By-Hash: yes\nMD5Sum:\n"));
        assert_eq!(with_acquire_by_hash(&marked).unwrap(), marked);
        assert!(with_acquire_by_hash("no colon\n").is_err());
    }
}
