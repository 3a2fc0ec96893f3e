//! Taking build jobs: only when a build slot is free, one at a time, each under a lease.
//!
//! The worker never holds a job it cannot start: with a slot free it takes the next message
//! of its build queues in turn (`basic.get`, no prefetch), so the time a job is unacknowledged
//! is its build, never a wait for a slot. A doorbell — an exclusive queue of its own bound to
//! the build exchange, consumed without acknowledgement — wakes it when a job is published; a
//! job put back by the broker is found by the next poll ([`IDLE_POLL`]).
//!
//! Each job gets a channel of its own, so that the broker taking one delivery back (consumer
//! timeout) touches no other. The job's lease ([`super::lease`]) keeps a redelivered job from
//! being built twice at once; a redelivery of a job this worker is building waits for that
//! build and is settled as it is.
//!
//! What the farm could not do now ([`Disposition::Later`]: Docker or the sources' host
//! unreachable, a full disk) lets the job wait in its queue's waiting room, whence it returns
//! without a delivery counted, and pauses this worker's intake with a growing backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use perestroika_config::FarmConfig;
use perestroika_host::backoff::Backoff;
use perestroika_protocol::broker::{hostname, poisoned, Broker, Disposition, LATER_MAX_DELAY};
use perestroika_protocol::messages::{BuildJob, Message};
use perestroika_protocol::queues::WORKER_PREFIX;
use perestroika_protocol::{QueueName, Stage};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::handover;
use super::lease::{self, Lease};
use crate::steps::BuildEnv;

/// How often an idle worker looks at its queues without a doorbell ring.
pub const IDLE_POLL: Duration = Duration::from_secs(5);

/// How often a job whose lease another worker holds is looked at again.
const LEASE_POLL: Duration = Duration::from_secs(10);

/// A job this process is building.
struct Building {
    /// How it ended, once it has.
    ended: watch::Receiver<Option<Disposition>>,
    /// Rung when another worker took the job over while this one was cut off from the broker.
    taken_over: Arc<Notify>,
}

/// Jobs this process is building, by id.
type InFlight = Arc<Mutex<HashMap<String, Building>>>;

/// What every job task shares.
struct Shared {
    farm: Arc<FarmConfig>,
    env: Arc<BuildEnv>,
    /// The broker connection of the moment: replaced when the worker reconnects, so that a
    /// build that outlived its connection settles on the new one.
    broker: Mutex<Arc<Broker>>,
    in_flight: InFlight,
    /// Set when the farm could not do a job now: intake waits this long before the next.
    pause: Arc<Mutex<Option<Duration>>>,
    /// The build slots.
    slots: Arc<Semaphore>,
}

/// Takes and builds jobs from every build queue of the configuration until the process stops.
pub async fn run(farm: Arc<FarmConfig>, env: Arc<BuildEnv>) {
    let queues: Vec<String> = farm
        .releases()
        .map(|(customer, release)| {
            QueueName::new(Stage::Build, &customer.name, &release.name).to_string()
        })
        .collect();
    let slots = Arc::new(Semaphore::new(farm.build.slots.max(1) as usize));
    let in_flight: InFlight = Arc::default();
    let mut reconnect = Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(farm.broker.reconnect_max_secs.max(1)),
    );
    let mut later = Backoff::new(Duration::from_secs(2), LATER_MAX_DELAY);
    let shared = Arc::new(Shared {
        farm: farm.clone(),
        env: env.clone(),
        broker: Mutex::new(Arc::new(Broker::connect_with_backoff(&farm.broker).await)),
        in_flight: in_flight.clone(),
        pause: Arc::default(),
        slots: slots.clone(),
    });
    let mut first = true;
    loop {
        if !first {
            let broker = Broker::connect_with_backoff(&farm.broker).await;
            *shared.broker.lock().expect("broker lock") = Arc::new(broker);
            keep_leases(&shared).await;
        }
        first = false;
        let broker = shared.broker();
        for q in &queues {
            if let Err(e) = broker
                .declare(&QueueName::parse(q).expect("a build queue"))
                .await
            {
                warn!(queue = %q, error = %e, "cannot use a build queue");
            }
        }
        let bell = Arc::new(Notify::new());
        if let Err(e) = doorbell(&broker, &queues, bell.clone()).await {
            warn!(error = %e, poll = ?IDLE_POLL, "no doorbell; looking at the queues every few seconds");
        }
        info!(
            queues = queues.len(),
            slots = farm.build.slots,
            "taking build jobs"
        );
        reconnect.reset();
        let mut next = 0;
        while broker.is_connected() {
            // Waiting for a slot, the worker still notices a lost connection: its builds in
            // flight must take their leases again on the next one.
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("semaphore open"),
                () = lost(&broker) => break,
            };
            let paused = shared.pause.lock().expect("pause lock").take();
            if let Some(pause) = paused {
                let delay = pause.max(later.next_delay());
                info!(resume_in = ?delay, "the farm could not build the last job; pausing intake");
                tokio::time::sleep(delay).await;
            }
            // No job is taken that could fail midway for want of space.
            if let Some(low) = low_space(&farm) {
                warn!(wait = ?IDLE_POLL, "{low}; taking no jobs");
                drop(permit);
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            match take_next(&broker, &queues, &mut next).await {
                Ok(Some((channel, queue, delivery))) => {
                    if paused.is_none() {
                        later.reset();
                    }
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        job(shared, channel, queue, delivery, permit).await;
                    });
                }
                Ok(None) => {
                    drop(permit);
                    let _ = tokio::time::timeout(IDLE_POLL, bell.notified()).await;
                }
                Err(e) => {
                    warn!(error = %e, "cannot take jobs");
                    break;
                }
            }
        }
        let delay = reconnect.next_delay();
        warn!(retry_in = ?delay, "lost the broker; reconnecting (builds in flight go on)");
        tokio::time::sleep(delay).await;
    }
}

/// Resolves once `broker`'s connection is gone.
async fn lost(broker: &Broker) {
    while broker.is_connected() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Shared {
    /// The broker connection of the moment.
    fn broker(&self) -> Arc<Broker> {
        self.broker.lock().expect("broker lock").clone()
    }
}

/// After a reconnection: takes the lease of every job still building here on the new
/// connection (the old one's leases went with it). A job whose lease another worker holds now
/// was delivered to that worker meanwhile and is built there: its build here is stopped.
async fn keep_leases(shared: &Shared) {
    let broker = shared.broker();
    let jobs: Vec<(String, Arc<Notify>)> = shared
        .in_flight
        .lock()
        .expect("in-flight lock")
        .iter()
        .map(|(id, b)| (id.clone(), b.taken_over.clone()))
        .collect();
    for (job_id, taken_over) in jobs {
        match lease::take(broker.connection(), &job_id).await {
            Ok(Lease::Taken) => {
                info!(job = %job_id, "kept the job's lease across the reconnection; building on")
            }
            Ok(Lease::HeldElsewhere) => {
                warn!(job = %job_id, "another worker took the job over while this one was cut off from the broker; stopping the build here");
                taken_over.notify_one();
            }
            Err(e) => {
                warn!(job = %job_id, error = %e, "cannot take the job's lease again; building on")
            }
        }
    }
}

/// The first filesystem a build writes (staging, the worker's state) that has less free space
/// than `paths.min_free_bytes`.
fn low_space(farm: &FarmConfig) -> Option<perestroika_host::disk::LowSpace> {
    let paths = [&farm.paths.staging, &farm.paths.state];
    perestroika_host::disk::first_short(paths.map(|p| p.as_path()), farm.paths.min_free_bytes)
}

/// Declares this worker's doorbell and rings `bell` for every job published to `queues`.
async fn doorbell(
    broker: &Broker,
    queues: &[String],
    bell: Arc<Notify>,
) -> Result<(), lapin::Error> {
    let channel = broker.connection().create_channel().await?;
    let name = format!("{WORKER_PREFIX}bell.{}.{}", hostname(), std::process::id());
    let mut args = FieldTable::default();
    // Only whether something arrived matters.
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    let exchange = Stage::Build.exchange();
    for q in queues {
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.as_str().into(),
                q.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut consumer = channel
        .basic_consume(
            name.as_str().into(),
            "bell".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let _channel = channel;
        while let Some(Ok(_)) = consumer.next().await {
            bell.notify_one();
        }
    });
    Ok(())
}

/// The next message of `queues`, starting after the one last taken from, on a channel of its
/// own; `None` when they are all empty.
async fn take_next(
    broker: &Broker,
    queues: &[String],
    next: &mut usize,
) -> Result<Option<(Channel, String, Delivery)>, lapin::Error> {
    let channel = broker.connection().create_channel().await?;
    for i in 0..queues.len() {
        let queue = &queues[(*next + i) % queues.len()];
        match channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
        {
            Ok(Some(got)) => {
                *next = (*next + i + 1) % queues.len();
                return Ok(Some((channel, queue.clone(), got.delivery)));
            }
            Ok(None) => {}
            Err(e) => {
                warn!(%queue, error = %e, "cannot read a build queue");
                let _ = channel.close(200, "done".into()).await;
                return Err(e);
            }
        }
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(None)
}

/// One delivery, from its lease to its settlement.
async fn job(
    shared: Arc<Shared>,
    channel: Channel,
    queue: String,
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
) {
    let broker = shared.broker();
    let conn = broker.connection();
    if let Some(why) = poisoned(&delivery, &shared.farm.broker) {
        let why = Disposition::DeadLetter(why);
        drop(permit);
        settle(&shared, &channel, &queue, "", delivery, why).await;
        return;
    }
    let job_id = match BuildJob::from_bytes(&delivery.data) {
        Ok(job) => job.job_id,
        // Refused by `handover::handle`, which says why.
        Err(_) => String::new(),
    };
    let building = shared
        .in_flight
        .lock()
        .expect("in-flight lock")
        .get(&job_id)
        .map(|b| b.ended.clone());
    if let Some(mut ended) = building {
        // The broker gave back a job this worker is building: settle it as that build ends.
        drop(permit);
        info!(job = %job_id, "delivered again while building it here; waiting for that build");
        let disposition = loop {
            if let Some(d) = ended.borrow().clone() {
                break d;
            }
            if ended.changed().await.is_err() {
                break Disposition::Later("the build was abandoned".into());
            }
        };
        settle(&shared, &channel, &queue, &job_id, delivery, disposition).await;
        return;
    }
    // A job another worker built and handed over, whose delivery it could not acknowledge:
    // acknowledged here without a second build.
    let permit = if job_id.is_empty() {
        Some(permit)
    } else {
        match wait_for_lease(&shared, &job_id, permit).await {
            // Only a job delivered before can have been built already.
            Some(_permit)
                if delivery.redelivered && lease::is_done(conn, &job_id).await.unwrap_or(false) =>
            {
                lease::release(conn, &job_id).await;
                None
            }
            other => other,
        }
    };
    match permit {
        Some(permit) => build_leased(shared, channel, queue, job_id, delivery, permit).await,
        None => {
            info!(job = %job_id, "built already by a worker that could not acknowledge it; acknowledging");
            settle(
                &shared,
                &channel,
                &queue,
                &job_id,
                delivery,
                Disposition::Ack,
            )
            .await;
        }
    }
}

/// Takes the job's lease, waiting (without a slot) while another worker holds it. `None` when
/// that worker finished the job meanwhile.
async fn wait_for_lease(
    shared: &Shared,
    job_id: &str,
    permit: OwnedSemaphorePermit,
) -> Option<OwnedSemaphorePermit> {
    let broker = shared.broker();
    let conn = broker.connection();
    match lease::take(conn, job_id).await {
        Ok(Lease::Taken) => return Some(permit),
        Ok(Lease::HeldElsewhere) => {}
        Err(e) => {
            // Without a lease (e.g. a broker user of an older topology), build as before.
            warn!(job = %job_id, error = %e, "cannot take the job's lease; building without one");
            return Some(permit);
        }
    }
    drop(permit);
    info!(job = %job_id, "another worker is building this job; waiting for it");
    loop {
        tokio::time::sleep(LEASE_POLL).await;
        if lease::is_done(conn, job_id).await.unwrap_or(false) {
            return None;
        }
        if let Ok(Lease::Taken) = lease::take(conn, job_id).await {
            // That worker is gone without finishing: build it here, once a slot is free.
            return Some(
                shared
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore open"),
            );
        }
    }
}

/// Builds a job whose lease this worker holds, settles it and gives the lease back.
async fn build_leased(
    shared: Arc<Shared>,
    channel: Channel,
    queue: String,
    job_id: String,
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
) {
    let (tx, rx) = watch::channel(None);
    let taken_over = Arc::new(Notify::new());
    if !job_id.is_empty() {
        shared.in_flight.lock().expect("in-flight lock").insert(
            job_id.clone(),
            Building {
                ended: rx,
                taken_over: taken_over.clone(),
            },
        );
    }
    let queue_name = QueueName::parse(&queue).expect("a build queue");
    let built = tokio::select! {
        d = handover::handle(&shared.farm, &shared.env, &queue_name, &delivery.data) => Some(d),
        () = taken_over.notified() => None,
    };
    let Some(disposition) = built else {
        // The lease and the delivery are another worker's now: nothing to settle or give back.
        handover::abandon(&shared.farm, &shared.env, &job_id).await;
        drop(permit);
        let _ = tx.send(Some(Disposition::Later("built by another worker".into())));
        shared
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&job_id);
        return;
    };
    drop(permit);
    let settled = settle(
        &shared,
        &channel,
        &queue,
        &job_id,
        delivery,
        disposition.clone(),
    )
    .await;
    if !settled && matches!(disposition, Disposition::Ack | Disposition::DeadLetter(_)) {
        // Its effect is queued but the broker will deliver it again: say it is done.
        if let Err(e) = lease::mark_done(shared.broker().connection(), &job_id).await {
            warn!(job = %job_id, error = %e, "cannot mark the job done; it will be built again");
        }
    }
    let _ = tx.send(Some(disposition));
    shared
        .in_flight
        .lock()
        .expect("in-flight lock")
        .remove(&job_id);
    if !job_id.is_empty() {
        lease::release(shared.broker().connection(), &job_id).await;
    }
}

/// Acts on a job's disposition; whether the delivery was settled (its channel may be gone).
async fn settle(
    shared: &Shared,
    channel: &Channel,
    queue: &str,
    job_id: &str,
    delivery: Delivery,
    disposition: Disposition,
) -> bool {
    if let Disposition::Later(_) = &disposition {
        *shared.pause.lock().expect("pause lock") = Some(Duration::from_secs(2));
    }
    let done = shared.broker().settle(queue, &delivery, &disposition).await;
    let _ = channel.close(200, "done".into()).await;
    match done {
        Ok(()) => true,
        Err(e) => {
            info!(job = %job_id, error = %e, "could not settle the delivery");
            false
        }
    }
}
