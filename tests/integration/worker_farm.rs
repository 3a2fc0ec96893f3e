//! The worker in farm mode: jobs from RabbitMQ, artifacts to staging, publish jobs onward.

use std::time::{Duration, Instant};

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{BuildJob, Message, PublishJob, Target};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::debian::{
    base_image, containers_of_job, minimal_package, package_cache, GitRepo,
};
use perestroika_tests::{assert_success, combined_job, run, shared_amqp_url, Daemon, Farm};

fn farm() -> Farm {
    farm_of(r#"{ name = "9.0", deb = ["bookworm"] }"#)
}

/// A farm with `release` as its customer's release 9.0, its queues declared.
fn farm_of(release: &str) -> Farm {
    let farm = Farm::custom(
        &shared_amqp_url(),
        "",
        &format!(
            "[build]\npackage_cache = \"{}\"\ntimeout_secs = 600\n",
            package_cache()
        ),
        release,
    );
    let out = run(
        "perestroika-queue",
        &["--config", farm.path.to_str().unwrap(), "bootstrap"],
    );
    assert_success(&out);
    farm
}

/// Queues `job` on the farm's build queue and starts a worker; returns the publish job it
/// sends on, with the broker and the worker.
async fn queue_and_build(farm: &Farm, job: &BuildJob) -> (Broker, Daemon, PublishJob) {
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let build_queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    broker
        .publish(&build_queue, job, &job.job_id)
        .await
        .unwrap();
    let worker = farm.daemon("perestroika-worker", "worker.log");
    let published = next_publish_job(&broker, farm, Duration::from_secs(120), &worker).await;
    assert_eq!(published.job_id, job.job_id);
    (broker, worker, published)
}

fn job_for(farm: &Farm, repo: &GitRepo, package: &str) -> BuildJob {
    combined_job(&farm.customer, package, &repo.url(), &repo.head(), 0)
}

async fn next_publish_job(
    broker: &Broker,
    farm: &Farm,
    within: Duration,
    worker: &Daemon,
) -> PublishJob {
    let queue = QueueName::new(Stage::Publish, &farm.customer, "9.0").to_string();
    match broker.take(&queue, within).await.unwrap() {
        Some(d) => PublishJob::from_bytes(&d.data).unwrap(),
        None => panic!(
            "no publish job within {within:?}; worker log:\n{}",
            worker.output()
        ),
    }
}

fn assert_staged(farm: &Farm, job: &PublishJob) {
    assert_staged_with(farm, job, "_all.deb")
}

/// The job's files are in staging as its manifest says, one of them ending in `package`.
fn assert_staged_with(farm: &Farm, job: &PublishJob, package: &str) {
    let dir = farm.config.paths.staging.join(&job.job_id);
    assert!(!job.artifacts.is_empty());
    for a in &job.artifacts {
        let described =
            perestroika_protocol::messages::Artifact::of_file(&dir.join(&a.name)).unwrap();
        assert_eq!(
            &described, a,
            "staged file differs from the publish job's manifest"
        );
    }
    assert!(
        job.artifacts.iter().any(|a| a.name.ends_with(package)),
        "no {package} among {:?}",
        job.artifacts
    );
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.join("result.json")).unwrap()).unwrap();
    assert_eq!(record["outcome"]["status"], "succeeded");
    assert!(dir.join("build.log").is_file());
}

#[tokio::test]
async fn a_queued_job_is_built_staged_and_handed_to_the_publisher() {
    base_image("bookworm");
    let farm = farm();
    let mut repo = GitRepo::init(&farm.dir.path().join("farmpkg"));
    repo.commit(&minimal_package("farmpkg", "true"), "one");
    let job = job_for(&farm, &repo, "farmpkg");
    let (broker, worker, published) = queue_and_build(&farm, &job).await;
    let build_queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    assert_eq!(published.package_version, "1.0+p1.0");
    assert_eq!(published.target, Target::Release);
    assert_staged(&farm, &published);
    // Acknowledged: nothing left in the build queue, nothing dead.
    let stats = broker.stats(&build_queue).await.unwrap();
    assert_eq!(stats.messages, 0, "{}", worker.output());
    assert_eq!(
        broker
            .stats(&format!("{build_queue}.dead"))
            .await
            .unwrap()
            .messages,
        0
    );
    broker.close().await;
}

#[tokio::test]
async fn a_worker_killed_mid_build_leaves_the_job_to_the_next_one() {
    base_image("bookworm");
    let farm = farm();
    let mut repo = GitRepo::init(&farm.dir.path().join("slowpkg"));
    repo.commit(&minimal_package("slowpkg", "sleep 20"), "one");
    let job = job_for(&farm, &repo, "slowpkg");
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let build_queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    broker
        .publish(&build_queue, &job, &job.job_id)
        .await
        .unwrap();

    let mut first = farm.daemon("perestroika-worker", "first.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while containers_of_job(&job.job_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first worker never started the build:\n{}",
            first.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill();
    assert!(
        !containers_of_job(&job.job_id).is_empty(),
        "a killed worker cannot have cleaned up"
    );

    let second = farm.daemon("perestroika-worker", "second.log");
    let published = next_publish_job(&broker, &farm, Duration::from_secs(120), &second).await;
    assert_eq!(published.job_id, job.job_id);
    assert_staged(&farm, &published);
    assert!(
        containers_of_job(&job.job_id).is_empty(),
        "{}",
        second.output()
    );
    assert_eq!(broker.stats(&build_queue).await.unwrap().messages, 0);
    broker.close().await;
}

/// An rpm job goes the same way as a deb job: built in the distro's rpm image, its packages
/// staged with their manifest, the publish job queued.
#[tokio::test]
async fn a_queued_rpm_job_is_built_and_handed_to_the_publisher() {
    use perestroika_config::Family;
    use perestroika_tests::debian::{greet_code, greet_packaging, rpm_image, RPM_DISTRO};

    rpm_image();
    let farm = farm_of(&format!(
        r#"{{ name = "9.0", deb = ["bookworm"], rpm = ["{RPM_DISTRO}"] }}"#
    ));
    // One repository holding the code and rpm/greet.spec.
    let mut repo = GitRepo::init(&farm.dir.path().join("greet"));
    let mut files = greet_code("Hello from the queue");
    files.extend(greet_packaging());
    repo.commit(&files, "greet");
    let job = perestroika_tests::combined_job_for(
        &farm.customer,
        "greet",
        (Family::Rpm, RPM_DISTRO),
        &repo.url(),
        &repo.head(),
        0,
    );
    let (broker, _worker, published) = queue_and_build(&farm, &job).await;
    assert_eq!(published.family, Family::Rpm);
    assert_eq!(published.package_version, "1.0-p1.0");
    assert_staged_with(&farm, &published, "greet-1.0-p1.0.x86_64.rpm");
    assert!(published
        .artifacts
        .iter()
        .any(|a| a.name == "greet-1.0-p1.0.src.rpm"));
    assert!(containers_of_job(&job.job_id).is_empty());
    broker.close().await;
}
