//! The suites of a distro in a generation.

use std::path::Path;

/// The suites of `distro` in a generation's `deb/dists` or `rpm` directory: `<distro>` and
/// `<distro>-<suite>`.
pub(super) fn distro_suites(dir: &Path, distro: &str) -> Vec<String> {
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
