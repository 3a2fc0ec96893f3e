//! The farm configuration: one TOML file plus `PERESTROIKA_<SECTION>__<KEY>` environment overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::mapping::{Mapping, RuleSpec};

mod broker;
mod build;
mod check;
mod defaults;
mod gerrit;
mod images;
mod load;
mod mirror;
mod paths;
mod public;
mod publish;
mod releases;
mod signing;
mod staging;
#[cfg(test)]
mod tests;

pub use broker::*;
pub use build::*;
pub use defaults::*;
pub use gerrit::*;
pub use images::*;
pub use mirror::*;
pub use paths::*;
pub use public::*;
pub use publish::*;
pub use releases::*;
pub use signing::*;
pub use staging::*;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "PERESTROIKA";

/// The whole farm configuration, as loaded and validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmConfig {
    /// The file this was loaded from (not part of the file itself).
    #[serde(skip)]
    pub source: PathBuf,
    pub broker: BrokerSettings,
    #[serde(default)]
    pub gerrit: Option<GerritSettings>,
    pub paths: Paths,
    /// Where published state is read over http, and the keys it must be signed with.
    #[serde(default)]
    pub public: PublicSettings,
    #[serde(default)]
    pub signing: Option<SigningSettings>,
    #[serde(default)]
    pub build: BuildSettings,
    #[serde(default)]
    pub publish: PublishSettings,
    /// Rules that map Gerrit projects and branches to customer, version and package.
    /// When absent, the defaults of [`crate::mapping::default_rules`] apply.
    #[serde(default)]
    pub mapping: Option<Vec<RuleSpec>>,
    pub customers: Vec<Customer>,
    #[serde(default)]
    pub mirrors: Vec<MirrorTarget>,
    /// Limits of the mirror host's http server (`perestroika-mirror serve`).
    #[serde(default)]
    pub serve: ServeSettings,
    /// How the base image of each rpm distro is bootstrapped, by distro name. A distro
    /// without an entry gets a Debian root with Debian's rpm, dnf and createrepo-c.
    #[serde(default)]
    pub rpm_roots: BTreeMap<String, RpmRoot>,
    /// Where workers get their base images: each host's own, or a registry.
    #[serde(default)]
    pub images: ImageSettings,
    /// This worker's name and its staging daemon (see `[fetch]` for the publisher's side).
    #[serde(default)]
    pub worker: WorkerSettings,
    /// The workers the publisher fetches staged files from, and the bounds of a fetch.
    #[serde(default)]
    pub fetch: FetchSettings,
}

impl FarmConfig {
    pub fn mapping(&self) -> Result<Mapping, ConfigError> {
        Mapping::compile(self.mapping.as_deref()).map_err(|(index, problem)| {
            self.invalid(format!("mapping[{index}]"), problem.to_string())
        })
    }

    /// The customer named `name`.
    pub fn customer(&self, name: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.name == name)
    }

    /// The release `version` of `customer`.
    pub fn release(&self, customer: &str, version: &str) -> Option<&Release> {
        self.customer(customer)?
            .versions
            .iter()
            .find(|r| r.name == version)
    }

    /// The suite a merge of `distro` publishes into: the release's own (`<distro>`) in
    /// development, `<distro>-<publish.proposed>` in maintenance.
    pub fn merge_suite(&self, customer: &str, version: &str, distro: &str) -> String {
        match self.release(customer, version).map(|r| r.state) {
            Some(ReleaseState::Maintenance) => {
                perestroika_tree::suite_name(distro, Some(&self.publish.proposed))
            }
            _ => distro.to_owned(),
        }
    }

    /// The key `customer`'s review and topic repositories are signed with, as gpg prints it:
    /// the customer's own, else `[signing] review_fingerprint`; `None` when neither is set
    /// (the release's key signs them).
    pub fn review_key(&self, customer: &str) -> Option<String> {
        self.customer(customer)
            .and_then(|c| c.review_fingerprint.as_deref())
            .map(|f| fingerprint(f).unwrap_or_else(|_| f.to_owned()))
            .or_else(|| self.signing.as_ref().and_then(SigningSettings::review))
    }

    /// Every (customer, release) pair of the farm.
    pub fn releases(&self) -> impl Iterator<Item = (&Customer, &Release)> {
        self.customers
            .iter()
            .flat_map(|c| c.versions.iter().map(move |r| (c, r)))
    }
}
