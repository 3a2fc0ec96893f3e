//! The publisher's handle on the farm: which public tree a target publishes into, its lock,
//! the releases and suites it holds, where its private state lies and which keys sign it.

use perestroika_tree::suite_name;
use std::path::PathBuf;

use perestroika_config::{Family, FarmConfig, Release};
use perestroika_protocol::messages::{review_tree_customer, Target};

use crate::error::PublishError;
use crate::signing::Signer;
use crate::trees::Trees;

/// Publishes into one farm's public tree with one signer.
pub struct Publisher<'a> {
    /// The farm's configuration.
    pub farm: &'a FarmConfig,
    /// The release keys, with the review keys beside them.
    pub signer: &'a Signer,
}

impl Publisher<'_> {
    /// The farm's trees, without the keys.
    pub fn trees(&self) -> Trees<'_> {
        Trees { farm: self.farm }
    }

    /// The releases whose repositories a tree holds: a topic's changes may sit on several
    /// releases' branches, so its tree holds every release of the customer (a generation
    /// written for one keeps the suites of the others); any other tree holds one release.
    pub(crate) fn tree_releases(
        &self,
        customer: &str,
        version: &str,
        target: &Target,
    ) -> Result<Vec<&Release>, PublishError> {
        let release = self.release(customer, version)?;
        Ok(match (target, self.farm.customer(customer)) {
            (Target::Topic { .. }, Some(c)) => c.versions.iter().collect(),
            _ => vec![release],
        })
    }

    /// A release of the configuration; refused when it is not there.
    pub(crate) fn release(&self, customer: &str, version: &str) -> Result<&Release, PublishError> {
        self.trees().release(customer, version)
    }

    /// Every deb suite of the distros of a tree's releases: `<distro>` and `<distro>-<suite>`.
    pub(crate) fn deb_suites(&self, releases: &[&Release]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let distros = releases.iter().flat_map(|r| r.distros());
        for (family, distro) in distros {
            if family == Family::Deb && !out.iter().any(|s| s == distro) {
                out.push(distro.to_owned());
                out.extend(
                    self.farm
                        .publish
                        .suites
                        .iter()
                        .map(|s| suite_name(distro, Some(s))),
                );
            }
        }
        out
    }

    /// The suite a merge publishes into: the release itself in development, `proposed` once
    /// it is in maintenance. Review repositories use the distro's own suite.
    pub fn suite_for(
        &self,
        customer: &str,
        version: &str,
        distro: &str,
        target: &Target,
    ) -> String {
        match target {
            Target::Release => self.farm.merge_suite(customer, version, distro),
            _ => distro.to_owned(),
        }
    }

    /// The private state (reprepro's database, the history of indexes) of the deb
    /// repository of the tree `tree`.
    pub(crate) fn state_dir(&self, tree: &str) -> PathBuf {
        self.farm.paths.state.join("publisher/deb").join(tree)
    }

    /// Where createrepo_c keeps the metadata of the rpm repositories of the tree `tree`.
    pub(crate) fn rpm_state(&self, tree: &str) -> PathBuf {
        self.farm.paths.state.join("publisher/rpm").join(tree)
    }

    /// What signs a tree: the review key for review and topic repositories (when configured),
    /// the release's keys otherwise.
    pub(crate) fn signer_for(&self, tree_name: &str) -> &Signer {
        match review_tree_customer(tree_name) {
            Some(customer) => self.signer.for_review(customer),
            None => self.signer,
        }
    }

    /// How long signed deb indexes of a release are valid; `None` when they carry no
    /// `Valid-Until`.
    pub(crate) fn valid_for(&self) -> Option<chrono::Duration> {
        let secs = self.farm.publish.valid_for_secs;
        (secs > 0).then(|| chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))
    }
}
