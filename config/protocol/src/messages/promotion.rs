//! Promotions of a release's packages between suites, and their answers.

use chrono::{DateTime, Utc};
use perestroika_config::names::check_token;
use serde::{Deserialize, Serialize};

use super::*;

/// Sent on `publish.<customer>.<version>` by `perestroika-queue promote`: copy the exact
/// published files of a source package from one suite of the release to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub schema_version: u32,
    /// Deterministic: the same promotion asked twice has the same id.
    pub job_id: String,
    pub customer: String,
    pub version: String,
    /// The source package.
    pub package: String,
    /// The package's version; the newest in `from` when absent.
    #[serde(default)]
    pub package_version: Option<String>,
    /// Suite names from the configuration (`proposed`, `updates`, …).
    pub from: String,
    pub to: String,
    /// Distros to promote in; every distro of the release that has the package when empty.
    #[serde(default)]
    pub distros: Vec<String>,
    /// Promote even when dependencies are not satisfiable in the target suite.
    #[serde(default)]
    pub force: bool,
    /// A queue to send the [`PromotionResult`] to (the asking CLI's private queue).
    #[serde(default)]
    pub reply_to: Option<String>,
    pub requested_at: DateTime<Utc>,
}

impl Promotion {
    /// A promotion with its id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        customer: &str,
        version: &str,
        package: &str,
        package_version: Option<&str>,
        from: &str,
        to: &str,
        distros: &[String],
        force: bool,
    ) -> Self {
        let mut p = Self {
            schema_version: SCHEMA_VERSION,
            job_id: String::new(),
            customer: customer.to_owned(),
            version: version.to_owned(),
            package: package.to_owned(),
            package_version: package_version.map(str::to_owned),
            from: from.to_owned(),
            to: to.to_owned(),
            distros: distros.to_vec(),
            force,
            reply_to: None,
            requested_at: Utc::now(),
        };
        p.job_id = p.compute_id();
        p
    }

    pub(super) fn compute_id(&self) -> String {
        let mut parts = vec![
            "promote".into(),
            self.customer.clone(),
            self.version.clone(),
            self.package.clone(),
            self.package_version.clone().unwrap_or_default(),
            self.from.clone(),
            self.to.clone(),
            self.force.to_string(),
        ];
        parts.extend(self.distros.iter().cloned());
        job_id(&parts)
    }
}

impl Message for Promotion {
    message_kind!("promotion");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        let k = n.0;
        n.release(&self.customer, &self.version)?;
        n.token("package", &self.package)?;
        if let Some(v) = &self.package_version {
            n.token("package version", &v.replace(':', "_"))?;
        }
        n.token("suite", &self.from)?;
        n.token("suite", &self.to)?;
        for d in &self.distros {
            n.token("distro", d)?;
        }
        if let Some(q) = &self.reply_to {
            n.token("reply queue", q)?;
        }
        check_id(k, &self.job_id, self.compute_id())
    }
}

/// The publisher's answer to a [`Promotion`], sent to its `reply_to` queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionResult {
    pub schema_version: u32,
    pub job_id: String,
    pub promoted: bool,
    /// What was copied, one line per file (`bookworm-updates: greet_1.1+p2.0_amd64.deb`).
    #[serde(default)]
    pub copied: Vec<String>,
    /// Relations the target suite leaves unsatisfied (`greet-user: greet (>= 1.1)`).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Why nothing was promoted, when it was not.
    #[serde(default)]
    pub error: Option<String>,
    /// The generation now live, when the promotion switched the tree.
    #[serde(default)]
    pub generation: Option<u64>,
}

impl Message for PromotionResult {
    message_kind!("promotion result");
    fn check(&self) -> Result<(), MessageError> {
        name(Self::KIND, check_token("job id", &self.job_id))
    }
}
