//! The `[public]` section: where parts without the public tree on their host read it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Reading published state over http, from a mirror.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicSettings {
    /// The public root as a mirror serves it (`http://mirror:8080/perestroika/`). When set,
    /// the worker's build dependencies and the CLI's readings of published state come from
    /// here, not from `[paths] public_root`.
    #[serde(default)]
    pub url: Option<String>,
    /// Armored public key files of the release trees (`perestroika-publisher export-key`):
    /// every `InRelease` and `repomd.xml.asc` read must be signed by one of their keys.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Armored public key files of review and topic trees: the review key
    /// (`[signing] review_fingerprint`, or a customer's own). Empty: the release's keys
    /// (review trees are then signed with them).
    #[serde(default)]
    pub review_keys: Vec<PathBuf>,
    /// Seconds a connection may take to open, to answer, or stall mid-transfer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    60
}

impl Default for PublicSettings {
    fn default() -> Self {
        Self {
            url: None,
            keys: Vec::new(),
            review_keys: Vec::new(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// An `http://` URL of a public root: host, port and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    host: String,
    port: u16,
    /// The path below which the tree lies, starting and ending with `/`.
    prefix: String,
}

impl BaseUrl {
    /// Parses `http://host[:port][/path]`. Only plain http: what is read is trusted for its
    /// signatures, not its transport.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?} is not an http:// URL of the public tree"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!(
                "{url:?}: expected http://host[:port]/path/, without user, query or fragment"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?}: {p:?} is not a port"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() || path.split('/').any(|c| c == "..") {
            return Err(format!("{url:?}: no host, or `..` in the path"));
        }
        let mut prefix = path.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            prefix,
        })
    }

    /// `http://host:port/prefix/`.
    pub fn as_url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.prefix)
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path below which the tree lies, starting and ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
