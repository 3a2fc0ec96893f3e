//! Disks that do not fill up: snapshots, pool files, logs and staging within the configured
//! retention over 200 publishes, shipped snapshots that survive and install, review patch
//! sets that leave the pool and can come back, a worker's start clearing killed builds' and
//! stale caches' leftovers, and a publisher that waits for space instead of failing midway.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::BuildOutcome;
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::{make_deb, signed_farm, AptRoot, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::{assert_success, run, sh, shared_amqp_url, unique, Daemon, Farm};

use crate::publisher_farm::stage_debs_at;

const PUBLISHES: usize = 200;

fn farm_with(key: &OperatorKey, sections: &str) -> Farm {
    let farm = signed_farm(&shared_amqp_url(), &[key], sections, BOOKWORM_RELEASE);
    farm.bootstrap();
    farm
}

fn publish_queue(farm: &Farm) -> String {
    QueueName::new(Stage::Publish, &farm.customer, "9.0").to_string()
}

/// The live generation of the farm's release; `None` only when it has no tree link yet.
fn live(farm: &Farm) -> Option<u64> {
    let link = farm.release_tree();
    if !link.exists() && link.symlink_metadata().is_err() {
        return None;
    }
    let target = fs_err::read_link(&link).unwrap();
    let name = target.file_name().and_then(|n| n.to_str());
    Some(
        name.and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} points at {}", link.display(), target.display())),
    )
}

/// Waits until the release's live generation is `n` (10 minutes at most).
fn wait_for_generation(farm: &Farm, n: u64, publisher: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while live(farm) != Some(n) {
        assert!(
            Instant::now() < deadline,
            "generation {n} never went live (at {:?}):\n{}",
            live(farm),
            publisher.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The sorted names in `dir`; fails when it cannot be read (an empty answer must mean empty).
fn names_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Disk use in KiB of `paths`, each hard-linked file counted once (as `du` does in one run).
fn disk_kib(paths: &[PathBuf]) -> u64 {
    let out = Command::new("du")
        .args(["-sck"])
        .args(paths)
        .output()
        .unwrap();
    assert_success(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

struct Usage {
    pool: u64,
    generations: u64,
    staging: u64,
}

fn usage(farm: &Farm) -> Usage {
    let customer = farm.customer_root();
    Usage {
        pool: disk_kib(&[customer.join(".9.0.pool")]),
        generations: disk_kib(&[customer.join(".9.0.gen")]),
        staging: disk_kib(std::slice::from_ref(&farm.config.paths.staging)),
    }
}

fn apt_of(tree: &Path) -> AptRoot {
    AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", tree.display()),
    )
}

/// `apt-get install --download-only` of `package=version`, signatures checked.
fn assert_installs(apt: &AptRoot, package: &str, version: &str) {
    let out = apt.apt_get(&[
        "install",
        "-y",
        "--download-only",
        &format!("{package}={version}"),
    ]);
    assert!(
        out.status.success(),
        "{package}={version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 200 publishes of one package into one release through the publisher daemon, once with
/// `keep_snapshots = 5` and a snapshot marked shipped, once keeping everything (side by
/// side, to measure the disk each takes). With retention: the newest five snapshots and the
/// shipped one remain, the pool holds exactly the files they name, only the logs of the
/// kept window remain, staging is empty, the shipped snapshot and the live tree install
/// with apt (signatures checked).
#[tokio::test]
async fn two_hundred_publishes_stay_within_the_configured_retention() {
    let key = OperatorKey::new();
    let kept = farm_with(&key, "[publish]\nkeep_snapshots = 5\n");
    let all = farm_with(&key, "");
    let broker = Broker::connect(&kept.config.broker).await.unwrap();
    let mut staged_kib = 0;
    let mut queue_jobs = |farm: &Farm, range: std::ops::Range<usize>| {
        let mut jobs = Vec::new();
        for i in range {
            let job = stage_debs_at(farm, &unique("churn"), &["churn"], &format!("1.{i}"));
            staged_kib += disk_kib(&[farm.config.paths.staging.join(&job.job_id)]);
            jobs.push(job);
        }
        jobs
    };
    let first = queue_jobs(&kept, 1..21);
    let rest = queue_jobs(&kept, 21..PUBLISHES + 1);
    let everything = queue_jobs(&all, 1..PUBLISHES + 1);
    let staged_kib = staged_kib / 2;
    let queued = first
        .iter()
        .map(|j| (publish_queue(&kept), j))
        .chain(everything.iter().map(|j| (publish_queue(&all), j)));
    for (queue, job) in queued {
        broker.publish(&queue, job, &job.job_id).await.unwrap();
    }
    let start = |farm: &Farm, name: &str| farm.daemon("perestroika-publisher", name);
    let kept_publisher = start(&kept, "kept.log");
    let all_publisher = start(&all, "all.log");

    // Snapshot 20 ships: marked while it is live.
    wait_for_generation(&kept, 20, &kept_publisher);
    let cfg = kept.path.to_str().unwrap();
    let marked = run(
        "perestroika-publisher",
        &[
            "--config",
            cfg,
            "snapshot",
            "keep",
            &kept.customer,
            "9.0",
            "20",
            "--note",
            "9.0.1 GA",
        ],
    );
    assert_success(&marked);
    for job in &rest {
        broker
            .publish(&publish_queue(&kept), job, &job.job_id)
            .await
            .unwrap();
    }
    wait_for_generation(&kept, PUBLISHES as u64, &kept_publisher);
    wait_for_generation(&all, PUBLISHES as u64, &all_publisher);
    broker.close().await;
    // The last job's staging goes just before its acknowledgement, after the switch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(names_in(&kept.config.paths.staging).is_empty()
        && names_in(&all.config.paths.staging).is_empty())
    {
        assert!(Instant::now() < deadline, "staging was never emptied");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Generations: the newest five and the shipped one.
    let customer = kept.config.paths.public_root.join(&kept.customer);
    let gens = names_in(&customer.join(".9.0.gen"));
    assert_eq!(
        gens,
        ["196", "197", "198", "199", "20", "200"],
        "{}",
        kept_publisher.output()
    );
    let list = run(
        "perestroika-publisher",
        &["--config", cfg, "snapshot", "list", &kept.customer, "9.0"],
    );
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(" 20 ") && l.contains("shipped") && l.contains("9.0.1 GA")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with('*') && l.contains(" 200 ")),
        "{listed}"
    );
    assert_eq!(
        names_in(
            &all.config
                .paths
                .public_root
                .join(&all.customer)
                .join(".9.0.gen")
        )
        .len(),
        PUBLISHES
    );

    // The pool holds what the remaining snapshots name — every version, as a release keeps
    // every version in its indexes — and nothing else; the logs of the kept window only.
    let debs = names_in(&customer.join(".9.0.pool/deb/pool/main/c/churn"));
    assert_eq!(debs.len(), PUBLISHES, "{debs:?}");
    let logs = names_in(&customer.join(".9.0.pool/logs"));
    assert_eq!(logs.len(), 5, "{logs:?}");
    assert!(
        logs.iter().all(|l| rest[rest.len() - 5..]
            .iter()
            .any(|j| *l == format!("{}.log", j.job_id))),
        "{logs:?}"
    );
    let all_logs = names_in(
        &all.config
            .paths
            .public_root
            .join(&all.customer)
            .join(".9.0.pool/logs"),
    );
    assert_eq!(all_logs.len(), PUBLISHES);

    // The shipped snapshot installs, as does the live tree, with the signatures checked.
    let shipped = apt_of(&customer.join(".9.0.gen/20"));
    shipped.update();
    assert_eq!(shipped.versions("churn").len(), 20);
    assert_installs(&shipped, "churn", "1.20");
    assert_installs(&shipped, "churn", "1.1");
    let live_apt = apt_of(&kept.release_tree());
    live_apt.update();
    assert_eq!(live_apt.versions("churn").len(), PUBLISHES);
    assert_installs(&live_apt, "churn", &format!("1.{PUBLISHES}"));
    assert_installs(&live_apt, "churn", "1.7");

    // Figures: disk use, and the time each prune took.
    let (with, without) = (usage(&kept), usage(&all));
    let took: Vec<u64> = kept_publisher
        .events()
        .iter()
        .filter(|e| e.message().starts_with("pruned snapshots"))
        .map(|e| e.number("took_ms").expect("a prune logs its time") as u64)
        .collect();
    assert_eq!(
        took.len(),
        PUBLISHES - 5 - 1,
        "one prune per publish beyond the window"
    );
    let mut sorted = took.clone();
    sorted.sort_unstable();
    eprintln!(
        "after {PUBLISHES} publishes (KiB): with keep_snapshots = 5: pool {} + generations {} + staging {}; \
         keeping everything: pool {} + generations {} + staging {}; staged per run before removal {}; \
         prune took median {} ms, max {} ms",
        with.pool, with.generations, with.staging, without.pool, without.generations,
        without.staging, staged_kib, sorted[sorted.len() / 2], sorted[sorted.len() - 1]
    );
    assert!(with.generations * 10 < without.generations);
}

/// A farm signed by `key` that keeps the fewest snapshots allowed: two, and one previous
/// index state by hash.
fn keeping_two(key: &OperatorKey) -> Farm {
    signed_farm(
        &shared_amqp_url(),
        &[key],
        "[publish]\nkeep_generations = 1\nkeep_snapshots = 2\n",
        BOOKWORM_RELEASE,
    )
}

/// A review repository shows its change's latest patch set only: once the snapshots that
/// named the earlier ones are pruned, their files leave the pool and reprepro forgets them
/// (its own check of the pool finds nothing missing), and the repository goes on.
#[test]
fn a_review_repositorys_old_patch_sets_leave_the_pool_and_reprepro_forgets_them() {
    let key = OperatorKey::new();
    let farm = keeping_two(&key);
    let debs = tempfile::tempdir().unwrap();
    let versions: Vec<String> = (1..=7).map(|i| format!("1.0+p{i}")).collect();
    let files: Vec<PathBuf> = versions
        .iter()
        .map(|v| make_deb(debs.path(), "revchurn", v, false, v))
        .collect();
    let include = |file: &Path| {
        let out = farm
            .include("bookworm", &["--review", "77"], &[file])
            .output()
            .unwrap();
        assert_success(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for file in &files[..6] {
        include(file);
    }
    let tree = farm.customer_root().join("review");
    assert_eq!(names_in(&tree.join(".77.gen")), ["5", "6"]);
    let pool = tree.join(".77.pool/deb/pool/main/r/revchurn");
    assert_eq!(
        names_in(&pool),
        ["revchurn_1.0+p5_all.deb", "revchurn_1.0+p6_all.deb"]
    );
    // reprepro knows nothing of the removed files any more.
    let state = farm
        .config
        .paths
        .state
        .join(format!("publisher/deb/{}/review/77", farm.customer));
    let known = Command::new("reprepro")
        .arg("--basedir")
        .arg(&state)
        .arg("_listmd5sums")
        .output()
        .unwrap();
    let known = String::from_utf8_lossy(&known.stdout);
    assert!(known.contains("revchurn_1.0+p6_all.deb"), "{known}");
    for gone in 1..=4 {
        assert!(
            !known.contains(&format!("revchurn_1.0+p{gone}_all.deb")),
            "{known}"
        );
    }
    let check = Command::new("reprepro")
        .arg("--basedir")
        .arg(&state)
        .args(["checkpool", "fast"])
        .output()
        .unwrap();
    assert!(
        check.status.success() && !String::from_utf8_lossy(&check.stderr).contains("issing"),
        "reprepro checkpool: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The next patch set publishes, prunes and installs.
    let log = include(&files[6]);
    assert!(log.contains("pruned snapshots"), "{log}");
    assert_eq!(
        names_in(&pool),
        ["revchurn_1.0+p6_all.deb", "revchurn_1.0+p7_all.deb"]
    );
    let apt = apt_of(&tree.join("77"));
    apt.update();
    assert_eq!(apt.versions("revchurn"), ["1.0+p7"]);
    assert_installs(&apt, "revchurn", "1.0+p7");
}

/// A worker's start removes the `.incoming` directory of a killed worker and a git mirror
/// unused for longer than `build.git_cache_days`; it keeps a recently used mirror, a
/// published job's staging and an incoming directory of a live process.
#[tokio::test]
async fn a_worker_start_removes_killed_builds_and_stale_git_mirrors() {
    let farm = Farm::with_sections(&shared_amqp_url(), "", "[build]\ngit_cache_days = 7\n");
    farm.bootstrap();
    let staging = &farm.config.paths.staging;
    // A pid above the kernel's maximum (4194304) is no process.
    let killed = staging.join(".incoming-job-1-4999999");
    let alive = staging.join(format!(".incoming-job-2-{}", std::process::id()));
    let waiting = staging.join("job-3");
    for dir in [&killed, &alive, &waiting] {
        fs_err::create_dir_all(dir).unwrap();
        fs_err::write(dir.join("build.log"), "a log\n").unwrap();
    }
    // Two real git mirrors, as the worker's cache keeps them: one last used 30 days ago.
    let git = farm.config.paths.state.join("worker/git");
    fs_err::create_dir_all(&git).unwrap();
    let source = farm.dir.path().join("source");
    let run_git = |args: &[&str], dir: &Path| {
        sh(Command::new("git")
            .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(dir));
    };
    fs_err::create_dir_all(&source).unwrap();
    run_git(&["init", "-q", "-b", "main"], &source);
    fs_err::write(source.join("file"), "x").unwrap();
    run_git(&["add", "file"], &source);
    run_git(&["commit", "-q", "-m", "x"], &source);
    for name in ["stale", "fresh"] {
        run_git(
            &[
                "clone",
                "-q",
                "--bare",
                source.to_str().unwrap(),
                &format!("{name}.git"),
            ],
            &git,
        );
        fs_err::write(git.join(format!("{name}.used")), "").unwrap();
    }
    let month_ago = std::time::SystemTime::now() - Duration::from_secs(30 * 24 * 3600);
    fs_err::File::options()
        .write(true)
        .open(git.join("stale.used"))
        .unwrap()
        .set_modified(month_ago)
        .unwrap();
    // A root exported from an image that is gone.
    let roots = farm.config.paths.state.join("worker/roots");
    fs_err::create_dir_all(roots.join("0123456789ab/usr")).unwrap();

    let worker = farm.daemon("perestroika-worker", "worker.log");
    worker.wait_for_log("removed leftovers of killed builds", 1);
    let log = worker.output();
    assert!(
        log.contains("incoming=1")
            && log.contains("git_mirrors=1")
            && log.contains("build_roots=1"),
        "{log}"
    );
    assert!(!killed.exists());
    assert!(alive.join("build.log").is_file());
    assert!(waiting.join("build.log").is_file());
    assert!(!git.join("stale.git").exists());
    assert!(!git.join("stale.used").exists());
    assert!(git.join("fresh.git/HEAD").is_file());
    assert!(!roots.join("0123456789ab").exists());
}

/// A tmpfs of `size` mounted at `path` for the test's life.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(path: &Path, size: &str) -> Self {
        fs_err::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(path.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A publisher whose public tree lies on a small filesystem that is nearly full lets the job
/// wait instead of publishing (a warning names the path, what is free and the key; tried again
/// with a backoff, uncounted), and publishes it once there is room again.
#[tokio::test]
async fn a_publisher_short_of_space_lets_jobs_wait_and_publishes_once_there_is_room() {
    let key = OperatorKey::new();
    let farm = farm_with(&key, "");
    let public = farm.config.paths.public_root.clone();
    let _mounted = Mounted::tmpfs(&public, "64m");
    let ballast = public.join("ballast");
    let out = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=48", "status=none"])
        .arg(format!("of={}", ballast.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let job = stage_debs_at(&farm, &unique("tight"), &["tight"], "1.0");
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker
        .publish(&publish_queue(&farm), &job, &job.job_id)
        .await
        .unwrap();
    let publisher = Daemon::start_with_env(
        "perestroika-publisher",
        &["--config", farm.path.to_str().unwrap(), "run"],
        &[(
            "PERESTROIKA_PATHS__MIN_FREE_BYTES",
            &(32u64 << 20).to_string(),
        )],
        &farm.dir.path().join("pub.log"),
    );
    publisher.wait_for_log("less than paths.min_free_bytes", 1);
    let log = publisher.output();
    assert!(log.contains(&public.display().to_string()), "{log}");
    // Held and tried again with a backoff, never published, never dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(90);
    while publisher.output().matches("; the job waits").count() < 3 {
        assert!(Instant::now() < deadline, "{}", publisher.output());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(live(&farm), None, "nothing was published");
    assert!(farm.config.paths.staging.join(&job.job_id).is_dir());
    let dead = format!("{}.dead", publish_queue(&farm));
    assert_eq!(broker.stats(&dead).await.unwrap().messages, 0);

    fs_err::remove_file(&ballast).unwrap();
    wait_for_generation(&farm, 1, &publisher);
    let apt = apt_of(&farm.release_tree());
    apt.update();
    assert_installs(&apt, "tight", "1.0");
    broker.close().await;
}

/// A job's staging goes once the job is published, a failed build's once its log is; the same
/// job delivered again after that (its acknowledgement lost) is acknowledged without
/// publishing anything again, and nothing is dead-lettered.
#[tokio::test]
async fn staging_goes_once_published_and_a_later_redelivery_is_acknowledged() {
    let key = OperatorKey::new();
    let farm = farm_with(&key, "");
    let published = stage_debs_at(&farm, &unique("done"), &["done"], "1.0");
    let mut failed = stage_debs_at(&farm, &unique("failed"), &["done"], "1.1");
    let failed_dir = farm.config.paths.staging.join(&failed.job_id);
    for artifact in std::mem::take(&mut failed.artifacts) {
        fs_err::remove_file(failed_dir.join(&artifact.name)).unwrap();
    }
    failed.outcome = BuildOutcome::Failed {
        step: "dpkg-buildpackage".into(),
        reason: "exit status 2".into(),
    };
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let queue = publish_queue(&farm);
    for job in [&published, &failed] {
        broker.publish(&queue, job, &job.job_id).await.unwrap();
    }
    let publisher = farm.daemon("perestroika-publisher", "pub.log");
    wait_for_generation(&farm, 2, &publisher);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !names_in(&farm.config.paths.staging).is_empty() {
        assert!(Instant::now() < deadline, "{}", publisher.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = farm.release_tree().join("logs");
    assert!(logs.join(format!("{}.log", failed.job_id)).is_file());

    for job in [&published, &failed] {
        broker.publish(&queue, job, &job.job_id).await.unwrap();
    }
    publisher.wait_for_log("published before (its staged files are gone)", 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.stats(&queue).await.unwrap().messages > 0 {
        assert!(Instant::now() < deadline, "{}", publisher.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = format!("{queue}.dead");
    assert_eq!(broker.stats(&dead).await.unwrap().messages, 0);
    assert_eq!(live(&farm), Some(2), "nothing was published again");
    broker.close().await;
}

/// With the fewest snapshots allowed (two, and one previous index state by hash), a client
/// updating in a loop while 40 publishes prune a snapshot each never fails.
#[test]
fn a_client_updating_in_a_loop_never_fails_while_snapshots_are_pruned() {
    let key = OperatorKey::new();
    let farm = keeping_two(&key);
    let debs = tempfile::tempdir().unwrap();
    farm.publish(
        "bookworm",
        &[make_deb(debs.path(), "prune0", "1.0", false, "a")],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (stop, tree) = (stop.clone(), farm.release_tree());
        std::thread::spawn(move || {
            let apt = apt_of(&tree);
            let mut updates = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = apt.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"]);
                assert!(
                    out.status.success(),
                    "apt-get update failed while snapshots were pruned:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                updates += 1;
            }
            updates
        })
    };
    for i in 1..=40 {
        farm.publish(
            "bookworm",
            &[make_deb(
                debs.path(),
                &format!("prune{i}"),
                "1.0",
                false,
                "a",
            )],
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let updates = client.join().expect("the client never failed");
    assert!(updates >= 5, "the client ran only {updates} updates");
    let gens = farm.customer_root().join(".9.0.gen");
    assert_eq!(names_in(&gens), ["40", "41"]);
}

/// `snapshot keep` holds a snapshot past retention until `snapshot unkeep`; a snapshot that
/// is not there cannot be kept (exit 2, and the message says where to look).
#[test]
fn a_kept_snapshot_stays_until_unkept() {
    let key = OperatorKey::new();
    let farm = keeping_two(&key);
    let debs = tempfile::tempdir().unwrap();
    let publish = |i: u32| {
        farm.publish(
            "bookworm",
            &[make_deb(
                debs.path(),
                &format!("kept{i}"),
                "1.0",
                false,
                "a",
            )],
        )
    };
    let snapshot = |args: &[&str]| {
        let mut all = vec!["--config", farm.path.to_str().unwrap(), "snapshot"];
        all.extend_from_slice(args);
        run("perestroika-publisher", &all)
    };
    let gens = farm.customer_root().join(".9.0.gen");
    for i in 1..=2 {
        publish(i);
    }
    let kept = snapshot(&["keep", &farm.customer, "9.0", "2"]);
    assert_success(&kept);
    for i in 3..=5 {
        publish(i);
    }
    assert_eq!(names_in(&gens), ["2", "4", "5"]);
    let missing = snapshot(&["keep", &farm.customer, "9.0", "1"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("has no snapshot 1 (see `snapshot list`)"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let unkept = snapshot(&["unkeep", &farm.customer, "9.0", "2"]);
    assert!(String::from_utf8_lossy(&unkept.stdout).contains("no longer kept"));
    assert_eq!(
        names_in(&gens),
        ["2", "4", "5"],
        "pruned at the next publish, not before"
    );
    publish(6);
    assert_eq!(names_in(&gens), ["5", "6"]);
}
