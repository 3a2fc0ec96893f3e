//! Suite names: `<distro>` for the release itself, `<distro>-<suite>` for `proposed`,
//! `updates`, `security` and the rest.

use std::path::Path;

/// The suite `suite` of `distro`: `<distro>` when `None`, else `<distro>-<suite>`.
pub fn suite_name(distro: &str, suite: Option<&str>) -> String {
    match suite {
        Some(s) => format!("{distro}-{s}"),
        None => distro.to_owned(),
    }
}

/// The suites of `distro` among the entries of `dir` (a generation's `deb/dists` or `rpm`):
/// `<distro>` and `<distro>-<suite>`, in directory order.
pub fn distro_suites(dir: &Path, distro: &str) -> Vec<String> {
    let prefix = format!("{distro}-");
    fs_err::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n == distro || n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(suite_name("bookworm", None), "bookworm");
        assert_eq!(
            suite_name("bookworm", Some("proposed")),
            "bookworm-proposed"
        );
    }

    #[test]
    fn suites_of_a_distro() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["bookworm", "bookworm-updates", "trixie", "bookwormish"] {
            fs_err::create_dir_all(dir.path().join(d)).unwrap();
        }
        let mut found = distro_suites(dir.path(), "bookworm");
        found.sort();
        assert_eq!(found, ["bookworm", "bookworm-updates"]);
        assert!(distro_suites(&dir.path().join("none"), "bookworm").is_empty());
    }
}
