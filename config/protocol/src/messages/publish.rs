//! Publish jobs, review retirements and signature refreshes: what the publisher is asked to do.

use chrono::{DateTime, Utc};
use perestroika_config::names::{check_token, NameError};
use perestroika_config::settings::Family;
use serde::{Deserialize, Serialize};

use super::*;

/// A job for `publish.<customer>.<version>`: include these staged files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishJob {
    pub schema_version: u32,
    /// The build job's id; the staged files are under `<staging>/<job id>/`.
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub distro: String,
    pub family: Family,
    pub package: String,
    pub package_version: String,
    pub target: Target,
    /// The build job's sources, judged by the publisher against the configuration (see
    /// `validate::publish_job`).
    pub sources: Sources,
    /// Every file to include, with the checksum the publisher verifies before trusting it.
    pub artifacts: Vec<Artifact>,
    /// The build log (`build.log`), checksummed like the artifacts; a job without it
    /// publishes no log.
    #[serde(default)]
    pub log: Option<Artifact>,
    /// When the build was asked for (its build job's `requested_at`): a review build asked
    /// for before its change's review repository was retired is not published.
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
    /// The event behind the build, for the feedback to its Gerrit change.
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// How the build ended. A failed build has no artifacts: only its log is published, and
    /// the feedback says which step failed and why.
    #[serde(default)]
    pub outcome: BuildOutcome,
    /// The build job's rebuild number (see [`BuildJob::rebuild`]), so that the job can be
    /// built again as it was asked for.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rebuild: u32,
    /// The worker whose staging daemon holds the files, by the name the publisher's
    /// `[fetch.workers]` knows it; without it the files are in the publisher's own
    /// `<staging>/<job id>/` (one host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_on: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PublishJob {
    /// The publish job for what the build of `job` left: its version, files, log and outcome.
    pub fn of_build(
        job: &BuildJob,
        package_version: String,
        artifacts: Vec<Artifact>,
        log: Option<Artifact>,
        outcome: BuildOutcome,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            job_id: job.job_id.clone(),
            customer: job.customer.clone(),
            version: job.version.clone(),
            distro: job.distro.clone(),
            family: job.family,
            package: job.package.clone(),
            package_version,
            target: job.target.clone(),
            sources: job.sources.clone(),
            artifacts,
            log,
            requested_at: Some(job.requested_at),
            trigger: Some(job.trigger.clone()),
            outcome,
            rebuild: job.rebuild,
            staged_on: None,
        }
    }

    /// The build job this publish job came from, to be built again (its files are lost);
    /// `None` without the trigger and request time the build job carried.
    pub fn build_job(&self) -> Option<BuildJob> {
        Some(BuildJob {
            schema_version: SCHEMA_VERSION,
            job_id: self.job_id.clone(),
            customer: self.customer.clone(),
            version: self.version.clone(),
            package: self.package.clone(),
            family: self.family,
            distro: self.distro.clone(),
            sources: self.sources.clone(),
            target: self.target.clone(),
            rebuild: self.rebuild,
            trigger: self.trigger.clone()?,
            requested_at: self.requested_at?,
        })
    }
}

impl Message for PublishJob {
    message_kind!("publish job");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        let k = n.0;
        n.token("job id", &self.job_id)?;
        n.release(&self.customer, &self.version)?;
        n.token("distro", &self.distro)?;
        n.token("package", &self.package)?;
        // A build may fail before its version is known.
        let failed = matches!(self.outcome, BuildOutcome::Failed { .. });
        if !(failed && self.package_version.is_empty()) {
            name(
                k,
                check_token("package version", &self.package_version.replace(':', "_")),
            )?;
        }
        check_target(k, &self.target)?;
        if let Some(worker) = &self.staged_on {
            n.token("worker", worker)?;
        }
        check_artifacts(k, &self.artifacts)?;
        check_artifacts(k, self.log.as_slice())?;
        match &self.log {
            Some(log) if log.name != LOG_NAME => Err(MessageError::Name {
                kind: k,
                source: NameError {
                    what: "log",
                    name: log.name.clone(),
                    why: "a build log is named build.log",
                },
            }),
            _ => Ok(()),
        }
    }
}

/// Sent on `publish.<customer>.<version>` when a change is merged, abandoned or deleted: its
/// review repository is taken down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRetirement {
    pub schema_version: u32,
    /// Deterministic: see [`ReviewRetirement::new`].
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub change: u64,
    pub requested_at: DateTime<Utc>,
}

impl ReviewRetirement {
    /// A retirement with its id (the same change always gives the same id).
    pub fn new(customer: &str, version: &str, change: u64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            job_id: Self::id(customer, version, change),
            customer: customer.to_owned(),
            version: version.to_owned(),
            change,
            requested_at: Utc::now(),
        }
    }

    pub(super) fn id(customer: &str, version: &str, change: u64) -> String {
        job_id(&[
            "retire-review".into(),
            customer.to_owned(),
            version.to_owned(),
            change.to_string(),
        ])
    }
}

impl Message for ReviewRetirement {
    message_kind!("review retirement");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        let k = n.0;
        n.release(&self.customer, &self.version)?;
        check_id(
            k,
            &self.job_id,
            Self::id(&self.customer, &self.version, self.change),
        )
    }
}

/// Sent on `publish.<customer>.<version>` by the publisher itself, on a timer: sign the
/// release's deb indexes again (new `Date` and `Valid-Until`) if less than half of their
/// validity is left. Through the queue, so that it never runs beside a publish of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRefresh {
    pub schema_version: u32,
    /// `refresh-signatures` of the release (the same for every refresh: one waiting is enough).
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub refresh: RefreshKind,
}

/// What a [`SignatureRefresh`] refreshes (one kind; it names the message on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshKind {
    Signatures,
}

impl SignatureRefresh {
    pub fn new(customer: &str, version: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            job_id: Self::id(customer, version),
            customer: customer.to_owned(),
            version: version.to_owned(),
            refresh: RefreshKind::Signatures,
        }
    }

    pub(super) fn id(customer: &str, version: &str) -> String {
        job_id(&[
            "refresh-signatures".into(),
            customer.to_owned(),
            version.to_owned(),
        ])
    }
}

impl Message for SignatureRefresh {
    message_kind!("signature refresh");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        let k = n.0;
        n.token("customer", &self.customer)?;
        n.token("version", &self.version)?;
        check_id(k, &self.job_id, Self::id(&self.customer, &self.version))
    }
}
