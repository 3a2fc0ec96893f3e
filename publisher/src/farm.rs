//! Farm mode: consume `publish.<customer>.<version>` (one active consumer per queue), check the
//! staged files, publish, announce the new state on `mirror.<customer>.<version>`, and only then
//! acknowledge. Bad input is dead-lettered with its reason; a failure of the publisher itself
//! returns the job to the queue.

use std::sync::Arc;
use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{run_consumer, Broker, Disposition};
use perestroika_protocol::messages::{
    BuildOutcome, Feedback, Message, MirrorAnnouncement, Promotion, PromotionResult, PublishJob,
    ReviewRetirement, SignatureRefresh, LOG_NAME, SCHEMA_VERSION,
};
use perestroika_protocol::validate::{self, Refused, RETIRED_SNAPSHOT};
use perestroika_protocol::{QueueName, Stage};
use tracing::{error, info, warn};

use crate::publish::{PublishError, PublishRequest, Publisher};
use crate::signing::Signer;
use crate::staged::take_staged;

/// Where the publisher records what became of each job: `<state>/publisher/records/<job
/// id>.json` (its own directory: nothing is written into staging, which workers write; a
/// job's staging is only removed once the job is done, see `release_staging`).
pub fn record_path(farm: &FarmConfig, job_id: &str) -> std::path::PathBuf {
    farm.paths
        .state
        .join("publisher/records")
        .join(format!("{job_id}.json"))
}

/// The publisher's private copy of a job's staged files, taken by [`take_staged`].
fn incoming_dir(farm: &FarmConfig, job_id: &str) -> std::path::PathBuf {
    farm.paths.state.join("publisher/incoming").join(job_id)
}

/// The job's files and its build log (when the job names one, within `max_log_bytes`), copied
/// from staging and checked; returns the files and the log's copy. Nothing is left in the
/// incoming directory when this fails; the caller removes it after publishing.
fn take_job_files(
    farm: &FarmConfig,
    job: &PublishJob,
) -> Result<(Vec<std::path::PathBuf>, Option<std::path::PathBuf>), PublishError> {
    let staged = farm.paths.staging.join(&job.job_id);
    let mut wanted = job.artifacts.clone();
    let log = match &job.log {
        Some(log) if log.size <= farm.build.max_log_bytes => {
            wanted.push(log.clone());
            true
        }
        Some(log) => {
            warn!(job = %job.job_id, size = log.size, cap = farm.build.max_log_bytes, "the build log is larger than build.max_log_bytes; not published");
            false
        }
        None => false,
    };
    let incoming = incoming_dir(farm, &job.job_id);
    let mut files = take_staged(&staged, &wanted, &incoming).inspect_err(|_| {
        let _ = fs_err::remove_dir_all(&incoming);
    })?;
    let log = log.then(|| files.pop()).flatten();
    Ok((files, log))
}

/// The first filesystem the publisher writes (the public tree, its own state) that has less
/// free space than `paths.min_free_bytes`.
fn short_of_space(farm: &FarmConfig) -> Option<perestroika_host::disk::LowSpace> {
    let paths = [&farm.paths.public_root, &farm.paths.state];
    perestroika_host::disk::first_short(paths.map(|p| p.as_path()), farm.paths.min_free_bytes)
}

/// Whether a job whose staging directory is gone was published (or its failure log) before:
/// a redelivery after the publisher removed `<staging>/<job id>` but before its
/// acknowledgement reached the broker.
fn done_before(farm: &FarmConfig, job: &PublishJob) -> bool {
    if farm.paths.staging.join(&job.job_id).exists() {
        return false;
    }
    let Ok(text) = fs_err::read(record_path(farm, &job.job_id)) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&text)
        .is_ok_and(|r| r["published"] == true || r["log_published"] == true)
}

/// Removes `<staging>/<job id>` once what the job asked for is durable (published, recorded,
/// announced and reported), just before the acknowledgement. The job id is a checked name;
/// a link there is removed, never followed.
fn release_staging(farm: &FarmConfig, job_id: &str) {
    let dir = farm.paths.staging.join(job_id);
    let removed = match fs_err::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => fs_err::remove_dir_all(&dir),
        Ok(_) => fs_err::remove_file(&dir),
        Err(_) => return,
    };
    if let Err(e) = removed {
        warn!(job = %job_id, error = %e, "could not remove the staged files of a published job");
    }
}

/// How often the publisher asks each release whether its signatures are due again: an eighth
/// of their validity, between a few seconds and an hour.
fn refresh_interval(farm: &FarmConfig) -> Option<Duration> {
    let secs = farm.publish.valid_for_secs;
    (secs > 0).then(|| Duration::from_secs((secs / 8).clamp(5, 3600)))
}

/// Sends a [`SignatureRefresh`] to every release's publish queue on a timer, so that signed
/// indexes are signed again before their `Valid-Until` passes, with nobody publishing. The
/// refresh itself runs where publishes run (one at a time per release, by whichever publisher
/// is the queue's active consumer); one waiting in the queue is enough.
async fn ask_for_refreshes(farm: Arc<FarmConfig>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let broker = match Broker::connect(&farm.broker).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "could not ask for signature refreshes; trying again later");
                continue;
            }
        };
        for (customer, release) in farm.releases() {
            let queue = QueueName::new(Stage::Publish, &customer.name, &release.name).to_string();
            let refresh = SignatureRefresh::new(&customer.name, &release.name);
            let waiting = broker.stats(&queue).await.is_ok_and(|q| q.messages > 0);
            // A queue with messages waiting gets its refresh with the next tick: a publish
            // there signs (and dates) anew anyway.
            if !waiting {
                if let Err(e) = broker.publish(&queue, &refresh, &refresh.job_id).await {
                    warn!(%queue, error = %e, "could not ask for a signature refresh");
                }
            }
        }
        broker.close().await;
    }
}

/// Signs a release's indexes again if they are due, and announces the new generation.
async fn refresh(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    refresh: SignatureRefresh,
) -> Disposition {
    if refresh.customer != queue.customer || refresh.version != queue.version {
        return Disposition::DeadLetter(format!(
            "signature refresh for {} {} arrived on {queue}",
            refresh.customer, refresh.version
        ));
    }
    let (f2, s2, r2) = (farm.clone(), signer.clone(), refresh.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &f2,
            signer: &s2,
        }
        .refresh_signatures(&r2.customer, &r2.version)
    })
    .await
    .expect("refresh task");
    match outcome {
        Ok(None) => Disposition::Ack,
        Ok(Some(published)) => {
            info!(tree = %published.tree, generation = published.generation, "signatures refreshed before their Valid-Until");
            let sent = announce(
                &farm,
                &refresh.customer,
                &refresh.version,
                &published.tree,
                published.generation,
            )
            .await;
            match sent {
                Ok(()) => Disposition::Ack,
                Err(e) => {
                    error!(error = %e, "could not announce the refreshed signatures; the refresh will be redone");
                    Disposition::Later(e.to_string())
                }
            }
        }
        Err(e) => {
            error!(error = %e, "could not refresh the signatures; returning the request");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Disposition::Retry
        }
    }
}

/// Consumes every publish queue of the configuration until the process is stopped, and asks
/// for signature refreshes on a timer (see [`ask_for_refreshes`]).
pub async fn run(farm: Arc<FarmConfig>, signer: Arc<Signer>) {
    let mut tasks = Vec::new();
    if let Some(every) = refresh_interval(&farm) {
        tasks.push(tokio::spawn(ask_for_refreshes(farm.clone(), every)));
    }
    for (customer, release) in farm.releases() {
        let queue = QueueName::new(Stage::Publish, &customer.name, &release.name);
        let (farm, signer) = (farm.clone(), signer.clone());
        tasks.push(tokio::spawn(async move {
            let settings = farm.broker.clone();
            run_consumer(&settings, &queue.clone(), 1, |delivery| {
                let (farm, signer, queue) = (farm.clone(), signer.clone(), queue.clone());
                async move {
                    let disposition = handle(farm, signer, &queue, delivery.data.clone()).await;
                    (delivery, disposition)
                }
            })
            .await
        }));
    }
    futures_util::future::join_all(tasks).await;
}

/// Takes down a change's review repository (the change was merged, abandoned or deleted).
async fn retire_review(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    retire: ReviewRetirement,
) -> Disposition {
    if let Err(e) = validate::retirement(&farm, queue, &retire) {
        return refused(&retire.job_id, e);
    }
    let (farm2, customer, version) = (
        farm.clone(),
        retire.customer.clone(),
        retire.version.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &farm,
            signer: &signer,
        }
        .retire_review(&retire.customer, retire.change, retire.requested_at)
    })
    .await
    .expect("retire task");
    match outcome {
        Ok((tree, removed)) => {
            info!(%tree, removed, "review repository retired");
            // Generation 0 tells the mirrors to take the tree down too.
            match announce(&farm2, &customer, &version, &tree, 0).await {
                Ok(()) => Disposition::Ack,
                Err(e) => {
                    error!(error = %e, "could not announce the retirement; the job will be redone");
                    Disposition::Later(e.to_string())
                }
            }
        }
        Err(e) => {
            error!(error = %e, "could not retire the review repository; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Disposition::Retry
        }
    }
}

/// Tells the mirrors that `tree` is now at `generation` (0: taken down).
async fn announce(
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

/// A message that asks for more than its queue and the configuration allow: dead-lettered
/// with the reason, and nothing else is done (no record is written under an id it chose).
fn refused(job_id: &str, e: Refused) -> Disposition {
    warn!(job = %job_id, reason = %e, "refusing a message");
    Disposition::DeadLetter(e.to_string())
}

fn record(farm: &FarmConfig, job_id: &str, value: serde_json::Value) {
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

async fn handle(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    data: Vec<u8>,
) -> Disposition {
    let job = match PublishJob::from_bytes(&data) {
        Ok(job) => job,
        Err(e) => {
            if let Ok(retire) = ReviewRetirement::from_bytes(&data) {
                return retire_review(farm, signer, queue, retire).await;
            }
            if let Ok(promotion) = Promotion::from_bytes(&data) {
                return promote(farm, signer, queue, promotion).await;
            }
            if let Ok(request) = SignatureRefresh::from_bytes(&data) {
                return refresh(farm, signer, queue, request).await;
            }
            return Disposition::DeadLetter(format!("not a valid publish job: {e}"));
        }
    };
    if let Err(e) = validate::publish_job(&farm, queue, &job) {
        return refused(&job.job_id, e);
    }
    if done_before(&farm, &job) {
        info!(job = %job.job_id, "published before (its staged files are gone); acknowledging");
        return Disposition::Ack;
    }
    // No publish starts that could fail midway for want of space: the job waits, uncounted.
    if let Some(low) = short_of_space(&farm) {
        warn!(job = %job.job_id, "{low}; the job waits");
        return Disposition::Later(low.to_string());
    }
    if matches!(job.outcome, BuildOutcome::Failed { .. }) {
        return publish_failure(farm, signer, job).await;
    }
    let (files, log) = match take_job_files(&farm, &job) {
        Ok(taken) => taken,
        Err(e) => {
            error!(job = %job.job_id, error = %e, "refusing to publish");
            record(
                &farm,
                &job.job_id,
                serde_json::json!({"job_id": job.job_id, "published": false, "error": e.to_string()}),
            );
            return Disposition::DeadLetter(e.to_string());
        }
    };
    let request = PublishRequest {
        customer: job.customer.clone(),
        version: job.version.clone(),
        distro: job.distro.clone(),
        target: job.target.clone(),
        files,
        log: log.map(|log| (job.job_id.clone(), log)),
        requested_at: job.requested_at,
    };
    let (f2, s2) = (farm.clone(), signer.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &f2,
            signer: &s2,
        }
        .publish(&request)
    })
    .await
    .expect("publish task");
    let _ = fs_err::remove_dir_all(incoming_dir(&farm, &job.job_id));
    let published = match outcome {
        Ok(p) => p,
        Err(e @ PublishError::Retired { .. }) => {
            info!(job = %job.job_id, reason = %e, "not published");
            record(
                &farm,
                &job.job_id,
                serde_json::json!({"job_id": job.job_id, "published": false, "reason": e.to_string()}),
            );
            release_staging(&farm, &job.job_id);
            return Disposition::Ack;
        }
        // A tool out of time says nothing about the files: the transient path below.
        Err(e @ (PublishError::Refused(_) | PublishError::Deb(_) | PublishError::Rpm(_)))
            if !e.is_timeout() =>
        {
            error!(job = %job.job_id, error = %e, "refused");
            record(
                &farm,
                &job.job_id,
                serde_json::json!({"job_id": job.job_id, "published": false, "error": e.to_string()}),
            );
            let failed = BuildOutcome::Failed {
                step: "publish".into(),
                reason: e.to_string(),
            };
            if let Some(feedback) = feedback(&job, failed, None, None) {
                if let Err(e) = send_feedback(&farm, &feedback).await {
                    error!(job = %job.job_id, error = %e, "could not queue the feedback; the job will be redone");
                    return Disposition::Later(e.to_string());
                }
            }
            return Disposition::DeadLetter(e.to_string());
        }
        // A tool out of time: the farm could not do it now, tried again later, uncounted.
        Err(e) if e.is_timeout() => {
            error!(job = %job.job_id, error = %e, "publish timed out; the job waits");
            return Disposition::Later(e.to_string());
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "publish failed; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Disposition::Retry;
        }
    };
    record(
        &farm,
        &job.job_id,
        serde_json::json!({"job_id": job.job_id, "published": true, "tree": published.tree, "generation": published.generation}),
    );
    let sent = announce(
        &farm,
        &job.customer,
        &job.version,
        &published.tree,
        published.generation,
    )
    .await;
    if let Err(e) = sent {
        error!(job = %job.job_id, error = %e, "could not announce; the job will be redone");
        return Disposition::Later(e.to_string());
    }
    info!(job = %job.job_id, tree = %published.tree, generation = published.generation, changed = published.changed, "published");
    let suite = Publisher {
        farm: &farm,
        signer: &signer,
    }
    .suite_for(&job.customer, &job.version, &job.distro, &job.target);
    let log = format!("{}/logs/{}.log", published.tree, job.job_id);
    let sent = match feedback(&job, BuildOutcome::Succeeded, Some(suite), Some(log)) {
        Some(feedback) => send_feedback(&farm, &feedback).await,
        None => Ok(()),
    };
    crate::crash::point("feedback-sent");
    match sent {
        Ok(()) => {
            release_staging(&farm, &job.job_id);
            Disposition::Ack
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "could not queue the feedback; the job will be redone");
            Disposition::Later(e.to_string())
        }
    }
}

/// A failed build: its log is published (see [`Publisher::publish_log`]) and announced, and
/// the change hears which step failed, with the link to the log.
async fn publish_failure(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    job: PublishJob,
) -> Disposition {
    let outcome = match take_job_files(&farm, &job) {
        Ok((_, Some(log))) => {
            let (f2, s2, j2) = (farm.clone(), signer.clone(), job.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                Publisher {
                    farm: &f2,
                    signer: &s2,
                }
                .publish_log(
                    &j2.customer,
                    &j2.version,
                    &j2.target,
                    &j2.job_id,
                    &log,
                    j2.requested_at,
                )
            })
            .await
            .expect("publish task");
            let _ = fs_err::remove_dir_all(incoming_dir(&farm, &job.job_id));
            outcome
        }
        Ok((_, None)) => Err(PublishError::Refused(format!(
            "the job names no {LOG_NAME} within build.max_log_bytes"
        ))),
        Err(e) => Err(PublishError::Refused(format!("the staged {LOG_NAME}: {e}"))),
    };
    let published = match outcome {
        Ok(p) => Some(p),
        // The change is gone, or the log cannot be published: the failure is still reported.
        Err(e @ (PublishError::Retired { .. } | PublishError::Refused(_))) => {
            info!(job = %job.job_id, reason = %e, "log of the failed build not published");
            None
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "could not publish the log of a failed build; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Disposition::Retry;
        }
    };
    if let Some(p) = &published {
        if let Err(e) = announce(&farm, &job.customer, &job.version, &p.tree, p.generation).await {
            error!(job = %job.job_id, error = %e, "could not announce; the job will be redone");
            return Disposition::Later(e.to_string());
        }
        info!(job = %job.job_id, tree = %p.tree, generation = p.generation, changed = p.changed, "log of the failed build published");
        record(
            &farm,
            &job.job_id,
            serde_json::json!({"job_id": job.job_id, "published": false, "log_published": true, "tree": p.tree, "generation": p.generation}),
        );
    }
    let link = published.map(|p| format!("{}/logs/{}.log", p.tree, job.job_id));
    if let Some(feedback) = feedback(&job, job.outcome.clone(), None, link) {
        if let Err(e) = send_feedback(&farm, &feedback).await {
            error!(job = %job.job_id, error = %e, "could not queue the feedback; the job will be redone");
            return Disposition::Later(e.to_string());
        }
    }
    release_staging(&farm, &job.job_id);
    Disposition::Ack
}

/// The feedback for a publish job's build, when a Gerrit change asked for it.
fn feedback(
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
async fn send_feedback(
    farm: &FarmConfig,
    feedback: &Feedback,
) -> Result<(), perestroika_protocol::broker::BrokerError> {
    Broker::publish_once(&farm.broker, &feedback.queue(), feedback, &feedback.job_id).await
}

/// Promotes a package between suites, announces the new state and answers the asker.
async fn promote(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    promotion: Promotion,
) -> Disposition {
    if let Err(e) = validate::promotion(&farm, queue, &promotion) {
        return refused(&promotion.job_id, e);
    }
    let (f2, s2, p2) = (farm.clone(), signer.clone(), promotion.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &f2,
            signer: &s2,
        }
        .promote(&p2)
    })
    .await
    .expect("promote task");
    let mut result = PromotionResult {
        schema_version: SCHEMA_VERSION,
        job_id: promotion.job_id.clone(),
        promoted: false,
        copied: Vec::new(),
        missing: Vec::new(),
        error: None,
        generation: None,
    };
    // A refusal is the asker's answer, not the farm's failure: it goes to the asking CLI and
    // the promotion is acknowledged. Only a refusal nobody hears (queued with --no-wait, or
    // the asker has gone) is dead-lettered, so that it is not lost.
    let refusal = match outcome {
        Ok(done) => {
            result.missing = done.missing;
            result.copied = done.copied;
            match done.published {
                Some(published) => {
                    result.promoted = true;
                    result.generation = Some(published.generation);
                    let sent = announce(
                        &farm,
                        &promotion.customer,
                        &promotion.version,
                        &published.tree,
                        published.generation,
                    )
                    .await;
                    if let Err(e) = sent {
                        error!(error = %e, "could not announce the promotion; it will be redone");
                        return Disposition::Later(e.to_string());
                    }
                    info!(package = %promotion.package, from = %promotion.from, to = %promotion.to, generation = published.generation, "promoted");
                    None
                }
                None => {
                    warn!(package = %promotion.package, to = %promotion.to, missing = %result.missing.join("; "), "promotion refused: unsatisfiable dependencies");
                    Some(format!(
                        "promotion refused; unsatisfied in the target suite: {}",
                        result.missing.join("; ")
                    ))
                }
            }
        }
        Err(e @ (PublishError::Refused(_) | PublishError::Deb(_) | PublishError::Rpm(_)))
            if !e.is_timeout() =>
        {
            warn!(package = %promotion.package, error = %e, "promotion refused");
            result.error = Some(e.to_string());
            Some(format!("promotion refused: {e}"))
        }
        Err(e) if e.is_timeout() => {
            error!(error = %e, "promotion timed out; the job waits");
            return Disposition::Later(e.to_string());
        }
        Err(e) => {
            error!(error = %e, "promotion failed; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Disposition::Retry;
        }
    };
    let answered = match &promotion.reply_to {
        Some(reply_to) => {
            match Broker::publish_once(&farm.broker, reply_to, &result, &result.job_id).await {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "could not answer the promotion's asker (it may have gone)");
                    false
                }
            }
        }
        None => false,
    };
    match refusal {
        Some(reason) if !answered => {
            Disposition::DeadLetter(format!("{reason} (nobody waited for the answer)"))
        }
        _ => Disposition::Ack,
    }
}
