//! What became of each message: the record of a job, the refusal of a message.

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Disposition;
use perestroika_protocol::validate::Refused;
use tracing::warn;

/// Where the publisher records what became of each job: `<state>/publisher/records/<job
/// id>.json` (its own directory: nothing is written into staging, which workers write; a
/// job's staging is only removed once the job is done, see `release_staging`).
pub fn record_path(farm: &FarmConfig, job_id: &str) -> std::path::PathBuf {
    farm.paths
        .state
        .join("publisher/records")
        .join(format!("{job_id}.json"))
}

/// A message that asks for more than its queue and the configuration allow: dead-lettered
/// with the reason, and nothing else is done (no record is written under an id it chose).
pub(super) fn refused(job_id: &str, e: Refused) -> Disposition {
    warn!(job = %job_id, reason = %e, "refusing a message");
    Disposition::DeadLetter(e.to_string())
}

/// Writes what became of a job, durably (before the job is acknowledged).
pub(super) fn record(farm: &FarmConfig, job_id: &str, value: serde_json::Value) {
    let path = record_path(farm, job_id);
    // Durable before the job is acknowledged.
    let written = perestroika_host::files::write_durable(
        &path,
        &serde_json::to_vec_pretty(&value).expect("json"),
    );
    if let Err(e) = written {
        warn!(error = %e, "could not write the publish record");
    }
}
