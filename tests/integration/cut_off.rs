//! A worker cut off from the broker in the middle of a build, as a worker on a host of its own
//! sees a network that goes away: its connection (and with it the job's lease and delivery) is
//! gone, but its build goes on. The job is built to the end by one worker only and handed to
//! the publisher once.

use std::time::Duration;

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::BuildOutcome;
use perestroika_protocol::Stage;
use perestroika_tests::cut_proxy::CutProxy;
use perestroika_tests::debian::{base_image, minimal_package, GitRepo};
use perestroika_tests::{combined_job, shared_amqp_url, Daemon};

use crate::outages::{
    builds_started, depth, farm_on, publish_jobs, queue, wait_depth, wait_until, worker, worker_at,
};

/// `host:port` of an AMQP URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap()
}

/// The build containers of `job` on the engine, by any worker.
fn containers_of(job: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=perestroika.job={job}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker ps failed");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Worker A builds the job; its connection is cut and stays cut until worker B has taken the
/// redelivered job (and its lease) and is building it. When A is back, it finds the lease held
/// and stops its own build: its container is removed, and only B's result reaches the
/// publisher.
#[tokio::test]
async fn a_worker_cut_off_mid_build_stops_when_another_took_its_job_over() {
    base_image("bookworm");
    let farm = farm_on(&shared_amqp_url(), "");
    let proxy = CutProxy::tcp(authority(&farm.config.broker.url));
    let behind = farm
        .config
        .broker
        .url
        .replace(authority(&farm.config.broker.url), &proxy.address());
    let mut repo = GitRepo::init(&farm.dir.path().join("cutpkg"));
    repo.commit(&minimal_package("cutpkg", "sleep 45"), "one");
    let job = combined_job(&farm.customer, "cutpkg", &repo.url(), &repo.head(), 0);
    let a = worker_at(&farm, "worker-a", &[], "", &behind);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    wait_until(
        "worker A builds the job",
        Duration::from_secs(120),
        || builds_started(&[&a], &job.job_id) == 1 && containers_of(&job.job_id) == 1,
        || a.output(),
    );

    proxy.stop();
    let b = worker(&farm, "worker-b", &[]);
    let logs = || format!("--- worker a\n{}\n--- worker b\n{}", a.output(), b.output());
    wait_until(
        "worker B takes the job over",
        Duration::from_secs(60),
        || builds_started(&[&b], &job.job_id) == 1,
        logs,
    );
    proxy.start_again();
    wait_until(
        "worker A stops its build",
        Duration::from_secs(60),
        || a.output().contains("another worker took the job over"),
        logs,
    );
    // A's container goes; B's stays until its build ends.
    wait_until(
        "worker A's container is removed",
        Duration::from_secs(30),
        || containers_of(&job.job_id) == 1,
        logs,
    );

    let published = publish_jobs(&broker, &farm, 1, Duration::from_secs(300)).await;
    assert_eq!(published.len(), 1, "no publish job:\n{}", logs());
    assert_eq!(published[0].outcome, BuildOutcome::Succeeded, "{}", logs());
    let more = publish_jobs(&broker, &farm, 1, Duration::from_secs(20)).await;
    assert!(more.is_empty(), "published twice:\n{}", logs());
    assert_eq!(containers_of(&job.job_id), 0, "{}", logs());
    let build = queue(&farm, Stage::Build);
    wait_depth(&broker, &build, 0, logs).await;
    assert_eq!(
        depth(&broker, &format!("{build}.dead")).await,
        0,
        "{}",
        logs()
    );
    broker.close().await;
}

/// The worker's connection is cut for a moment and comes back before any other worker took
/// the job: it takes the job's lease again, builds on, and settles the redelivered job with
/// its one build.
#[tokio::test]
async fn a_worker_cut_off_for_a_moment_keeps_its_job_and_builds_it_once() {
    base_image("bookworm");
    let farm = farm_on(&shared_amqp_url(), "");
    let proxy = CutProxy::tcp(authority(&farm.config.broker.url));
    let behind = farm
        .config
        .broker
        .url
        .replace(authority(&farm.config.broker.url), &proxy.address());
    let mut repo = GitRepo::init(&farm.dir.path().join("blippkg"));
    repo.commit(&minimal_package("blippkg", "sleep 30"), "one");
    let job = combined_job(&farm.customer, "blippkg", &repo.url(), &repo.head(), 0);
    let a: Daemon = worker_at(&farm, "worker-a", &[], "", &behind);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    wait_until(
        "the worker builds the job",
        Duration::from_secs(120),
        || builds_started(&[&a], &job.job_id) == 1 && containers_of(&job.job_id) == 1,
        || a.output(),
    );
    proxy.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.start_again();
    wait_until(
        "the worker takes the lease again",
        Duration::from_secs(30),
        || {
            a.output()
                .contains("kept the job's lease across the reconnection")
        },
        || a.output(),
    );
    let published = publish_jobs(&broker, &farm, 1, Duration::from_secs(300)).await;
    assert_eq!(published.len(), 1, "no publish job:\n{}", a.output());
    assert_eq!(published[0].outcome, BuildOutcome::Succeeded);
    let more = publish_jobs(&broker, &farm, 1, Duration::from_secs(15)).await;
    assert!(more.is_empty(), "published twice:\n{}", a.output());
    assert_eq!(builds_started(&[&a], &job.job_id), 1, "{}", a.output());
    let build = queue(&farm, Stage::Build);
    wait_depth(&broker, &build, 0, || a.output()).await;
    assert_eq!(
        depth(&broker, &format!("{build}.dead")).await,
        0,
        "{}",
        a.output()
    );
    broker.close().await;
}
