//! Feedback: what a part reports back on a Gerrit change.

use chrono::{DateTime, Utc};
use perestroika_config::settings::Family;
use serde::{Deserialize, Serialize};

use super::*;

/// Sent on `feedback.<customer>.<version>` once a build of a Gerrit change has an outcome (by
/// the worker when the build failed, by the publisher once it is published); the reactor
/// reports it on the change with `gerrit review`, once per build job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub schema_version: u32,
    /// The build job's id: feedback is sent once per id.
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub package: String,
    pub family: Family,
    pub distro: String,
    pub target: Target,
    pub change: u64,
    pub patchset: u32,
    pub outcome: BuildOutcome,
    #[serde(default)]
    pub package_version: Option<String>,
    /// The suite the build was published into.
    #[serde(default)]
    pub suite: Option<String>,
    /// The build log, relative to the public root, once published.
    #[serde(default)]
    pub log: Option<String>,
    /// When the build was asked for (the build job's `requested_at`): a recheck asks again
    /// for the same job and is reported again; a redelivery of one request is not.
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
}

impl Feedback {
    /// The feedback for a build with these particulars; `None` without a change and patch set.
    #[allow(clippy::too_many_arguments)]
    pub fn of(
        job_id: &str,
        customer: &str,
        version: &str,
        package: &str,
        family: Family,
        distro: &str,
        target: &Target,
        trigger: &Trigger,
        outcome: BuildOutcome,
        package_version: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            schema_version: SCHEMA_VERSION,
            job_id: job_id.to_owned(),
            customer: customer.to_owned(),
            version: version.to_owned(),
            package: package.to_owned(),
            family,
            distro: distro.to_owned(),
            target: target.clone(),
            change: trigger.change?,
            patchset: trigger.patchset?,
            outcome,
            package_version,
            suite: None,
            log: None,
            requested_at: None,
        })
    }
}

impl Feedback {
    /// The queue feedback of this release goes to: `feedback.<customer>.<version>`.
    pub fn queue(&self) -> String {
        crate::QueueName::new(crate::Stage::Feedback, &self.customer, &self.version).to_string()
    }

    /// What feedback is sent once for: the build job and the request that asked for it
    /// (`<job id>` or `<job id>.<request time in microseconds>`).
    pub fn request_key(&self) -> String {
        match self.requested_at {
            Some(at) => format!("{}.{}", self.job_id, at.timestamp_micros()),
            None => self.job_id.clone(),
        }
    }
}

impl Message for Feedback {
    message_kind!("feedback");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        let k = n.0;
        n.token("job id", &self.job_id)?;
        n.release(&self.customer, &self.version)?;
        n.token("package", &self.package)?;
        n.token("distro", &self.distro)?;
        check_target(k, &self.target)
    }
}

/// Sent on `feedback.<customer>.<version>` by the publisher when the worker that staged a
/// job's files stayed unreachable (or lost them) past `fetch.worker_gone_secs`: the reactor
/// checks the build job against the configuration and queues it again, so that another
/// worker builds it. The publisher itself may not send on the build exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    pub schema_version: u32,
    /// The build job to queue again (its id is checked against its content).
    pub rebuild: BuildJob,
    /// The worker that staged the lost files.
    pub staged_on: String,
    /// Why the files could not be fetched.
    pub reason: String,
}

impl RebuildRequest {
    /// Whether `bytes` look like a rebuild request rather than feedback (they carry
    /// `rebuild` as an object).
    pub fn is_one(bytes: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("rebuild").is_some_and(serde_json::Value::is_object))
    }

    /// The queue it goes to: the release's feedback queue.
    pub fn queue(&self) -> String {
        crate::QueueName::new(
            crate::Stage::Feedback,
            &self.rebuild.customer,
            &self.rebuild.version,
        )
        .to_string()
    }
}

impl Message for RebuildRequest {
    message_kind!("rebuild request");
    fn check(&self) -> Result<(), MessageError> {
        Names(Self::KIND).token("worker", &self.staged_on)?;
        self.rebuild.check()
    }
}
