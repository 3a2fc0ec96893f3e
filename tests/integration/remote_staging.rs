//! A worker and a publisher that share no filesystem: the worker serves its staging area
//! read-only over rsync to the publisher's address only, the publisher fetches what a publish
//! job names from the worker the job names (through its own `[fetch.workers]`), checks it and
//! publishes; hostile jobs are refused; a worker gone before the fetch leads to the job being
//! built again by another worker and published once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use perestroika_protocol::broker::{dead_reason, Broker};
use perestroika_protocol::messages::{
    Artifact, BuildJob, BuildOutcome, Message, MirrorAnnouncement, PublishJob,
};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::{signed_farm, AptRoot, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::debian::{base_image, minimal_package, package_cache};
use perestroika_tests::gerrit::Gerrit;
use perestroika_tests::{
    assert_success, combined_job, free_port, run, shared_amqp_url, unique, wait_for_listener,
    Daemon, Farm,
};

/// The most one job may fetch in these tests.
const MAX_BYTES: u64 = 4 << 20;

/// A worker host: its own staging, state and public root, and its staging daemon's address.
struct WorkerHost {
    name: String,
    addr: String,
    dir: tempfile::TempDir,
}

impl WorkerHost {
    fn new(name: &str, ip: &str) -> Self {
        Self {
            name: name.to_owned(),
            addr: format!("{ip}:{}", free_port()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn staging(&self) -> PathBuf {
        self.dir.path().join("staging")
    }

    fn url(&self) -> String {
        format!("rsync://{}/staging", self.addr)
    }

    /// Starts `perestroika-worker run` as this host: the farm's file with its own paths, name
    /// and address, and waits for its staging daemon.
    fn start(&self, farm: &Farm) -> Daemon {
        let root = self.dir.path();
        let env = [
            ("PERESTROIKA_PATHS__STAGING", self.staging()),
            ("PERESTROIKA_PATHS__STATE", root.join("state")),
            ("PERESTROIKA_PATHS__PUBLIC_ROOT", root.join("public")),
        ];
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.display().to_string()))
            .chain([
                ("PERESTROIKA_WORKER__NAME".into(), self.name.clone()),
                (
                    "PERESTROIKA_WORKER__SERVE_STAGING".into(),
                    self.addr.clone(),
                ),
            ])
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let log = farm
            .dir
            .path()
            .join(format!("worker-{}-{}.log", self.name, unique("r")));
        let worker = Daemon::start_with_env(
            "perestroika-worker",
            &["--config", farm.path.to_str().unwrap(), "run"],
            &env,
            &log,
        );
        wait_for_listener(&self.addr, "the worker's staging daemon", || {
            worker.raw_output()
        });
        worker
    }
}

/// A signed farm whose publisher knows `workers`, with `sections` added.
fn farm_for(key: &OperatorKey, workers: &[&WorkerHost], sections: &str) -> Farm {
    let known: String = workers
        .iter()
        .map(|w| format!("{} = \"{}\"\n", w.name, w.url()))
        .collect();
    let farm = signed_farm(
        &shared_amqp_url(),
        &[key],
        &format!(
            "[build]\npackage_cache = \"{}\"\n\n\
             [worker]\npublisher_hosts = [\"127.0.0.1\"]\n\n\
             [fetch]\nmax_bytes = {MAX_BYTES}\ntimeout_secs = 5\nworker_gone_secs = 4\n\n\
             [fetch.workers]\n{known}\n{sections}",
            package_cache(),
        ),
        BOOKWORM_RELEASE,
    );
    let out = run(
        "perestroika-queue",
        &["--config", farm.path.to_str().unwrap(), "bootstrap"],
    );
    assert_success(&out);
    farm
}

fn queue(farm: &Farm, stage: Stage) -> String {
    QueueName::new(stage, &farm.customer, "9.0").to_string()
}

fn start_publisher(farm: &Farm) -> Daemon {
    farm.daemon(
        "perestroika-publisher",
        format!("publisher-{}.log", unique("r")),
    )
}

async fn announcement(
    broker: &Broker,
    farm: &Farm,
    within: Duration,
    daemons: &[&Daemon],
) -> Option<MirrorAnnouncement> {
    let got = broker
        .take(&queue(farm, Stage::Mirror), within)
        .await
        .unwrap()
        .map(|d| MirrorAnnouncement::from_bytes(&d.data).unwrap());
    if got.is_none() {
        for d in daemons {
            eprintln!("--- {}\n{}", d.log.display(), d.output());
        }
    }
    got
}

/// The reason of the next dead-lettered publish job (60 s at most).
async fn dead_letter(broker: &Broker, farm: &Farm, publisher: &Daemon) -> String {
    let dead = format!("{}.dead", queue(farm, Stage::Publish));
    for _ in 0..240 {
        if let Some(d) = broker.get(&dead).await.unwrap() {
            return dead_reason(&d);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("nothing dead-lettered:\n{}", publisher.output())
}

fn record(farm: &Farm, job_id: &str) -> serde_json::Value {
    serde_json::from_slice(&fs_err::read(farm.publisher_record(job_id)).unwrap()).unwrap()
}

fn apt_for(farm: &Farm) -> AptRoot {
    let tree = farm.release_tree();
    AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", tree.display()),
    )
}

/// The live generation of the release tree (the link's target).
fn live(farm: &Farm) -> PathBuf {
    fs_err::canonicalize(farm.release_tree()).unwrap()
}

/// A build job of `package` from a repository `repo` holds (a file:// URL).
fn job_of(farm: &Farm, package: &str, url: &str, head: &str) -> BuildJob {
    combined_job(&farm.customer, package, url, head, 0)
}

/// Copies the files of `from` into a new staged job `job_id` of `worker`; returns the
/// artifacts of the copied debs.
fn restage(worker: &WorkerHost, from: &Path, job_id: &str) -> Vec<Artifact> {
    let dir = worker.staging().join(job_id);
    fs_err::create_dir_all(&dir).unwrap();
    let mut debs = Vec::new();
    for entry in fs_err::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        fs_err::copy(&path, dir.join(&name)).unwrap();
        if name.to_string_lossy().ends_with(".deb") {
            debs.push(Artifact::of_file(&dir.join(&name)).unwrap());
        }
    }
    debs
}

#[tokio::test]
async fn a_package_staged_on_another_host_is_fetched_published_and_hostile_jobs_are_refused() {
    base_image("bookworm");
    let key = OperatorKey::new();
    let w1 = WorkerHost::new(&unique("w"), "127.0.0.2");
    let farm = farm_for(&key, &[&w1], "");
    let repo_dir = farm.dir.path().join("remotepkg");
    let mut repo = perestroika_tests::debian::GitRepo::init(&repo_dir);
    repo.commit(&minimal_package("remotepkg", "true"), "one");
    let job = job_of(&farm, "remotepkg", &repo.url(), &repo.head());
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    let worker = w1.start(&farm);
    let publisher = start_publisher(&farm);
    let ann = announcement(
        &broker,
        &farm,
        Duration::from_secs(300),
        &[&worker, &publisher],
    )
    .await
    .expect("the job was published");
    assert_eq!(ann.generation, 1);
    // Staged on the worker's host only; the publisher's own staging never held it, and its
    // fetched and incoming copies are gone once published.
    let staged = w1.staging().join(&job.job_id);
    assert!(staged.join("build.log").is_file(), "{}", staged.display());
    assert!(!farm.config.paths.staging.join(&job.job_id).exists());
    let state = &farm.config.paths.state;
    for dir in ["publisher/fetched", "publisher/incoming"] {
        assert!(!state.join(dir).join(&job.job_id).exists(), "{dir} kept");
    }
    assert_eq!(record(&farm, &job.job_id)["published"], true);
    let apt = apt_for(&farm);
    apt.update();
    assert_eq!(apt.versions("remotepkg"), ["1.0+p1.0"]);
    assert_success(&apt.apt_get(&["install", "-y", "--download-only", "remotepkg"]));

    // The staging daemon: no listing, no writing, and nobody but the publisher's address.
    let rsync = |args: &[&str]| {
        Command::new("rsync")
            .args(["--contimeout=5", "--timeout=5"])
            .args(args)
            .output()
            .unwrap()
    };
    let file = format!("{}/{}/build.log", w1.url(), job.job_id);
    let allowed = rsync(&[&file, farm.dir.path().join("fetched.log").to_str().unwrap()]);
    assert_success(&allowed);
    let stranger = rsync(&["--address=127.0.0.9", &file, "/tmp/never"]);
    let said = String::from_utf8_lossy(&stranger.stderr);
    // A module that is not listed is not even named to an address not allowed.
    assert!(
        !stranger.status.success()
            && (said.contains("access denied") || said.contains("Unknown module")),
        "{said}"
    );
    assert!(!Path::new("/tmp/never").exists());
    let listed = rsync(&[&format!("rsync://{}/", w1.addr)]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("staging"),
        "the module is listed: {listed:?}"
    );
    let write = rsync(&[
        farm.path.to_str().unwrap(),
        &format!("{}/{}/", w1.url(), job.job_id),
    ]);
    assert!(!write.status.success(), "the module took a file: {write:?}");
    assert!(!staged.join("farm.toml").exists());

    // Hostile publish jobs, each refused with its reason, nothing published.
    let generation = live(&farm);
    let built = restage(&w1, &staged, &unique("copy"));
    let publish_job = |id: &str, artifacts: Vec<Artifact>| {
        let mut p = PublishJob::of_build(
            &job,
            "1.0+p1.0".into(),
            artifacts,
            None,
            BuildOutcome::Succeeded,
        );
        p.job_id = id.to_owned();
        p.staged_on = Some(w1.name.clone());
        p
    };
    let mut hostile = Vec::new();
    // A worker the publisher does not know.
    let id = unique("stranger");
    restage(&w1, &staged, &id);
    let mut p = publish_job(&id, built.clone());
    p.staged_on = Some("stranger".into());
    hostile.push((p, "does not know"));
    // A file the worker does not have.
    let id = unique("missing");
    let mut debs = restage(&w1, &staged, &id);
    let mut ghost = debs[0].clone();
    ghost.name = "ghost_1.0_all.deb".into();
    debs.push(ghost);
    hostile.push((publish_job(&id, debs), "ghost_1.0_all.deb: missing"));
    // A link in staging to a secret, named with the secret's own checksum and size.
    let id = unique("link");
    let mut debs = restage(&w1, &staged, &id);
    let secret = w1.dir.path().join("secret.key");
    fs_err::write(&secret, "SECRET-KEY-MATERIAL-7f3a\n").unwrap();
    std::os::unix::fs::symlink(&secret, w1.staging().join(&id).join("evil_1.0_all.deb")).unwrap();
    let mut evil = Artifact::of_file(&secret).unwrap();
    evil.name = "evil_1.0_all.deb".into();
    debs.push(evil);
    hostile.push((publish_job(&id, debs), "is a link"));
    // A file larger than fetch.max_bytes, named truthfully, and one whose size is a lie.
    for (lie, want) in [(false, "fetch.max_bytes"), (true, "big_1.0_all.deb")] {
        let id = unique("big");
        let mut debs = restage(&w1, &staged, &id);
        let big = w1.staging().join(&id).join("big_1.0_all.deb");
        fs_err::write(&big, vec![7u8; (MAX_BYTES + 1) as usize]).unwrap();
        let mut a = Artifact::of_file(&big).unwrap();
        if lie {
            a.size = 100;
        }
        debs.push(a);
        hostile.push((publish_job(&id, debs), want));
    }
    for (p, _) in &hostile {
        broker
            .publish(&queue(&farm, Stage::Publish), p, &p.job_id)
            .await
            .unwrap();
    }
    for (p, want) in &hostile {
        let reason = dead_letter(&broker, &farm, &publisher).await;
        assert!(
            reason.contains(want),
            "{}: {reason:?} lacks {want:?}",
            p.job_id
        );
        // Only the unknown worker's job, refused before any fetch, has no record.
        if *want != "does not know" {
            let r = record(&farm, &p.job_id);
            assert_eq!(r["published"], false, "{r}");
        }
    }
    assert_eq!(live(&farm), generation, "a hostile job changed the tree");
    let leaked = Command::new("grep")
        .args(["-rl", "SECRET-KEY-MATERIAL-7f3a"])
        .arg(&farm.config.paths.public_root)
        .arg(state)
        .output()
        .unwrap();
    assert!(leaked.stdout.is_empty(), "the secret leaked: {leaked:?}");
    assert_eq!(leaked.status.code(), Some(1), "grep failed: {leaked:?}");
    broker.close().await;
}

#[tokio::test]
async fn a_job_whose_worker_is_gone_before_the_fetch_is_built_again_and_published_once() {
    base_image("bookworm");
    let key = OperatorKey::new();
    let gerrit = Gerrit::start();
    let w1 = WorkerHost::new(&unique("w"), "127.0.0.2");
    let w2 = WorkerHost::new(&unique("w"), "127.0.0.3");
    let farm = farm_for(&key, &[&w1, &w2], &gerrit.config_section());
    let project = format!("{}/packages/deb/bookworm/gonepkg", farm.customer);
    let head = gerrit.push(&project, "9.0", &minimal_package("gonepkg", "true"), "one");
    let url = farm.config.gerrit.as_ref().unwrap().clone_url(&project);
    let job = job_of(&farm, "gonepkg", &url, &head);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    // The first worker builds and hands over, then dies before any publisher fetched.
    let mut first = w1.start(&farm);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !first.output().contains("built and handed to the publisher") {
        assert!(
            Instant::now() < deadline,
            "never built:\n{}",
            first.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    first.kill();
    let started = Instant::now();
    let reactor = farm.daemon("perestroika-reactor", "reactor.log");
    let second = w2.start(&farm);
    let publisher = start_publisher(&farm);
    let logs = [&reactor, &second, &publisher];
    let ann = announcement(&broker, &farm, Duration::from_secs(300), &logs)
        .await
        .expect("the job was built again and published");
    eprintln!(
        "worker gone to published: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ann.generation, 1);
    assert!(
        reactor.output().contains("queued the build again"),
        "{}",
        reactor.output()
    );
    let built_by_second = second
        .events()
        .iter()
        .filter(|e| e.job() == Some(job.job_id.as_str()))
        .any(|e| e.message().contains("built and handed to the publisher"));
    assert!(built_by_second, "{}", second.output());
    assert!(w2.staging().join(&job.job_id).join("build.log").is_file());
    assert_eq!(record(&farm, &job.job_id)["published"], true);
    // Published once: no second announcement, one version.
    assert!(
        announcement(&broker, &farm, Duration::from_secs(10), &[])
            .await
            .is_none(),
        "published twice"
    );
    let published = publisher
        .events()
        .iter()
        .filter(|e| e.job() == Some(job.job_id.as_str()) && e.message() == "published")
        .count();
    assert_eq!(published, 1, "{}", publisher.output());
    let apt = apt_for(&farm);
    apt.update();
    assert_eq!(apt.versions("gonepkg"), ["1.0+p1.0"]);
    let dead = format!("{}.dead", queue(&farm, Stage::Publish));
    assert!(
        broker.get(&dead).await.unwrap().is_none(),
        "a job was dead-lettered"
    );
    broker.close().await;
}

#[test]
fn a_worker_whose_staging_daemon_cannot_listen_stops_and_says_why() {
    base_image("bookworm");
    let key = OperatorKey::new();
    let w = WorkerHost::new(&unique("w"), "127.0.0.4");
    let _taken = std::net::TcpListener::bind(&w.addr).unwrap();
    let farm = farm_for(&key, &[&w], "");
    let root = w.dir.path();
    let out = Command::new(perestroika_tests::bin("perestroika-worker"))
        .args(["--config", farm.path.to_str().unwrap(), "run"])
        .env("PERESTROIKA_PATHS__STAGING", root.join("staging"))
        .env("PERESTROIKA_PATHS__STATE", root.join("state"))
        .env("PERESTROIKA_WORKER__NAME", &w.name)
        .env("PERESTROIKA_WORKER__SERVE_STAGING", &w.addr)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("rsync daemon stopped"), "{said}");
}

/// Waits up to two minutes until the publisher's record of `job_id` says `key` is true.
async fn recorded(farm: &Farm, job_id: &str, key: &str, publisher: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(farm.publisher_record(job_id).is_file() && record(farm, job_id)[key] == true) {
        assert!(
            Instant::now() < deadline,
            "{job_id}: no record with {key}:\n{}",
            publisher.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A worker cut off from the broker may report a failure of a job that another worker then
/// builds and stages (the job was handed to it meanwhile): the failure's log is published
/// first, and the success after it is published too — a failure's record never stands for a
/// build of the job that succeeded.
#[tokio::test]
async fn a_success_staged_after_a_failure_of_the_same_job_is_published() {
    use perestroika_tests::apt::make_deb;
    let key = OperatorKey::new();
    let w1 = WorkerHost::new(&unique("w"), "127.0.0.2");
    let farm = farm_for(&key, &[&w1], "");
    let worker = w1.start(&farm);
    let publisher = start_publisher(&farm);
    let build = job_of(&farm, "laterpkg", "file:///nowhere", &"a".repeat(40));
    let dir = w1.staging().join(&build.job_id);
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(dir.join("build.log"), "killed\n").unwrap();
    let log = Artifact::of_file(&dir.join("build.log")).unwrap();
    let job = |artifacts, outcome| {
        let mut p =
            PublishJob::of_build(&build, "1.0".into(), artifacts, Some(log.clone()), outcome);
        p.staged_on = Some(w1.name.clone());
        p
    };
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let publish = queue(&farm, Stage::Publish);
    let failed = job(
        Vec::new(),
        BuildOutcome::Failed {
            step: "dpkg-buildpackage".into(),
            reason: "dpkg-buildpackage exited with 137".into(),
        },
    );
    broker
        .publish(&publish, &failed, &failed.job_id)
        .await
        .unwrap();
    recorded(&farm, &build.job_id, "log_published", &publisher).await;
    assert_eq!(record(&farm, &build.job_id)["published"], false);

    let deb = make_deb(&dir, "laterpkg", "1.0", false, "a");
    let succeeded = job(
        vec![Artifact::of_file(&deb).unwrap()],
        BuildOutcome::Succeeded,
    );
    broker
        .publish(&publish, &succeeded, &succeeded.job_id)
        .await
        .unwrap();
    recorded(&farm, &build.job_id, "published", &publisher).await;
    let apt = apt_for(&farm);
    apt.update();
    assert_eq!(apt.versions("laterpkg"), ["1.0"], "{}", worker.output());
    broker.close().await;
}
