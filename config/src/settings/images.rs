//! Where base images come from (`[images]`) and how a pinned digest is written.

use serde::{Deserialize, Serialize};

/// Where workers get their base images (`[images]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// `host[:port]` of the OCI registry that `image build` and `image refresh` push to and
    /// workers pull from by digest. Unset: every host builds on its own local images.
    #[serde(default)]
    pub registry: Option<String>,
    /// How long a worker keeps a distro's resolved digest before asking the registry again.
    #[serde(default = "default_resolve_secs")]
    pub resolve_secs: u64,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            registry: None,
            resolve_secs: default_resolve_secs(),
        }
    }
}

fn default_resolve_secs() -> u64 {
    30
}

/// Whether `registry` is a plain `host[:port]` (no scheme, path or credentials).
pub fn is_registry_address(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Whether `digest` is an image digest as the registry names it: `sha256:` and 64 hex digits.
pub fn is_image_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_addresses_are_host_and_port_only() {
        assert!(is_registry_address("127.0.0.1:5000"));
        assert!(is_registry_address("registry.example.org"));
        assert!(!is_registry_address("http://127.0.0.1:5000"));
        assert!(!is_registry_address("127.0.0.1:5000/x"));
        assert!(!is_registry_address("user@host:5000"));
        assert!(!is_registry_address("host:99999"));
        assert!(!is_registry_address(""));
    }

    #[test]
    fn digests_are_sha256_and_64_lower_hex_digits() {
        assert!(is_image_digest(&format!("sha256:{}", "a1".repeat(32))));
        assert!(!is_image_digest(&format!("sha256:{}", "A1".repeat(32))));
        assert!(!is_image_digest(&format!("sha512:{}", "a1".repeat(32))));
        assert!(!is_image_digest("sha256:abc"));
    }
}
