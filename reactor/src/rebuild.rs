//! Rebuild requests: the publisher could not fetch a job's files from the worker that staged
//! them (the worker is gone) and asks, on the release's feedback queue, for the build to be
//! queued again. The reactor judges the build job as a worker would (the release, distro,
//! target and sources the configuration allows, an id that matches its content) and sends it
//! to `build.<customer>.<version>` with its own id, so that another worker builds it; a
//! repeat of the request queues it again, which is harmless (the publisher publishes a job
//! id once).

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{Broker, Disposition};
use perestroika_protocol::messages::{Message, RebuildRequest};
use perestroika_protocol::{QueueName, Stage};
use tracing::{info, warn};

/// Handles one rebuild request from `queue`.
pub async fn handle(farm: &FarmConfig, queue: &QueueName, data: &[u8]) -> Disposition {
    let request = match RebuildRequest::from_bytes(data) {
        Ok(r) => r,
        Err(e) => return Disposition::DeadLetter(format!("not a valid rebuild request: {e}")),
    };
    let job = &request.rebuild;
    if let Err(e) = perestroika_protocol::validate::rebuild_request(farm, queue, &request) {
        warn!(job = %job.job_id, reason = %e, "refusing a rebuild request");
        return Disposition::DeadLetter(e.to_string());
    }
    let build = QueueName::new(Stage::Build, &job.customer, &job.version).to_string();
    if let Err(e) = Broker::publish_once(&farm.broker, &build, job, &job.job_id).await {
        warn!(job = %job.job_id, error = %e, "could not queue the build again; the request waits");
        return Disposition::Later(format!("queueing the build again: {e}"));
    }
    info!(job = %job.job_id, queue = %build, stage = "queued", worker = %request.staged_on, reason = %request.reason, "queued the build again: the worker that staged it is gone");
    Disposition::Ack
}
