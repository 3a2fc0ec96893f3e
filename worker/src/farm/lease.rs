//! Leases on build jobs, held on the broker so that every worker sees them.
//!
//! A worker building a job holds `worker.lease.<job id>`, an exclusive queue of its broker
//! connection: another connection cannot declare it (RabbitMQ answers `RESOURCE_LOCKED`), and
//! it vanishes with the connection, so a worker that dies frees its leases with it. A job
//! delivered again while its lease is held (the broker took it back from a channel, e.g. after a
//! consumer timeout) is waited for, never built a second time at once.
//!
//! A worker that finished a job but could not acknowledge its delivery (the channel was gone)
//! leaves `worker.done.<job id>`, a durable queue the broker removes after a week unused: the
//! next worker to receive the job acknowledges it without building it again.

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ErrorKind};
use perestroika_protocol::queues::WORKER_PREFIX;

/// How long a done mark outlives its last use.
const DONE_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whether a lease could be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This connection holds it now.
    Taken,
    /// Another live connection holds it: another worker is building the job.
    HeldElsewhere,
}

fn lease_name(job_id: &str) -> String {
    format!("{WORKER_PREFIX}lease.{job_id}")
}

fn done_name(job_id: &str) -> String {
    format!("{WORKER_PREFIX}done.{job_id}")
}

/// Takes the lease of `job_id` on `conn`. Declaring an exclusive queue this connection already
/// holds succeeds again, so the caller keeps its own bookkeeping of jobs in flight.
pub async fn take(conn: &Connection, job_id: &str) -> Result<Lease, lapin::Error> {
    let channel = conn.create_channel().await?;
    let declared = channel
        .queue_declare(
            lease_name(job_id).as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: false,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(_) => {
            let _ = channel.close(200, "done".into()).await;
            Ok(Lease::Taken)
        }
        Err(e) if refused_with(&e, AMQPSoftError::RESOURCELOCKED) => Ok(Lease::HeldElsewhere),
        Err(e) => Err(e),
    }
}

/// Gives the lease of `job_id` back.
pub async fn release(conn: &Connection, job_id: &str) {
    if let Ok(channel) = conn.create_channel().await {
        let _ = channel
            .queue_delete(
                lease_name(job_id).as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
        let _ = channel.close(200, "done".into()).await;
    }
}

/// Records that `job_id` was built and handed over although its delivery stayed
/// unacknowledged.
pub async fn mark_done(conn: &Connection, job_id: &str) -> Result<(), lapin::Error> {
    let channel = conn.create_channel().await?;
    let mut args = FieldTable::default();
    let ms = i64::try_from(DONE_KEPT.as_millis()).unwrap_or(i64::MAX);
    args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
    channel
        .queue_declare(
            done_name(job_id).as_str().into(),
            QueueDeclareOptions::durable(),
            args,
        )
        .await?;
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

/// Whether `job_id` was built and handed over already ([`mark_done`]).
pub async fn is_done(conn: &Connection, job_id: &str) -> Result<bool, lapin::Error> {
    let channel = conn.create_channel().await?;
    let found = channel
        .queue_declare(
            done_name(job_id).as_str().into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await;
    match found {
        Ok(_) => {
            let _ = channel.close(200, "done".into()).await;
            Ok(true)
        }
        Err(e) if refused_with(&e, AMQPSoftError::NOTFOUND) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the broker refused an operation with this channel error.
fn refused_with(e: &lapin::Error, code: AMQPSoftError) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(a) if *a.kind() == AMQPErrorKind::Soft(code))
}
