//! Base images through a registry (`[images] registry`): a real `docker-registry` process on a
//! loopback port, real pushes and pulls by digest through the Docker engine, real builds by
//! workers in farm mode. Each result records the digest of the base it was built on.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use perestroika_config::Family;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{BuildJob, Message, PublishJob};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::debian::{base_image, minimal_package, package_cache, GitRepo};
use perestroika_tests::registry::TestRegistry;
use perestroika_tests::{assert_success, run, sh, shared_amqp_url, unique, Daemon, Farm};

const RELEASE: &str = r#"{ name = "9.0", deb = ["bookworm"] }"#;

/// A farm whose workers take base images from `registry`, resolving its tags every second.
fn farm_with(registry: &TestRegistry) -> Farm {
    let farm = Farm::custom(
        &shared_amqp_url(),
        "",
        &format!(
            "[build]\npackage_cache = \"{}\"\ntimeout_secs = 600\n\n[images]\nregistry = \"{}\"\nresolve_secs = 1\n",
            package_cache(),
            registry.address()
        ),
        RELEASE,
    );
    farm.bootstrap();
    farm
}

/// Adds release 9.1 to the farm's configuration, its bookworm builds pinned to `digest`.
fn pin_release(farm: &Farm, digest: &str) {
    let text = fs_err::read_to_string(&farm.path).unwrap();
    let pinned = format!(
        r#"{RELEASE}, {{ name = "9.1", deb = ["bookworm"], base_digests = {{ bookworm = "{digest}" }} }}"#
    );
    fs_err::write(&farm.path, text.replace(RELEASE, &pinned)).unwrap();
    farm.bootstrap();
}

/// A second worker's configuration: the same farm, its own state directory.
fn second_worker(farm: &Farm) -> std::path::PathBuf {
    let text = fs_err::read_to_string(&farm.path).unwrap();
    let state = farm.config.paths.state.display().to_string();
    let path = farm.dir.path().join("farm-2.toml");
    fs_err::write(
        &path,
        text.replace(&format!("\"{state}\""), &format!("\"{state}-2\"")),
    )
    .unwrap();
    path
}

/// `image push` of the base image `image` through `config`; the digest it was pushed as.
fn push(config: &Path, image: &str) -> String {
    let out = run(
        "perestroika-worker",
        &[
            "--config",
            config.to_str().unwrap(),
            "image",
            "push",
            "--distro",
            "bookworm",
            "--image",
            image,
        ],
    );
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let digest = stdout
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{stdout}");
    digest
}

/// Whether the Docker engine has the image `reference`.
fn docker_has(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .unwrap()
        .status
        .success()
}

/// The id of the image `reference`.
fn image_id(reference: &str) -> String {
    sh(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference]))
        .trim()
        .to_owned()
}

/// An image of this test: `base` plus one file, a new digest once pushed. It is dated long
/// ago, so that no build without a registry on this engine takes it for the newest base.
struct Derived(String);

impl Derived {
    fn of(base: &str, dir: &Path) -> Self {
        let name = format!("perestroika-test-registry/{}:derived", unique("d"));
        let container = sh(Command::new("docker").args(["create", base, "/bin/true"]));
        let container = container.trim();
        let marker = dir.join("marker");
        fs_err::write(&marker, "a newer base\n").unwrap();
        sh(Command::new("docker").args([
            "cp",
            marker.to_str().unwrap(),
            &format!("{container}:/etc/perestroika-test-marker"),
        ]));
        sh(Command::new("docker").args([
            "commit",
            "--change",
            "LABEL perestroika.created=19700101T000000Z",
            container,
            &name,
        ]));
        sh(Command::new("docker").args(["rm", container]));
        Self(name)
    }
}

impl Drop for Derived {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// A manual build job of `version` for a package of `repo`; `rebuild` keeps job ids apart.
fn job(farm: &Farm, version: &str, repo: &GitRepo, rebuild: u32) -> BuildJob {
    perestroika_tests::combined_job_in(
        &farm.customer,
        version,
        "regpkg",
        (Family::Deb, "bookworm"),
        &repo.url(),
        &repo.head(),
        rebuild,
    )
}

/// Queues `job` and waits up to `within` for its publish job; the build's `result.json`.
async fn build(
    broker: &Broker,
    farm: &Farm,
    job: &BuildJob,
    within: Duration,
    worker: &Daemon,
) -> serde_json::Value {
    let build_queue = QueueName::new(Stage::Build, &farm.customer, &job.version).to_string();
    broker
        .publish(&build_queue, job, &job.job_id)
        .await
        .unwrap();
    let queue = QueueName::new(Stage::Publish, &farm.customer, &job.version).to_string();
    let published = match broker.take(&queue, within).await.unwrap() {
        Some(d) => PublishJob::from_bytes(&d.data).unwrap(),
        None => panic!(
            "no publish job within {within:?}; worker log:\n{}",
            worker.output()
        ),
    };
    assert_eq!(published.job_id, job.job_id, "{}", worker.output());
    let dir = farm.config.paths.staging.join(&job.job_id);
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.join("result.json")).unwrap()).unwrap();
    assert_eq!(
        record["outcome"]["status"],
        "succeeded",
        "{}",
        worker.output()
    );
    record
}

/// Waits up to `within` until the worker has logged every one of `needles`.
/// Queues one build of a small package for 9.0 and starts a worker, which must log every one
/// of `said` within `within` and hand nothing to the publisher: the broker, the worker and
/// the job.
async fn one_job_not_built(
    farm: &Farm,
    said: &[&str],
    within: Duration,
) -> (Broker, Daemon, BuildJob) {
    let mut git = GitRepo::init(&farm.dir.path().join("regpkg"));
    git.commit(&minimal_package("regpkg", "true"), "one");
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let worker = start_worker(&farm.path, &farm.dir.path().join("worker.log"));
    let job = job(farm, "9.0", &git, 1);
    let build_queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    broker
        .publish(&build_queue, &job, &job.job_id)
        .await
        .unwrap();
    wait_for_output(&worker, said, within).await;
    let publish_queue = QueueName::new(Stage::Publish, &farm.customer, "9.0").to_string();
    let published = broker
        .take(&publish_queue, Duration::from_secs(5))
        .await
        .unwrap();
    let output = worker.output();
    assert!(published.is_none(), "built:\n{output}");
    assert!(said.iter().all(|s| output.contains(s)), "{output}");
    (broker, worker, job)
}

async fn wait_for_output(worker: &Daemon, needles: &[&str], within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let output = worker.output();
        if needles.iter().all(|n| output.contains(n)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never logged {needles:?} within {within:?}:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn start_worker(config: &Path, log: &Path) -> Daemon {
    Daemon::start(
        "perestroika-worker",
        &["--config", config.to_str().unwrap(), "run"],
        log,
    )
}

#[tokio::test]
async fn workers_pull_the_base_by_digest_follow_a_new_one_and_keep_pinned_releases() {
    let base = base_image("bookworm");
    let dir = tempfile::tempdir().unwrap();
    let mut registry = TestRegistry::start(&dir.path().join("registry"));
    let farm = farm_with(&registry);
    let repo_of = |address: String| format!("{address}/perestroika-build/bookworm");
    let repository = repo_of(registry.address());

    // The operator's host pushes the base; the workers' engine does not have it by that name.
    let old = push(&farm.path, &base);
    registry.forget_local();
    assert!(!docker_has(&format!("{repository}@{old}")));
    pin_release(&farm, &old);
    let mut git = GitRepo::init(&farm.dir.path().join("regpkg"));
    git.commit(&minimal_package("regpkg", "true"), "one");
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let long = Duration::from_secs(300);

    // Two workers, each pulling the base by digest before its build.
    let mut first = start_worker(&farm.path, &farm.dir.path().join("worker-1.log"));
    let record = build(&broker, &farm, &job(&farm, "9.0", &git, 1), long, &first).await;
    assert_eq!(record["image_digest"], old.as_str());
    assert_eq!(record["image_id"], image_id(&base).as_str());
    assert!(
        first.output().contains("pulling the base image"),
        "{}",
        first.output()
    );
    first.kill();
    registry.forget_local();
    let second_config = second_worker(&farm);
    let second_log = farm.dir.path().join("worker-2.log");
    let mut second = start_worker(&second_config, &second_log);
    let record = build(&broker, &farm, &job(&farm, "9.0", &git, 2), long, &second).await;
    assert_eq!(record["image_digest"], old.as_str());
    assert!(docker_has(&format!("{repository}@{old}")));
    assert!(
        second.output().contains("pulling the base image"),
        "{}",
        second.output()
    );

    // A new base pushed from elsewhere: the running worker takes it for its next job.
    let newer = Derived::of(&base, dir.path());
    let new = push(&farm.path, &newer.0);
    assert_ne!(new, old);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let record = build(&broker, &farm, &job(&farm, "9.0", &git, 3), long, &second).await;
    assert_eq!(record["image_digest"], new.as_str(), "{}", second.output());
    assert_eq!(record["image_id"], image_id(&newer.0).as_str());
    let log = fs_err::read_to_string(
        farm.config
            .paths
            .staging
            .join(record["job_id"].as_str().unwrap())
            .join("build.log"),
    )
    .unwrap();
    assert!(log.contains(&format!("digest {new}")), "{log}");

    // The release pinned to the old base still builds on it.
    let record = build(&broker, &farm, &job(&farm, "9.1", &git, 4), long, &second).await;
    assert_eq!(record["image_digest"], old.as_str());
    assert_eq!(record["image_id"], image_id(&base).as_str());

    // The registry down while the worker starts: it builds with the digest it resolved last,
    // whose image it has.
    second.kill();
    registry.stop();
    let state = fs_err::read_to_string(
        Path::new(&format!("{}-2", farm.config.paths.state.display()))
            .join("worker/base-digests.json"),
    )
    .unwrap();
    assert!(state.contains(&new), "{state}");
    let offline_log = farm.dir.path().join("worker-2-offline.log");
    let second = start_worker(&second_config, &offline_log);
    let record = build(&broker, &farm, &job(&farm, "9.0", &git, 5), long, &second).await;
    assert_eq!(record["image_digest"], new.as_str());
    assert_eq!(record["image_id"], image_id(&newer.0).as_str());
    assert!(
        second
            .output()
            .contains("using the base digest resolved last"),
        "{}",
        second.output()
    );

    // Without that image here either, the job waits; it is never built on another base,
    // though this engine has the old base and the tests' own bookworm image.
    drop(newer);
    let new_ref = format!("{repository}@{new}");
    registry.forget_local();
    assert!(!docker_has(&new_ref), "the new base is still here");
    assert!(docker_has(&base));
    let waiting = job(&farm, "9.0", &git, 6);
    let build_queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    broker
        .publish(&build_queue, &waiting, &waiting.job_id)
        .await
        .unwrap();
    wait_for_output(&second, &["cannot pull the base image"], long).await;
    let publish_queue = QueueName::new(Stage::Publish, &farm.customer, "9.0").to_string();
    let early = broker
        .take(&publish_queue, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        early.is_none(),
        "built without its base:\n{}",
        second.output()
    );
    assert!(
        second.output().contains("cannot pull the base image"),
        "{}",
        second.output()
    );
    let dead = broker.stats(&format!("{build_queue}.dead")).await.unwrap();
    assert_eq!(dead.messages, 0, "{}", second.output());

    // The registry back: the waiting job builds on the new base, pulled by its digest.
    registry.resume();
    let queue = QueueName::new(Stage::Publish, &farm.customer, "9.0").to_string();
    let published = broker.take(&queue, long).await.unwrap();
    assert!(published.is_some(), "{}", second.output());
    let record: serde_json::Value = serde_json::from_slice(
        &fs_err::read(
            farm.config
                .paths
                .staging
                .join(&waiting.job_id)
                .join("result.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["image_digest"], new.as_str(), "{}", second.output());
    assert_ne!(record["image_id"], image_id(&base).as_str());
    broker.close().await;
    drop(second);
    drop(registry);
    let _ = Command::new("docker").args(["rmi", &new_ref]).output();
}

#[tokio::test]
async fn a_registry_serving_content_that_does_not_match_its_digest_is_refused() {
    let base = base_image("bookworm");
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(&dir.path().join("registry"));
    let farm = farm_with(&registry);
    // An image of this test alone: the engine keeps manifests it once pulled and verified by
    // digest, and would take a shared base's from there without asking the registry.
    let image = Derived::of(&base, dir.path());
    let digest = push(&farm.path, &image.0);
    registry.forget_local();
    // The attack: the registry serves other content under the same digest.
    registry.tamper_manifest(&digest);
    let (broker, worker, tampered) = one_job_not_built(
        &farm,
        &["cannot pull the base image", "verification failed"],
        Duration::from_secs(300),
    )
    .await;
    let reference = format!("{}/perestroika-build/bookworm@{digest}", registry.address());
    assert!(!docker_has(&reference));
    assert!(!farm.config.paths.staging.join(&tampered.job_id).exists());
    broker.close().await;
    drop(worker);
    drop(image);
}

#[tokio::test]
async fn a_worker_that_never_reached_the_registry_waits_and_builds_on_no_other_base() {
    let base = base_image("bookworm");
    let dir = tempfile::tempdir().unwrap();
    let mut registry = TestRegistry::start(&dir.path().join("registry"));
    let farm = farm_with(&registry);
    registry.stop();
    let (broker, worker, waiting) = one_job_not_built(
        &farm,
        &[
            "cannot resolve the base image of bookworm",
            "has resolved none before",
        ],
        Duration::from_secs(120),
    )
    .await;
    // This engine has a bookworm base of its own; the worker does not fall back to it.
    assert!(docker_has(&base));
    let output = worker.output();
    let build_queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    assert!(!farm.config.paths.staging.join(&waiting.job_id).exists());
    let dead = broker.stats(&format!("{build_queue}.dead")).await.unwrap();
    assert_eq!(dead.messages, 0, "{output}");
    broker.close().await;
}
