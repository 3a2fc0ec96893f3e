//! Customers and their releases: what the farm builds and publishes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

/// A tenant of the farm.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: String,
    pub versions: Vec<Release>,
    /// This customer's review and topic repositories are signed with this key rather than
    /// `[signing] review_fingerprint`.
    #[serde(default)]
    pub review_fingerprint: Option<String>,
}

/// A release series of one customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The version, e.g. `9.0`.
    pub name: String,
    #[serde(default)]
    pub state: ReleaseState,
    /// Debian-family distros this release is built for, e.g. `bookworm`.
    #[serde(default)]
    pub deb: Vec<String>,
    /// rpm-family distros this release is built for, e.g. `el9`.
    #[serde(default)]
    pub rpm: Vec<String>,
    /// Debian architectures (rpm architectures are derived: amd64 → x86_64).
    #[serde(default = "default_arches")]
    pub arches: Vec<String>,
    /// The base image digest (`sha256:…` in `[images] registry`) each distro's builds of this
    /// release use, by distro; a distro without one builds on the registry's newest base.
    #[serde(default)]
    pub base_digests: BTreeMap<String, String>,
}

impl Release {
    /// The package family a distro of this release belongs to, if it is one of its distros.
    pub fn family_of(&self, distro: &str) -> Option<Family> {
        if self.deb.iter().any(|d| d == distro) {
            Some(Family::Deb)
        } else if self.rpm.iter().any(|d| d == distro) {
            Some(Family::Rpm)
        } else {
            None
        }
    }

    /// Every distro of the release with its family.
    pub fn distros(&self) -> impl Iterator<Item = (Family, &str)> {
        let deb = self.deb.iter().map(|d| (Family::Deb, d.as_str()));
        deb.chain(self.rpm.iter().map(|d| (Family::Rpm, d.as_str())))
    }
}

/// Where merges of a release are published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ReleaseState {
    /// Merges publish into the release suite itself.
    #[default]
    Development,
    /// The release has shipped: merges publish into `proposed`.
    Maintenance,
}

impl TryFrom<String> for ReleaseState {
    type Error = String;

    fn try_from(state: String) -> Result<Self, String> {
        match state.as_str() {
            "development" => Ok(Self::Development),
            "maintenance" => Ok(Self::Maintenance),
            _ => Err(format!(
                "unknown release state {state:?}: expected \"development\" (merges publish into \
                 the release suite) or \"maintenance\" (merges publish into publish.proposed)"
            )),
        }
    }
}

/// A package family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Deb,
    Rpm,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Deb => "deb",
            Family::Rpm => "rpm",
        })
    }
}
