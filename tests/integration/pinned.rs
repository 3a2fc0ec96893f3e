//! Generated files pinned with `insta` snapshots: what a real run wrote, its volatile parts
//! (dates, hashes, sizes, key ids, temporary paths, unique names) filtered out. The upstream
//! tools still judge the same files in the tests that pin them; a snapshot catches a change
//! of shape they would accept. `cargo insta review` accepts a deliberate change.

/// Pins `text` as the snapshot `name` of the calling test module (its file
/// `snapshots/integration__<module>__<name>.snap`), with the volatile parts filtered.
macro_rules! pin {
    ($name:expr, $text:expr) => {
        $crate::pinned::settings().bind(|| insta::assert_snapshot!($name, $text))
    };
}
pub(crate) use pin;

/// The snapshot settings with [`FILTERS`].
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings
}

/// (regular expression, replacement), applied in order.
const FILTERS: &[(&str, &str)] = &[
    // Release files: dates, and the size beside each checksum.
    (r"(?m)^(Date|Valid-Until): .*$", "$1: [date]"),
    (r"(?m)^ [0-9a-f]{32,128} +\d+ ", " [hash] [size] "),
    // Packages and Sources: checksums and sizes of the package files.
    (r"(?m)^(MD5sum|SHA1|SHA256|SHA512|Size): .*$", "$1: [$1]"),
    // repomd.xml: checksums, sizes, times and the revision.
    (
        r#"<(checksum|open-checksum|header-checksum) type="(\w+)">[0-9a-f]+<"#,
        "<$1 type=\"$2\">[hash]<",
    ),
    (
        r"<(size|open-size|header-size|timestamp|revision)>\d+<",
        "<$1>[$1]<",
    ),
    (r#"href="repodata/[0-9a-f]{64}-"#, "href=\"repodata/[hash]-"),
    // JSON records: times, checksums, sizes, image ids.
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[time]",
    ),
    (
        r#""(sha256|image_id)": ?"(sha256:)?[0-9a-f]{64}""#,
        "\"$1\": \"[hash]\"",
    ),
    (r#""size": ?\d+"#, "\"size\": \"[size]\""),
    (r#""(job_id|worker)": ?"[^"]*""#, "\"$1\": \"[$1]\""),
    // Anything else that is a hash or a key id.
    (r"\b[0-9a-f]{64}\b", "[hash]"),
    (r"\b[0-9A-F]{40}\b", "[fingerprint]"),
    (r"\b[0-9A-F]{16}\b", "[key id]"),
    // Temporary directories and the tests' unique names (customers, jobs).
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[tmp]"),
    (r"\b(c|job)\d+x\d+\b", "[$1]"),
];
