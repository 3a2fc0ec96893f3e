//! A worker cut off from the broker in the middle of a build, as a worker on a host of its own
//! sees a network that goes away: its connection (and with it the job's lease and delivery) is
//! gone, but its build goes on. The job is built to the end by one worker only and handed to
//! the publisher once.

use std::time::Duration;

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{BuildJob, BuildOutcome};
use perestroika_protocol::Stage;
use perestroika_tests::cut_proxy::CutProxy;
use perestroika_tests::debian::{base_image, minimal_package, GitRepo};
use perestroika_tests::{combined_job, shared_amqp_url, Daemon, Farm};

use crate::outages::{
    assert_drained, builds_started, farm_on, publish_jobs, queue, wait_until, worker, worker_at,
};

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

/// A farm whose worker A reaches the broker through a proxy the test cuts, building a job of
/// package `name` whose build sleeps `secs`.
struct CutOff {
    farm: Farm,
    proxy: CutProxy,
    job: BuildJob,
    a: Daemon,
    broker: Broker,
}

impl CutOff {
    /// Starts worker A, queues the job and waits until A builds it.
    async fn building(name: &str, secs: u32) -> Self {
        base_image("bookworm");
        let farm = farm_on(&shared_amqp_url(), "");
        let url = farm.config.broker.url.clone();
        // `host:port` of the broker.
        let authority = url.split_once('@').unwrap().1.split('/').next().unwrap();
        let proxy = CutProxy::tcp(authority);
        let behind = url.replace(authority, &proxy.address());
        let mut repo = GitRepo::init(&farm.dir.path().join(name));
        repo.commit(&minimal_package(name, &format!("sleep {secs}")), "one");
        let job = combined_job(&farm.customer, name, &repo.url(), &repo.head(), 0);
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
        Self {
            farm,
            proxy,
            job,
            a,
            broker,
        }
    }

    /// Asserts that the job reaches the publisher once, as built, and that the build queue
    /// empties with nothing dead-lettered.
    async fn assert_handed_over_once(&self, logs: impl Fn() -> String) {
        let published = publish_jobs(&self.broker, &self.farm, 1, Duration::from_secs(300)).await;
        assert_eq!(published.len(), 1, "no publish job:\n{}", logs());
        assert_eq!(published[0].outcome, BuildOutcome::Succeeded, "{}", logs());
        let more = publish_jobs(&self.broker, &self.farm, 1, Duration::from_secs(15)).await;
        assert!(more.is_empty(), "published twice:\n{}", logs());
        assert_drained(&self.broker, &self.farm, logs).await;
    }
}

/// Worker A builds the job; its connection is cut and stays cut until worker B has taken the
/// redelivered job (and its lease) and is building it. When A is back, it finds the lease held
/// and stops its own build: its container is removed, and only B's result reaches the
/// publisher.
#[tokio::test]
async fn a_worker_cut_off_mid_build_stops_when_another_took_its_job_over() {
    let t = CutOff::building("cutpkg", 45).await;
    let job = &t.job.job_id;
    t.proxy.stop();
    let b = worker(&t.farm, "worker-b", &[]);
    let logs = || {
        format!(
            "--- worker a\n{}\n--- worker b\n{}",
            t.a.output(),
            b.output()
        )
    };
    wait_until(
        "worker B takes the job over",
        Duration::from_secs(60),
        || builds_started(&[&b], job) == 1,
        logs,
    );
    t.proxy.start_again();
    wait_until(
        "worker A stops its build",
        Duration::from_secs(60),
        || t.a.output().contains("another worker took the job over"),
        logs,
    );
    // A's container goes; B's stays until its build ends.
    wait_until(
        "worker A's container is removed",
        Duration::from_secs(30),
        || containers_of(job) == 1,
        logs,
    );
    t.assert_handed_over_once(logs).await;
    assert_eq!(containers_of(job), 0, "{}", logs());
    t.broker.close().await;
}

/// The worker's connection is cut for a moment and comes back before any other worker took
/// the job: it takes the job's lease again, builds on, and settles the redelivered job with
/// its one build.
#[tokio::test]
async fn a_worker_cut_off_for_a_moment_keeps_its_job_and_builds_it_once() {
    let t = CutOff::building("blippkg", 30).await;
    t.proxy.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    t.proxy.start_again();
    let logs = || t.a.output();
    wait_until(
        "the worker takes the lease again",
        Duration::from_secs(30),
        || logs().contains("kept the job's lease across the reconnection"),
        logs,
    );
    t.assert_handed_over_once(logs).await;
    assert_eq!(builds_started(&[&t.a], &t.job.job_id), 1, "{}", logs());
    t.broker.close().await;
}
