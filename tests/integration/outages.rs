//! Long work and passing outages against the real parts: a build longer than the broker's
//! consumer timeout, a Docker engine and a Gerrit that go away and come back, and sources that
//! are really broken. What the farm could not do now waits; what is broken fails once.

use std::time::{Duration, Instant};

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{BuildJob, BuildOutcome, Message, PublishJob};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::cut_proxy::CutProxy;
use perestroika_tests::debian::{base_image, minimal_package, package_cache, GitRepo};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::whole::{change, WholeFarm};
use perestroika_tests::{combined_job, shared_amqp_url, Daemon, Farm};

const RELEASE: &str = r#"{ name = "9.0", deb = ["bookworm"] }"#;

pub(crate) fn farm_on(amqp_url: &str, broker_extra: &str) -> Farm {
    let farm = Farm::custom(
        amqp_url,
        broker_extra,
        &format!(
            "[build]\npackage_cache = \"{}\"\ntimeout_secs = 600\n",
            package_cache()
        ),
        RELEASE,
    );
    farm.bootstrap();
    farm
}

pub(crate) fn queue(farm: &Farm, stage: Stage) -> String {
    QueueName::new(stage, &farm.customer, "9.0").to_string()
}

/// A worker of `farm` whose state is its own ([`Farm::own_worker`]).
pub(crate) fn worker(farm: &Farm, name: &str, env: &[(&str, &str)]) -> Daemon {
    farm.own_worker(name, env, "", None)
}

pub(crate) fn wait_until(
    what: &str,
    within: Duration,
    done: impl Fn() -> bool,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many builds of `job` the workers' JSON log events say they started.
pub(crate) fn builds_started(workers: &[&Daemon], job: &str) -> usize {
    workers
        .iter()
        .flat_map(|w| w.events())
        .filter(|e| e.job() == Some(job) && e.starts("build"))
        .count()
}

pub(crate) async fn publish_jobs(
    broker: &Broker,
    farm: &Farm,
    n: usize,
    within: Duration,
) -> Vec<PublishJob> {
    let q = queue(farm, Stage::Publish);
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match broker
            .take(&q, left.max(Duration::from_millis(100)))
            .await
            .unwrap()
        {
            Some(d) => got.push(PublishJob::from_bytes(&d.data).unwrap()),
            None => break,
        }
    }
    got
}

pub(crate) async fn depth(broker: &Broker, queue: &str) -> u32 {
    broker.stats(queue).await.unwrap().messages
}

pub(crate) async fn wait_depth(broker: &Broker, queue: &str, want: u32, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while depth(broker, queue).await != want {
        assert!(
            Instant::now() < deadline,
            "{queue} never held {want}:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// On RabbitMQ before 3.12 only the broker-wide `consumer_timeout` exists: shortened to 5 s,
/// the broker takes the job back from the worker's channel while it is still building (and
/// again and again). Two workers run. The job is built once — the redelivery waits for the
/// lease — published once, and neither dead-lettered nor left in the queue.
#[tokio::test]
async fn a_build_longer_than_the_consumer_timeout_is_built_once_and_published_once() {
    base_image("bookworm");
    let rabbit = Rabbit::start_with_consumer_timeout(Duration::from_secs(5));
    let farm = farm_on(&rabbit.url(), "");
    let mut repo = GitRepo::init(&farm.dir.path().join("longpkg"));
    repo.commit(&minimal_package("longpkg", "sleep 80"), "one");
    let job = combined_job(&farm.customer, "longpkg", &repo.url(), &repo.head(), 0);
    let a = worker(&farm, "worker-a", &[]);
    let b = worker(&farm, "worker-b", &[]);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    let logs = || format!("--- worker a\n{}\n--- worker b\n{}", a.output(), b.output());

    let published = publish_jobs(&broker, &farm, 1, Duration::from_secs(400)).await;
    assert_eq!(published.len(), 1, "no publish job:\n{}", logs());
    assert_eq!(published[0].job_id, job.job_id);
    assert_eq!(published[0].outcome, BuildOutcome::Succeeded);
    // Nothing more comes: the redeliveries were settled without a second build.
    let more = publish_jobs(&broker, &farm, 1, Duration::from_secs(20)).await;
    assert!(more.is_empty(), "published twice:\n{}", logs());
    let all = logs();
    assert_eq!(
        builds_started(&[&a, &b], &job.job_id),
        1,
        "built more than once:\n{all}"
    );
    assert!(
        all.contains("delivered again while building it here")
            || all.contains("another worker is building this job"),
        "the broker never took the job back, so this proves nothing:\n{all}"
    );
    assert_drained(&broker, &farm, logs).await;
    broker.close().await;
}

/// The build containers of `job` on the engine, by any worker.
pub(crate) fn containers_of(job: &str) -> usize {
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

/// Asserts that the farm's build queue empties and that nothing was dead-lettered.
pub(crate) async fn assert_drained(broker: &Broker, farm: &Farm, logs: impl Fn() -> String) {
    let build = queue(farm, Stage::Build);
    wait_depth(broker, &build, 0, &logs).await;
    assert_eq!(
        depth(broker, &format!("{build}.dead")).await,
        0,
        "{}",
        logs()
    );
}

/// The Docker engine goes away with jobs queued (an engine restarted by an upgrade), for longer
/// than the delivery limit (2) would allow if each try counted. Nothing is dead-lettered and
/// nothing reaches the publisher while it is gone; once it is back every job is built and
/// handed over.
#[tokio::test]
async fn a_docker_engine_outage_loses_nothing_and_dead_letters_nothing() {
    base_image("bookworm");
    let farm = farm_on(&shared_amqp_url(), "delivery_limit = 2\n");
    let proxy = CutProxy::docker(&farm.dir.path().join("docker.sock"));
    let host = proxy.address();
    let w = worker(&farm, "worker", &[("DOCKER_HOST", host.as_str())]);
    proxy.stop();

    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let mut jobs: Vec<BuildJob> = Vec::new();
    for name in ["outage-one", "outage-two"] {
        let mut repo = GitRepo::init(&farm.dir.path().join(name));
        repo.commit(&minimal_package(name, "true"), "one");
        let job = combined_job(&farm.customer, name, &repo.url(), &repo.head(), 0);
        broker
            .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
            .await
            .unwrap();
        jobs.push(job);
    }
    // Each job is tried at least three times while the engine is gone.
    wait_until(
        "the worker tries the jobs without Docker",
        Duration::from_secs(120),
        || w.output().matches("could not build now").count() >= 6,
        || w.output(),
    );
    let build = queue(&farm, Stage::Build);
    assert_eq!(
        depth(&broker, &format!("{build}.dead")).await,
        0,
        "{}",
        w.output()
    );
    assert_eq!(depth(&broker, &queue(&farm, Stage::Publish)).await, 0);

    let back = Instant::now();
    proxy.start_again();
    let published = publish_jobs(&broker, &farm, 2, Duration::from_secs(300)).await;
    let recovered = back.elapsed();
    assert_eq!(published.len(), 2, "{}", w.output());
    for p in &published {
        assert_eq!(p.outcome, BuildOutcome::Succeeded, "{}", w.output());
        assert!(jobs.iter().any(|j| j.job_id == p.job_id));
    }
    assert_eq!(depth(&broker, &format!("{build}.dead")).await, 0);
    eprintln!("docker outage: both jobs handed over {recovered:.1?} after the engine came back");
    broker.close().await;
}

/// Gerrit goes down for maintenance after a merge was queued — its SSH and, for the worker, its
/// git repositories (the stand-in serves them as `file://`, so they are moved away): the
/// worker cannot fetch the sources and waits — no build failure, no vote, no dead letter. Once
/// Gerrit is back the merge is built, published and voted on once.
#[test]
fn a_gerrit_outage_during_queued_work_loses_nothing_and_votes_nothing() {
    let mut f = WholeFarm::start();
    f.worker.kill();
    let project = format!("{}/packages/deb/bookworm/outage", f.farm.customer);
    let head = f.gerrit.push(
        &project,
        "9.0",
        &minimal_package("outage", "true"),
        "outage 1.0",
    );
    f.event(&change(&project, "9.0", 301, 1, &head), "change-merged");
    f.wait_for("the merge is queued", Duration::from_secs(60), || {
        f.queued_jobs().len() == 1
    });
    f.gerrit.stop();
    let git = f.gerrit.git_root();
    let away = git.with_extension("away");
    fs_err::rename(&git, &away).unwrap();
    f.worker = f.farm.daemon("perestroika-worker", "worker-outage.log");
    f.wait_for(
        "the worker tries to fetch",
        Duration::from_secs(120),
        || f.worker.output().matches("could not build now").count() >= 2,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime
        .block_on(Broker::connect(&f.farm.config.broker))
        .unwrap();
    let build = queue(&f.farm, Stage::Build);
    let dead = runtime.block_on(depth(&broker, &format!("{build}.dead")));
    assert_eq!(dead, 0, "{}", f.worker.output());
    assert!(
        !f.publisher.output().contains("failed"),
        "{}",
        f.publisher.output()
    );

    assert!(
        f.worker.output().contains("the job will be tried again"),
        "{}",
        f.worker.output()
    );
    let back = Instant::now();
    fs_err::rename(&away, &git).unwrap();
    f.gerrit.start_sshd();
    let release = f.tree("9.0");
    f.wait_mirrored(&release, 1, Duration::from_secs(600));
    let recovered = back.elapsed();
    f.wait_for("the vote", Duration::from_secs(60), || {
        !f.gerrit.reviews().is_empty()
    });
    let reviews = f.gerrit.reviews();
    assert_eq!(reviews.len(), 1, "one vote, after the build: {reviews:?}");
    let labels = reviews[0]["labels"].as_object().expect("labels");
    assert!(
        labels.values().all(|v| v.as_i64().unwrap_or(0) > 0),
        "a vote for the build, no failure vote: {reviews:?}"
    );
    assert_eq!(
        runtime.block_on(depth(&broker, &format!("{build}.dead"))),
        0
    );
    eprintln!("gerrit outage: published {recovered:.1?} after Gerrit came back");
    runtime.block_on(broker.close());
}

/// Sources that are really broken (a commit without packaging) fail once, at step `source`,
/// with the reason: one failed publish job, one dead letter, one build started.
#[tokio::test]
async fn broken_sources_fail_once_with_their_reason() {
    base_image("bookworm");
    let farm = farm_on(&shared_amqp_url(), "");
    let mut repo = GitRepo::init(&farm.dir.path().join("nopackaging"));
    repo.commit(&[("README".into(), "no debian/ here\n".into())], "one");
    let job = combined_job(&farm.customer, "nopackaging", &repo.url(), &repo.head(), 0);
    let w = worker(&farm, "worker", &[]);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    let published = publish_jobs(&broker, &farm, 1, Duration::from_secs(120)).await;
    assert_eq!(published.len(), 1, "{}", w.output());
    match &published[0].outcome {
        BuildOutcome::Failed { step, reason } => {
            assert_eq!(step, "source");
            assert!(reason.contains("debian"), "{reason}");
        }
        other => panic!("expected a failure at step source, got {other:?}"),
    }
    let build = queue(&farm, Stage::Build);
    wait_depth(&broker, &format!("{build}.dead"), 1, || w.output()).await;
    // Not tried again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(builds_started(&[&w], &job.job_id), 1, "{}", w.output());
    assert_eq!(depth(&broker, &build).await, 0);
    broker.close().await;
}

/// A worker whose staging or state filesystem has less free space than `paths.min_free_bytes`
/// takes no job (it stays queued, nothing is tried); started with room, it builds it.
#[tokio::test]
async fn a_worker_short_of_space_takes_no_job_until_there_is_room() {
    base_image("bookworm");
    let farm = farm_on(&shared_amqp_url(), "");
    let mut repo = GitRepo::init(&farm.dir.path().join("roomy"));
    repo.commit(&minimal_package("roomy", "true"), "one");
    let job = combined_job(&farm.customer, "roomy", &repo.url(), &repo.head(), 0);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let build = queue(&farm, Stage::Build);
    broker.publish(&build, &job, &job.job_id).await.unwrap();
    // More than any test filesystem has free.
    let mut short = farm.own_worker("short", &[], "min_free_bytes = 1152921504606846976\n", None);
    wait_until(
        "the worker says it is short of space",
        Duration::from_secs(30),
        || short.output().contains("taking no jobs"),
        || short.output(),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let said = short.output();
    assert!(said.contains("paths.min_free_bytes"), "{said}");
    assert_eq!(builds_started(&[&short], &job.job_id), 0, "{said}");
    assert_eq!(
        depth(&broker, &build).await,
        1,
        "the job stays queued:\n{said}"
    );
    short.kill();

    let roomy = worker(&farm, "roomy", &[]);
    let published = publish_jobs(&broker, &farm, 1, Duration::from_secs(180)).await;
    assert_eq!(published.len(), 1, "{}", roomy.output());
    assert_eq!(published[0].outcome, BuildOutcome::Succeeded);
    broker.close().await;
}
