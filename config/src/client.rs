//! How a client uses a tree the farm publishes: the one place the apt and dnf instructions
//! are made, for the feedback on Gerrit changes, `perestroika-queue client` and the demo.
//!
//! apt's `signed-by` takes a file (or a fingerprint), never a URL: the key is downloaded
//! first, and the sources line names the file it was saved as.

use crate::settings::FarmConfig;

/// The base URL clients reach the public tree at: `[gerrit] public_url`, else the first
/// mirror's `http_url`, without a trailing `/`; `None` when neither is set.
pub fn public_url(farm: &FarmConfig) -> Option<String> {
    farm.gerrit
        .as_ref()
        .and_then(|g| g.public_url.clone())
        .or_else(|| farm.mirrors.iter().find_map(|m| m.http_url.clone()))
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// A deb suite of one tree, as apt uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptClient {
    /// The tree's `KEY.asc`: the public keys its indexes are signed with.
    pub key_url: String,
    /// Where the key is saved (`/etc/apt/keyrings/<customer>-<version>.asc`).
    pub key_file: String,
    /// `deb [signed-by=<key file>] <url>/<tree>/deb <suite> main`.
    pub sources_line: String,
    /// The sources file the line goes into
    /// (`/etc/apt/sources.list.d/<customer>-<version>-<suite>.list`).
    pub list_file: String,
}

impl AptClient {
    /// Suite `suite` of tree `tree` (`acme/9.0`, `acme/review/301`) served at `url` (see
    /// [`public_url`]; `<url>` stands in when the farm has none).
    pub fn new(url: Option<&str>, tree: &str, suite: &str) -> Self {
        let base = format!("{}/{tree}", url.unwrap_or("<url>").trim_end_matches('/'));
        let name = tree.replace('/', "-");
        let key_file = format!("/etc/apt/keyrings/{name}.asc");
        Self {
            key_url: format!("{base}/KEY.asc"),
            sources_line: format!("deb [signed-by={key_file}] {base}/deb {suite} main"),
            list_file: format!("/etc/apt/sources.list.d/{name}-{suite}.list"),
            key_file,
        }
    }

    /// The commands (as root) that fetch the key and add the sources line. The keyring
    /// directory is made readable to all first: apt reads the key as its unprivileged `_apt`
    /// user, and a directory `curl --create-dirs` makes (mode 0750) would hide it (NO_PUBKEY).
    pub fn commands(&self) -> [String; 3] {
        let dir = self
            .key_file
            .rsplit_once('/')
            .map_or("/etc/apt/keyrings", |(dir, _)| dir);
        [
            format!("install -d -m 0755 {dir}"),
            format!("curl -fsSL -o {} {}", self.key_file, self.key_url),
            format!("echo '{}' > {}", self.sources_line, self.list_file),
        ]
    }
}

/// The dnf command that installs `package` from suite `suite` (`el9`, `el9-updates`) of tree
/// `tree` served at `url`, signatures of packages and metadata checked against its `KEY.asc`.
pub fn dnf_install(url: Option<&str>, tree: &str, suite: &str, package: &str) -> String {
    let base = format!("{}/{tree}", url.unwrap_or("<url>").trim_end_matches('/'));
    let repo = tree.replace('/', "-");
    format!(
        "dnf --repofrompath={repo},{base}/rpm/{suite}/$basearch --setopt={repo}.gpgcheck=1 --setopt={repo}.repo_gpgcheck=1 --setopt={repo}.gpgkey={base}/KEY.asc install {package}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_downloaded_and_the_line_names_the_file() {
        let c = AptClient::new(Some("http://mirror:8642/"), "acme/review/301", "bookworm");
        assert_eq!(
            c.commands(),
            [
                "install -d -m 0755 /etc/apt/keyrings",
                "curl -fsSL -o /etc/apt/keyrings/acme-review-301.asc http://mirror:8642/acme/review/301/KEY.asc",
                "echo 'deb [signed-by=/etc/apt/keyrings/acme-review-301.asc] http://mirror:8642/acme/review/301/deb bookworm main' > /etc/apt/sources.list.d/acme-review-301-bookworm.list",
            ]
        );
        let c = AptClient::new(None, "acme/9.0", "bookworm-updates");
        assert_eq!(
            c.sources_line,
            "deb [signed-by=/etc/apt/keyrings/acme-9.0.asc] <url>/acme/9.0/deb bookworm-updates main"
        );
    }

    #[test]
    fn dnf_names_the_key_url() {
        assert_eq!(
            dnf_install(Some("http://m"), "acme/9.0", "el9", "greet"),
            "dnf --repofrompath=acme-9.0,http://m/acme/9.0/rpm/el9/$basearch --setopt=acme-9.0.gpgcheck=1 --setopt=acme-9.0.repo_gpgcheck=1 --setopt=acme-9.0.gpgkey=http://m/acme/9.0/KEY.asc install greet"
        );
    }
}
