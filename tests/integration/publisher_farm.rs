//! The publisher in farm mode, and the first joined-up stretch of the farm: build job →
//! worker → publish job → publisher → signed repository → mirror announcement → apt.

use std::time::Duration;

use perestroika_config::Family;
use perestroika_protocol::broker::{dead_reason, Broker};
use perestroika_protocol::messages::{
    GitSource, Message, MirrorAnnouncement, PublishJob, ReviewRetirement, Sources, Target, Trigger,
    TriggerKind, SCHEMA_VERSION,
};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::{make_deb, signed_farm, AptRoot, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::debian::{base_image, minimal_package, package_cache, GitRepo};
use perestroika_tests::{assert_success, combined_job, run, shared_amqp_url, unique, Daemon, Farm};

struct Setup {
    farm: Farm,
    _key: OperatorKey,
}

fn setup() -> Setup {
    let key = OperatorKey::new();
    let farm = signed_farm(
        &shared_amqp_url(),
        &[&key],
        &format!(
            "[build]
package_cache = \"{}\"
",
            package_cache()
        ),
        BOOKWORM_RELEASE,
    );
    let cfg = farm.path.to_str().unwrap();
    let out = run("perestroika-queue", &["--config", cfg, "bootstrap"]);
    assert!(out.status.success());
    Setup { farm, _key: key }
}

fn queue(farm: &Farm, stage: Stage) -> String {
    QueueName::new(stage, &farm.customer, "9.0").to_string()
}

/// The reason of the next dead-lettered publish job (30 s at most).
async fn dead_letter(broker: &Broker, farm: &Farm, publisher: &Daemon) -> String {
    let dead = format!("{}.dead", queue(farm, Stage::Publish));
    for _ in 0..120 {
        if let Some(d) = broker.get(&dead).await.unwrap() {
            return dead_reason(&d);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("nothing dead-lettered:\n{}", publisher.output())
}

fn stage_debs(farm: &Farm, job_id: &str, names: &[&str]) -> PublishJob {
    stage_debs_at(farm, job_id, names, "1.0")
}

/// A publish job of release 9.0 with the debs `names` at `version` and a build log, staged
/// in `<staging>/<job id>` as a worker leaves them.
pub(crate) fn stage_debs_at(
    farm: &Farm,
    job_id: &str,
    names: &[&str],
    version: &str,
) -> PublishJob {
    let dir = farm.config.paths.staging.join(job_id);
    fs_err::create_dir_all(&dir).unwrap();
    let mut artifacts = Vec::new();
    for name in names {
        let deb = make_deb(&dir, name, version, false, "a");
        artifacts.push(perestroika_protocol::messages::Artifact::of_file(&deb).unwrap());
    }
    fs_err::write(dir.join("build.log"), "the build log\n").unwrap();
    let log = perestroika_protocol::messages::Artifact::of_file(&dir.join("build.log")).unwrap();
    PublishJob {
        schema_version: SCHEMA_VERSION,
        job_id: job_id.to_owned(),
        customer: farm.customer.clone(),
        version: "9.0".into(),
        distro: "bookworm".into(),
        family: Family::Deb,
        package: names[0].to_owned(),
        package_version: version.into(),
        target: Target::Release,
        sources: Sources::Combined {
            repo: GitSource {
                project: format!("{}/packages/deb/bookworm/{}", farm.customer, names[0]),
                url: farm.config.gerrit.as_ref().map_or_else(
                    || "file:///nowhere".into(),
                    |g| {
                        g.clone_url(&format!(
                            "{}/packages/deb/bookworm/{}",
                            farm.customer, names[0]
                        ))
                    },
                ),
                branch: "9.0".into(),
                commit: "a".repeat(40),
                fetch_ref: None,
            },
        },
        artifacts,
        log: Some(log),
        // Asked for now: after any retirement the test made before.
        requested_at: Some(chrono::Utc::now()),
        trigger: Some(Trigger {
            kind: TriggerKind::Manual,
            change: None,
            patchset: None,
            event_time: None,
        }),
        outcome: Default::default(),
        rebuild: 0,
        staged_on: None,
    }
}

/// `job` retargeted at the review repository of `change` (patch set 1), as a worker sends it.
fn for_review(job: PublishJob, change: u64) -> PublishJob {
    PublishJob {
        target: Target::Review { change },
        trigger: Some(Trigger {
            kind: TriggerKind::PatchsetCreated,
            change: Some(change),
            patchset: Some(1),
            event_time: None,
        }),
        ..job
    }
}

fn apt_for(farm: &Farm) -> AptRoot {
    let tree = farm.release_tree();
    AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", tree.display()),
    )
}

async fn announcement(
    broker: &Broker,
    farm: &Farm,
    within: Duration,
    daemons: &[&Daemon],
) -> MirrorAnnouncement {
    match broker
        .take(&queue(farm, Stage::Mirror), within)
        .await
        .unwrap()
    {
        Some(d) => MirrorAnnouncement::from_bytes(&d.data).unwrap(),
        None => panic!(
            "no announcement within {within:?}; logs:\n{}",
            daemons
                .iter()
                .map(|d| d.output())
                .collect::<Vec<_>>()
                .join("\n---\n")
        ),
    }
}

#[tokio::test]
async fn a_publish_job_is_published_recorded_and_announced() {
    let s = setup();
    let job = stage_debs(&s.farm, &unique("job"), &["farmpub"]);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&s.farm, Stage::Publish), &job, &job.job_id)
        .await
        .unwrap();
    let publisher = s.farm.daemon("perestroika-publisher", "pub.log");
    let ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&publisher]).await;
    assert_eq!(ann.tree, format!("{}/9.0", s.farm.customer));
    assert_eq!(ann.generation, 1);
    let apt = apt_for(&s.farm);
    apt.update();
    assert_eq!(apt.versions("farmpub"), ["1.0"]);
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(s.farm.publisher_record(&job.job_id)).unwrap())
            .unwrap();
    assert_eq!(record["published"], true);
    let log = s
        .farm
        .release_tree()
        .join("logs")
        .join(format!("{}.log", job.job_id));
    assert_eq!(fs_err::read_to_string(log).unwrap(), "the build log\n");
    assert_eq!(
        broker
            .stats(&queue(&s.farm, Stage::Publish))
            .await
            .unwrap()
            .messages,
        0
    );
    broker.close().await;
}

#[tokio::test]
async fn an_artifact_whose_checksum_differs_is_dead_lettered_and_nothing_is_published() {
    let s = setup();
    let mut job = stage_debs(&s.farm, &unique("job"), &["badsum"]);
    job.artifacts[0].sha256 = "0".repeat(64);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&s.farm, Stage::Publish), &job, &job.job_id)
        .await
        .unwrap();
    let publisher = s.farm.daemon("perestroika-publisher", "pub.log");
    let reason = dead_letter(&broker, &s.farm, &publisher).await;
    assert!(reason.contains("checksum differs"), "{reason}");
    assert!(reason.contains("badsum_1.0_all.deb"), "{reason}");
    let live = s.farm.release_tree();
    assert!(!live.exists(), "something was published");
    let record = fs_err::read_to_string(s.farm.publisher_record(&job.job_id)).unwrap();
    assert!(record.contains("checksum differs"), "{record}");
    broker.close().await;
}

#[tokio::test]
async fn a_build_job_becomes_an_installable_signed_package() {
    base_image("bookworm");
    let s = setup();
    let mut repo = GitRepo::init(&s.farm.dir.path().join("chain"));
    repo.commit(&minimal_package("chainpkg", "true"), "one");
    let job = combined_job(&s.farm.customer, "chainpkg", &repo.url(), &repo.head(), 0);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&s.farm, Stage::Build), &job, &job.job_id)
        .await
        .unwrap();
    let worker = s.farm.daemon("perestroika-worker", "worker.log");
    let publisher = s.farm.daemon("perestroika-publisher", "pub.log");
    let ann = announcement(
        &broker,
        &s.farm,
        Duration::from_secs(180),
        &[&worker, &publisher],
    )
    .await;
    assert_eq!(ann.generation, 1);
    let apt = apt_for(&s.farm);
    apt.update();
    assert_eq!(apt.versions("chainpkg"), ["1.0+p1.0"]);
    let dl = apt.apt_get(&["install", "-y", "--download-only", "chainpkg"]);
    assert_success(&dl);
    broker.close().await;
}

/// Two publishers on one queue: only one publishes; when it dies the other takes over.
#[tokio::test]
async fn a_second_publisher_waits_and_takes_over_when_the_first_dies() {
    let s = setup();
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let mut first = s.farm.daemon("perestroika-publisher", "first.log");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = s.farm.daemon("perestroika-publisher", "second.log");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["sac1", "sac2"] {
        let job = stage_debs(&s.farm, &unique(name), &[name]);
        broker
            .publish(&queue(&s.farm, Stage::Publish), &job, &job.job_id)
            .await
            .unwrap();
        announcement(
            &broker,
            &s.farm,
            Duration::from_secs(60),
            &[&first, &second],
        )
        .await;
    }
    // The log line follows the announcement: give it a moment (a loaded machine needs more).
    let published_by = |d: &Daemon, expected: usize| {
        for _ in 0..300 {
            if d.output().matches("published").count() >= expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        d.output().matches("published").count()
    };
    assert_eq!(
        published_by(&first, 2),
        2,
        "the active publisher did not do both:\n{}",
        first.output()
    );
    assert_eq!(
        published_by(&second, 0),
        0,
        "the standby publisher published:\n{}",
        second.output()
    );

    first.kill();
    let job = stage_debs(&s.farm, &unique("sac3"), &["sac3"]);
    broker
        .publish(&queue(&s.farm, Stage::Publish), &job, &job.job_id)
        .await
        .unwrap();
    // The first publisher may have died after publishing sac2 but before acknowledging it:
    // the second then does sac2 again (nothing changes, generation 2 is announced again)
    // before sac3. Wait for the generation that holds sac3.
    let mut ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&second]).await;
    while ann.generation < 3 {
        ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&second]).await;
    }
    assert_eq!(ann.generation, 3);
    // The log line follows the announcement.
    let sac3_published = || {
        second
            .output()
            .lines()
            .any(|l| l.contains(&job.job_id) && l.contains("published"))
    };
    for _ in 0..300 {
        if sac3_published() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sac3_published(), "{}", second.output());
    let apt = apt_for(&s.farm);
    apt.update();
    for name in ["sac1", "sac2", "sac3"] {
        assert_eq!(apt.versions(name), ["1.0"], "{name}");
    }
    broker.close().await;
}

/// A change's review repository is published like a release and taken down when the change
/// is merged or abandoned; a later publish starts it afresh.
#[tokio::test]
async fn a_review_repository_is_retired_and_can_start_again() {
    let s = setup();
    let job = for_review(stage_debs(&s.farm, &unique("job"), &["reviewpkg"]), 4242);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let publish = queue(&s.farm, Stage::Publish);
    broker.publish(&publish, &job, &job.job_id).await.unwrap();
    let publisher = s.farm.daemon("perestroika-publisher", "pub.log");
    let ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&publisher]).await;
    let review_root = s
        .farm
        .config
        .paths
        .public_root
        .join(&s.farm.customer)
        .join("review");
    assert_eq!(ann.tree, format!("{}/review/4242", s.farm.customer));
    let tree = review_root.join("4242");
    let apt = AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", tree.display()),
    );
    apt.update();
    assert_eq!(apt.versions("reviewpkg"), ["1.0"]);
    // Nothing of the review reaches the release.
    assert!(!s.farm.release_tree().exists());

    let retire = ReviewRetirement::new(&s.farm.customer, "9.0", 4242);
    broker
        .publish(&publish, &retire, &retire.job_id)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fs_err::symlink_metadata(&tree).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            publisher.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The mirrors are told to take it down too.
    let gone = announcement(&broker, &s.farm, Duration::from_secs(30), &[&publisher]).await;
    assert_eq!(
        (gone.generation, gone.tree.as_str()),
        (0, ann.tree.as_str())
    );
    let left: Vec<_> = fs_err::read_dir(&review_root).unwrap().collect();
    assert!(left.is_empty(), "review leftovers: {left:?}");
    assert!(!s
        .farm
        .config
        .paths
        .state
        .join("publisher/deb")
        .join(&ann.tree)
        .exists());

    // The same review published again starts at generation 1.
    let again = stage_debs(&s.farm, &unique("job"), &["reviewpkg"]);
    let again = for_review(again, 4242);
    broker
        .publish(&publish, &again, &again.job_id)
        .await
        .unwrap();
    let ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&publisher]).await;
    assert_eq!(ann.generation, 1);
    assert!(publisher.output().contains("review repository retired"));
    broker.close().await;
}

/// A compromised worker stages links into the publisher's private files: a build log that is
/// a link to the publisher's secret keyring, and an artifact that is a link to a private file
/// with that file's own checksum in the job. Neither is followed: the first job publishes no
/// log and nothing of the keyring; the second is dead-lettered; a legitimate job afterwards
/// publishes as usual.
#[tokio::test]
async fn staged_links_to_the_publishers_secrets_are_never_followed() {
    let s = setup();
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let publish = queue(&s.farm, Stage::Publish);
    let publisher = s.farm.daemon("perestroika-publisher", "pub.log");
    let keys = s
        .farm
        .config
        .paths
        .state
        .join("publisher/gnupg/private-keys-v1.d");
    let secret = fs_err::read_dir(&keys)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .expect("the imported secret key is in the publisher's keyring");
    let secret_bytes = fs_err::read(&secret).unwrap();

    // 1. The log a link to the secret key (the job names no log, as before it had to).
    let mut job = stage_debs(&s.farm, &unique("job"), &["linklog"]);
    let staged = s.farm.config.paths.staging.join(&job.job_id);
    fs_err::remove_file(staged.join("build.log")).unwrap();
    std::os::unix::fs::symlink(&secret, staged.join("build.log")).unwrap();
    job.log = None;
    broker.publish(&publish, &job, &job.job_id).await.unwrap();
    let ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&publisher]).await;
    assert_eq!(ann.generation, 1);
    let pool = s.farm.customer_root();
    assert!(
        !sh_grep(&pool, &secret_bytes),
        "the secret key reached the public tree"
    );

    // 2. The log named in the job with the secret's own size and checksum: a link, refused.
    let mut job = stage_debs(&s.farm, &unique("job"), &["linklog2"]);
    let staged = s.farm.config.paths.staging.join(&job.job_id);
    fs_err::remove_file(staged.join("build.log")).unwrap();
    std::os::unix::fs::symlink(&secret, staged.join("build.log")).unwrap();
    let mut described = perestroika_protocol::messages::Artifact::of_file(&secret).unwrap();
    described.name = "build.log".into();
    job.log = Some(described);
    broker.publish(&publish, &job, &job.job_id).await.unwrap();
    let reason = dead_letter(&broker, &s.farm, &publisher).await;
    assert!(reason.contains("is a link"), "{reason}");
    assert!(
        !sh_grep(&pool, &secret_bytes),
        "the secret key reached the public tree"
    );

    // 3. The farm goes on: a legitimate job publishes, with its log.
    let job = stage_debs(&s.farm, &unique("job"), &["afterlinks"]);
    broker.publish(&publish, &job, &job.job_id).await.unwrap();
    let ann = announcement(&broker, &s.farm, Duration::from_secs(60), &[&publisher]).await;
    assert_eq!(ann.generation, 2);
    let apt = apt_for(&s.farm);
    apt.update();
    assert_eq!(apt.versions("afterlinks"), ["1.0"]);
    let logs = s.farm.release_tree().join("logs");
    assert_eq!(
        fs_err::read_to_string(logs.join(format!("{}.log", job.job_id))).unwrap(),
        "the build log\n"
    );
    broker.close().await;
}

/// Whether any file under `dir` holds `needle`.
fn sh_grep(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && fs_err::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                return true;
            }
        }
    }
    false
}

/// Anyone holding the broker's credentials can put a publish job on a publish queue. Jobs
/// whose sources come from elsewhere than the configured Gerrit, that leave out when their
/// build was asked for (which would revive a retired review repository), or that are for
/// another customer are dead-lettered with their reason and change no public tree; the next
/// legitimate job publishes.
#[tokio::test]
async fn forged_publish_jobs_are_dead_lettered_and_change_nothing() {
    let key = OperatorKey::new();
    let farm = signed_farm(
        &shared_amqp_url(),
        &[&key],
        "[gerrit]\nhost = \"127.0.0.1\"\nuser = \"farm\"\nkey_file = \"/nonexistent\"\n\
         known_hosts = \"/nonexistent\"\n",
        BOOKWORM_RELEASE,
    );
    let cfg = farm.path.to_str().unwrap();
    assert!(run("perestroika-queue", &["--config", cfg, "bootstrap"])
        .status
        .success());
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let publish = queue(&farm, Stage::Publish);
    let publisher = farm.daemon("perestroika-publisher", "pub.log");
    let wait = Duration::from_secs(60);

    // A release and a review repository, published; the review is then retired.
    let release = stage_debs(&farm, &unique("job"), &["legit"]);
    broker
        .publish(&publish, &release, &release.job_id)
        .await
        .unwrap();
    assert_eq!(
        announcement(&broker, &farm, wait, &[&publisher])
            .await
            .generation,
        1
    );
    let review = for_review(stage_debs(&farm, &unique("job"), &["reviewed"]), 5151);
    broker
        .publish(&publish, &review, &review.job_id)
        .await
        .unwrap();
    let ann = announcement(&broker, &farm, wait, &[&publisher]).await;
    assert_eq!(
        (ann.tree.as_str(), ann.generation),
        (&*format!("{}/review/5151", farm.customer), 1)
    );
    let retire = ReviewRetirement::new(&farm.customer, "9.0", 5151);
    broker
        .publish(&publish, &retire, &retire.job_id)
        .await
        .unwrap();
    assert_eq!(
        announcement(&broker, &farm, wait, &[&publisher])
            .await
            .generation,
        0
    );
    let review_tree = farm.config.paths.public_root.join(&ann.tree);
    assert!(fs_err::symlink_metadata(&review_tree).is_err());
    let live = || fs_err::read_link(farm.release_tree()).unwrap();
    let before = live();

    // Sources elsewhere than the configured Gerrit.
    let mut elsewhere = stage_debs(&farm, &unique("job"), &["evil"]);
    if let Sources::Combined { repo } = &mut elsewhere.sources {
        repo.url = format!("https://attacker.invalid/{}", repo.project);
    }
    // A late build of the retired review, its request time left out.
    let mut revive = for_review(stage_debs(&farm, &unique("job"), &["reviewed"]), 5151);
    revive.requested_at = None;
    // Another customer's job on this customer's queue.
    let stranger = PublishJob {
        customer: unique("c"),
        ..stage_debs(&farm, &unique("job"), &["evil"])
    };
    // A review build that names another change than its target.
    let mut mismatch = for_review(stage_debs(&farm, &unique("job"), &["evil"]), 5151);
    mismatch.target = Target::Review { change: 5152 };
    let forged = [
        (elsewhere, "not the configured Gerrit's"),
        (revive, "requested_at"),
        (stranger, "arrived on"),
        (mismatch, "trigger is change 5151"),
    ];
    for (job, _) in &forged {
        broker.publish(&publish, job, &job.job_id).await.unwrap();
    }
    for (job, want) in &forged {
        let reason = dead_letter(&broker, &farm, &publisher).await;
        assert!(reason.contains(want), "{reason:?} lacks {want:?}");
        assert!(!farm.publisher_record(&job.job_id).exists());
    }
    assert!(
        fs_err::symlink_metadata(&review_tree).is_err(),
        "the retired review came back"
    );
    assert_eq!(live(), before);
    assert!(publisher.output().contains("refusing a message"));

    // The next legitimate job publishes, and it is the next announcement: none was made for
    // the forged jobs.
    let next = stage_debs(&farm, &unique("job"), &["legit2"]);
    broker.publish(&publish, &next, &next.job_id).await.unwrap();
    let ann = announcement(&broker, &farm, wait, &[&publisher]).await;
    assert_eq!(
        (ann.tree, ann.generation),
        (format!("{}/9.0", farm.customer), 2)
    );
    let apt = apt_for(&farm);
    apt.update();
    assert_eq!(apt.versions("legit2"), ["1.0"]);
    assert!(apt.versions("evil").is_empty());
    broker.close().await;
}

/// A reprepro that hangs (a wrapper named `reprepro` that sleeps, first on the publisher's
/// PATH) is killed at `publish.command_timeout_secs` and the job waits to be tried again (uncounted) — not
/// dead-lettered, not recorded as published; once the wrapper is gone the same job publishes
/// and apt installs it.
#[tokio::test]
async fn a_hung_reprepro_times_out_and_the_job_publishes_once_it_answers() {
    let key = OperatorKey::new();
    let farm = signed_farm(
        &shared_amqp_url(),
        &[&key],
        "[publish]\ncommand_timeout_secs = 3\n",
        BOOKWORM_RELEASE,
    );
    let cfg = farm.path.to_str().unwrap();
    assert!(run("perestroika-queue", &["--config", cfg, "bootstrap"])
        .status
        .success());
    let wrappers = farm.dir.path().join("wrappers");
    fs_err::create_dir_all(&wrappers).unwrap();
    let hung = wrappers.join("reprepro");
    fs_err::write(&hung, "#!/bin/sh\nexec sleep 3600\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&hung, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let job = stage_debs(&farm, &unique("job"), &["hungrepo"]);
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&queue(&farm, Stage::Publish), &job, &job.job_id)
        .await
        .unwrap();
    let publisher = Daemon::start_with_env(
        "perestroika-publisher",
        &["--config", cfg, "run"],
        &[("PATH", &path)],
        &farm.dir.path().join("pub.log"),
    );
    publisher.wait_for_log("publish timed out; the job waits", 1);
    let log = publisher.output();
    assert!(
        log.contains("did not finish within 3 s and was killed")
            && log.contains("publish.command_timeout_secs"),
        "{log}"
    );
    let dead = format!("{}.dead", queue(&farm, Stage::Publish));
    assert_eq!(broker.stats(&dead).await.unwrap().messages, 0, "{log}");
    assert!(
        !farm.publisher_record(&job.job_id).exists() && !farm.release_tree().exists(),
        "published while reprepro hung:\n{log}"
    );

    fs_err::remove_file(&hung).unwrap();
    let answered = std::time::Instant::now();
    let ann = announcement(&broker, &farm, Duration::from_secs(60), &[&publisher]).await;
    let recovered = answered.elapsed();
    eprintln!("recovered from a hung reprepro in {recovered:?} (from the wrapper's removal to the announcement)");
    assert_eq!(
        (ann.tree.as_str(), ann.generation),
        (format!("{}/9.0", farm.customer).as_str(), 1)
    );
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(farm.publisher_record(&job.job_id)).unwrap()).unwrap();
    assert_eq!(record["published"], true);
    assert_eq!(broker.stats(&dead).await.unwrap().messages, 0);
    let apt = apt_for(&farm);
    apt.update();
    assert_eq!(apt.versions("hungrepo"), ["1.0"]);
    let got = apt.apt_get(&["install", "-y", "--download-only", "hungrepo"]);
    assert_success(&got);
    broker.close().await;
}
