//! One job of `build.<customer>.<version>`, as the intake hands it over: build it, hand the
//! artifacts to staging, and queue the publish job. A job is acknowledged only once its
//! artifacts are in staging and the publish job is confirmed; a worker that dies mid-build
//! leaves the job to be redelivered.

use std::path::{Path, PathBuf};

use perestroika_config::{Family, FarmConfig};
use perestroika_protocol::broker::{Broker, Disposition};
use perestroika_protocol::messages::{BuildJob, BuildOutcome, Message, PublishJob, Target};
use perestroika_protocol::{QueueName, Stage};
use perestroika_published::Reader;
use tracing::{error, info, warn};

use crate::build;
use crate::source::SourceInput;
use crate::steps::remote::{copies_dir, copy_deb_suites, copy_rpm_repos, Contents};
use crate::steps::{BuildEnv, BuildRequest, DepRepo};

/// Where a job's build dependencies may come from besides the base, as `(tree relative to the
/// public root, suite)`: the release suite (and, in maintenance, `proposed`, where merges go),
/// and for a topic build the topic's review repository, so that the topic's changes build
/// against each other.
fn wanted_repos(farm: &FarmConfig, job: &BuildJob) -> Vec<(String, String)> {
    let release = Target::Release.tree(&job.customer, &job.version);
    let mut repos = vec![(release.clone(), job.distro.clone())];
    let merges = farm.merge_suite(&job.customer, &job.version, &job.distro);
    if merges != job.distro {
        repos.push((release, merges));
    }
    if let Target::Topic { .. } = job.target {
        repos.push((
            job.target.tree(&job.customer, &job.version),
            job.distro.clone(),
        ));
    }
    repos
}

/// The dependency repositories of a job: in the local public root, or, with `[public] url`,
/// verified copies of the mirror's (deb) made below `copies`.
async fn dep_repos(
    farm: &FarmConfig,
    env: &BuildEnv,
    job: &BuildJob,
    copies: &Path,
) -> Result<Vec<DepRepo>, String> {
    let wanted = wanted_repos(farm, job);
    if farm.public.url.is_none() {
        let root = &farm.paths.public_root;
        return Ok(wanted
            .iter()
            .map(|(tree, suite)| DepRepo::new(root.join(tree), suite))
            .collect());
    }
    let reader = Reader::of_farm(farm).map_err(|e| e.to_string())?;
    let cache = env.scratch.join("published-cache");
    let copied = match job.family {
        Family::Deb => copy_deb_suites(&reader, &wanted, copies, &cache, Contents::Binaries).await,
        Family::Rpm => {
            copy_rpm_repos(&reader, &wanted, std::env::consts::ARCH, copies, &cache).await
        }
    };
    copied.map_err(|e| {
        format!(
            "the release's repository at {} is refused: {e}",
            reader.source()
        )
    })
}

/// Where a job's files end up for the publisher.
pub fn staged_dir(staging: &Path, job_id: &str) -> PathBuf {
    staging.join(job_id)
}

/// Where this process builds a job's results before they are staged whole.
fn incoming_dir(farm: &FarmConfig, job_id: &str) -> PathBuf {
    farm.paths
        .staging
        .join(format!(".incoming-{job_id}-{}", std::process::id()))
}

/// Cleans up after a build stopped midway (its job taken over by another worker): its
/// containers, its build root and sources, and its unstaged results.
pub(super) async fn abandon(farm: &FarmConfig, env: &BuildEnv, job_id: &str) {
    match crate::container::docker::remove_job(&env.docker, &env.owner, job_id).await {
        Ok(n) => info!(job = %job_id, containers = n, "removed the stopped build's containers"),
        Err(e) => {
            warn!(job = %job_id, error = %e, "cannot remove the stopped build's containers; they go at the next start")
        }
    }
    crate::build::release_work(env, job_id);
    let _ = fs_err::remove_dir_all(incoming_dir(farm, job_id));
}

/// Builds one job and hands it over; what becomes of its delivery.
pub(super) async fn handle(
    farm: &FarmConfig,
    env: &BuildEnv,
    queue: &QueueName,
    data: &[u8],
) -> Disposition {
    let job = match BuildJob::from_bytes(data) {
        Ok(job) => job,
        Err(e) => return Disposition::DeadLetter(format!("not a valid build job: {e}")),
    };
    if let Err(e) = perestroika_protocol::validate::build_job(farm, queue, &job) {
        warn!(job = %job.job_id, reason = %e, "refusing a build job");
        return Disposition::DeadLetter(e.to_string());
    }
    info!(job = %job.job_id, %queue, stage = "build", package = %job.package, distro = %job.distro, "starting the build");
    let started = std::time::Instant::now();
    let staging = &farm.paths.staging;
    let incoming = incoming_dir(farm, &job.job_id);
    let _ = fs_err::remove_dir_all(&incoming);
    let copies = copies_dir(&env.scratch, &job.job_id);
    let _ = fs_err::remove_dir_all(&copies);
    let dep_repos = match dep_repos(farm, env, &job, &copies).await {
        Ok(repos) => repos,
        Err(reason) => {
            // Nothing is built from a tree that is not what the pinned keys signed.
            error!(job = %job.job_id, %reason, "not building: build dependencies unavailable");
            let _ = fs_err::remove_dir_all(&copies);
            return Disposition::Later(reason);
        }
    };
    let req = BuildRequest {
        job_id: job.job_id.clone(),
        input: SourceInput::Git {
            sources: Box::new(job.sources.clone()),
            rebuild: job.rebuild,
            review: job.target != Target::Release,
        },
        distro: job.distro.clone(),
        family: Some(job.family),
        dep_repos,
        base_digest: farm
            .release(&job.customer, &job.version)
            .and_then(|r| r.base_digests.get(&job.distro))
            .cloned(),
        out_dir: incoming.clone(),
        echo: false,
    };
    let report = build::run(env, &req).await;
    let _ = fs_err::remove_dir_all(&copies);
    let report = match report {
        Ok(report) => report,
        Err(e) if !e.is_transient() => {
            error!(job = %job.job_id, error = %e, "cannot build this job here; returning it");
            let _ = fs_err::remove_dir_all(&incoming);
            return Disposition::Retry;
        }
        Err(e) => {
            error!(job = %job.job_id, error = %e, "could not build now");
            let _ = fs_err::remove_dir_all(&incoming);
            return Disposition::Later(e.to_string());
        }
    };
    // Hand over: the job's directory appears complete or not at all, and durable (its files,
    // then the rename) before the publish job is queued and the build acknowledged.
    let dest = staged_dir(staging, &job.job_id);
    let _ = fs_err::remove_dir_all(&dest);
    let staged = perestroika_host::files::sync_tree(&incoming)
        .and_then(|()| fs_err::rename(&incoming, &dest))
        .and_then(|()| perestroika_host::files::sync_dir(staging));
    if let Err(e) = staged {
        error!(job = %job.job_id, error = %e, "could not stage the results");
        return Disposition::Later(format!("staging the results: {e}"));
    }
    let result = report.result;
    let failed = match &result.outcome {
        BuildOutcome::Failed { step, reason } => {
            warn!(job = %job.job_id, stage = "build", secs = started.elapsed().as_secs_f64(), %step, %reason, "build failed");
            Some(format!(
                "build failed at step {step}: {reason} (log: {})",
                dest.join(build::LOG_NAME).display()
            ))
        }
        BuildOutcome::Succeeded => None,
    };
    // A failed build goes to the publisher too: it publishes the log and reports the failure.
    let mut publish = PublishJob::of_build(
        &job,
        result.package_version.clone().unwrap_or_default(),
        if failed.is_some() {
            Vec::new()
        } else {
            result.artifacts.clone()
        },
        result.log.clone(),
        result.outcome.clone(),
    );
    // Served to a publisher on another host: the job names this worker, never an address.
    if farm.worker.serves_staging() {
        publish.staged_on = farm.worker.name.clone();
    }
    let queue = QueueName::new(Stage::Publish, &job.customer, &job.version).to_string();
    if let Err(e) = Broker::publish_once(&farm.broker, &queue, &publish, &job.job_id).await {
        error!(job = %job.job_id, error = %e, "could not queue the publish job");
        return Disposition::Later(format!("queueing the publish job: {e}"));
    }
    match failed {
        // Dead-lettered, so that the operator finds it with `perestroika-queue dead`.
        Some(reason) => Disposition::DeadLetter(reason),
        None => {
            info!(job = %job.job_id, stage = "build", secs = started.elapsed().as_secs_f64(), version = result.package_version.as_deref().unwrap_or("unknown"), "built and handed to the publisher");
            Disposition::Ack
        }
    }
}
