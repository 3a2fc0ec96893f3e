//! The mirrors told of a tree's new generation, and the reactor of a build's outcome.

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{
    BuildOutcome, Feedback, MirrorAnnouncement, PublishJob, SCHEMA_VERSION,
};
use perestroika_protocol::validate::RETIRED_SNAPSHOT;
use perestroika_protocol::{QueueName, Stage};

/// Tells the mirrors that `tree` is now at `generation` (0: taken down).
pub(super) async fn announce(
    farm: &FarmConfig,
    customer: &str,
    version: &str,
    tree: &str,
    generation: u64,
) -> Result<(), perestroika_protocol::broker::BrokerError> {
    let announcement = MirrorAnnouncement {
        schema_version: SCHEMA_VERSION,
        customer: customer.to_owned(),
        version: version.to_owned(),
        snapshot: if generation == 0 {
            RETIRED_SNAPSHOT.into()
        } else {
            generation.to_string()
        },
        generation,
        tree: tree.to_owned(),
        published_at: chrono::Utc::now(),
    };
    let queue = QueueName::new(Stage::Mirror, customer, version).to_string();
    let id = format!("{}-{generation}", tree.replace('/', "-"));
    Broker::publish_once(&farm.broker, &queue, &announcement, &id).await
}

/// The feedback for a publish job's build, when a Gerrit change asked for it.
pub(super) fn feedback(
    job: &PublishJob,
    outcome: BuildOutcome,
    suite: Option<String>,
    log: Option<String>,
) -> Option<Feedback> {
    let mut f = Feedback::of(
        &job.job_id,
        &job.customer,
        &job.version,
        &job.package,
        job.family,
        &job.distro,
        &job.target,
        job.trigger.as_ref()?,
        outcome,
        Some(job.package_version.clone()).filter(|v| !v.is_empty()),
    )?;
    f.suite = suite;
    f.log = log;
    f.requested_at = job.requested_at;
    Some(f)
}

/// Queues feedback for the reactor to report on the change.
pub(super) async fn send_feedback(
    farm: &FarmConfig,
    feedback: &Feedback,
) -> Result<(), perestroika_protocol::broker::BrokerError> {
    Broker::publish_once(&farm.broker, &feedback.queue(), feedback, &feedback.job_id).await
}
