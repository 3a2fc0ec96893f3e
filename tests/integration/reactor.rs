//! The reactor against a Gerrit stand-in (real sshd, real git) and a real RabbitMQ.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{
    BuildJob, Message, MirrorAnnouncement, ReviewRetirement, Sources, Target, TriggerKind,
};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::{signed_farm, AptRoot, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::debian::{base_image, greet_code, greet_packaging, package_cache};
use perestroika_tests::gerrit::{ChangeSpec, Gerrit};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{
    assert_success, collect, combined_job, run, shared_amqp_url, unique, Daemon, Farm,
};
use serde_json::json;

const SPLIT_BRANCH: &str = "openstack-ci/fuel-9.0/mitaka";

struct Setup {
    gerrit: Gerrit,
    farm: Farm,
}

fn setup(amqp_url: &str) -> Setup {
    let gerrit = Gerrit::start();
    let farm = Farm::with_sections(amqp_url, "", &gerrit.config_section());
    Setup { gerrit, farm }
}

impl Setup {
    fn reactor(&self) -> Daemon {
        let log = self
            .farm
            .dir
            .path()
            .join(format!("{}.log", unique("reactor")));
        let daemon = Daemon::start(
            "perestroika-reactor",
            &["--config", self.farm.path.to_str().unwrap(), "run"],
            &log,
        );
        daemon.wait_for_log("listening to gerrit stream-events", 1);
        self.gerrit.wait_for_streams(1);
        daemon
    }

    fn combined(&self, package: &str) -> String {
        format!("{}/packages/deb/bookworm/{package}", self.farm.customer)
    }

    fn change(&self, project: &str, branch: &str, number: u64, revision: &str) -> ChangeSpec {
        ChangeSpec {
            project: project.to_owned(),
            branch: branch.to_owned(),
            number,
            patch_set: 1,
            revision: revision.to_owned(),
            topic: None,
        }
    }

    /// Merges a change of a combined project: a real commit on its branch (a fast-forward),
    /// recorded for `gerrit query` and, when `live`, reported with `change-merged`.
    fn merge(&self, number: u64, live: bool) -> ChangeSpec {
        let project = self.combined("hello");
        let revision = self.gerrit.push(
            &project,
            "9.0",
            &[(format!("change-{number}"), format!("{number}\n"))],
            &format!("change {number}"),
        );
        let change = self.change(&project, "9.0", number, &revision);
        self.gerrit.record(&change.row("MERGED"));
        if live {
            self.gerrit.emit(&change.event("change-merged", json!({})));
        }
        change
    }

    fn queue(&self, stage: Stage) -> String {
        s_queue(&self.farm.customer, stage)
    }
}

fn ids(jobs: &[BuildJob]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for j in jobs {
        *seen.entry(j.job_id.clone()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn events_become_jobs_and_everything_else_is_skipped_with_a_reason() {
    let s = setup(&shared_amqp_url());
    let c = s.farm.customer.clone();
    let code = format!("{c}/openstack/greet");
    let packaging = format!("{c}/openstack-build/greet");
    let code_head = s.gerrit.push(
        &code,
        SPLIT_BRANCH,
        &[("README".into(), "code\n".into())],
        "code",
    );
    let packaging_head = s.gerrit.push(
        &packaging,
        SPLIT_BRANCH,
        &[("debian/control".into(), "x\n".into())],
        "pkg",
    );
    let reactor = s.reactor();

    let merged = s.change(&code, SPLIT_BRANCH, 101, &code_head);
    let review = s.change(&s.combined("hello"), "9.0", 102, &"c".repeat(40));
    let review = ChangeSpec {
        patch_set: 2,
        ..review
    };
    s.gerrit.emit_raw(&[
        merged
            .event("change-merged", json!({"newRev": code_head}))
            .to_string(),
        review.event("patchset-created", json!({})).to_string(),
    ]);
    // Two builds and the merged change's review retirement.
    reactor.wait_for_log("queueing", 3);
    let mut lines = Vec::new();
    let pushed = s.gerrit.push(
        &packaging,
        SPLIT_BRANCH,
        &[("debian/rules".into(), "y\n".into())],
        "push",
    );
    // A direct push, as Gerrit 2 reports it: short ref name, string numbers, no time.
    lines.push(
        json!({"type": "ref-updated", "submitter": {"name": "Dev"},
               "refUpdate": {"oldRev": packaging_head, "newRev": pushed,
                             "refName": SPLIT_BRANCH, "project": packaging}})
        .to_string(),
    );
    lines.push(
        review
            .event(
                "comment-added",
                json!({"comment": "Patch Set 2:\n\nrecheck", "author": {"name": "Dev"}}),
            )
            .to_string(),
    );
    lines.push(
        review
            .event(
                "comment-added",
                json!({"comment": "Patch Set 2: Code-Review+1\n\nnice"}),
            )
            .to_string(),
    );
    lines.push(
        review
            .event("change-abandoned", json!({"reason": "superseded"}))
            .to_string(),
    );
    let unmapped = s.change("other/thing", "master", 104, &"d".repeat(40));
    lines.push(unmapped.event("change-merged", json!({})).to_string());
    lines.push("{this is not json".into());
    lines.push(json!({"type": "change-merged", "change": {"project": code}}).to_string());
    // Every line real Gerrit servers sent (other projects, other event types).
    lines.extend(
        include_str!("../data/gerrit/events.jsonl")
            .lines()
            .map(str::to_owned),
    );
    // The first merge again: already queued, so not queued twice.
    lines.push(
        merged
            .event("change-merged", json!({"newRev": code_head}))
            .to_string(),
    );
    let sentinel = s.change(&s.combined("hello"), "9.0", 103, &"e".repeat(40));
    lines.push(sentinel.event("change-merged", json!({})).to_string());
    s.gerrit.emit_raw(&lines);

    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let jobs: Vec<BuildJob> = collect(
        &broker,
        &s.queue(Stage::Build),
        |got: &[BuildJob]| {
            got.iter().any(|j| j.trigger.change == Some(103))
                && got
                    .iter()
                    .any(|j| j.trigger.kind == TriggerKind::RefUpdated)
        },
        Duration::from_secs(2),
    )
    .await;
    let kinds: Vec<_> = jobs
        .iter()
        .map(|j| (j.trigger.kind, j.trigger.change))
        .collect();
    // The direct push comes last: a branch update waits `submit_wait_ms` for the
    // change-merged of a submit that made it, and none comes.
    assert_eq!(
        kinds,
        [
            (TriggerKind::ChangeMerged, Some(101)),
            (TriggerKind::PatchsetCreated, Some(102)),
            (TriggerKind::Recheck, Some(102)),
            (TriggerKind::ChangeMerged, Some(103)),
            (TriggerKind::RefUpdated, None),
        ],
        "{}",
        reactor.output()
    );
    // The merge builds the merged code with the packaging branch's head, for the release.
    let Sources::Split {
        code: c0,
        packaging: p0,
    } = &jobs[0].sources
    else {
        panic!("{:?}", jobs[0].sources)
    };
    assert_eq!(
        (c0.commit.as_str(), p0.commit.as_str()),
        (code_head.as_str(), packaging_head.as_str())
    );
    assert_eq!(jobs[0].target, Target::Release);
    assert!(c0.url.ends_with(&format!("/git/{code}")), "{}", c0.url);
    // The patch set builds for review from its change ref.
    assert_eq!(jobs[1].target, Target::Review { change: 102 });
    let Sources::Combined { repo } = &jobs[1].sources else {
        panic!()
    };
    assert_eq!(repo.fetch_ref.as_deref(), Some("refs/changes/02/102/2"));
    assert_eq!(repo.commit, "c".repeat(40));
    // The push builds the pushed packaging with the code branch's head.
    let Sources::Split {
        code: c2,
        packaging: p2,
    } = &jobs[4].sources
    else {
        panic!()
    };
    assert_eq!(
        (c2.commit.as_str(), p2.commit.as_str()),
        (code_head.as_str(), pushed.as_str())
    );
    // A recheck is the same work asked for again.
    assert_eq!(jobs[2].job_id, jobs[1].job_id);

    let retired: Vec<ReviewRetirement> = collect(
        &broker,
        &s.queue(Stage::Publish),
        |got: &[ReviewRetirement]| got.len() >= 3,
        Duration::from_secs(1),
    )
    .await;
    let changes: Vec<u64> = retired.iter().map(|r| r.change).collect();
    assert_eq!(changes, [101, 102, 103]);

    let log = reactor.output();
    for reason in [
        "no mapping rule matches project \"other/thing\"",
        "not JSON",
        "no \"change.branch\"",
        "does not ask for a rebuild",
    ] {
        assert!(log.contains(reason), "log lacks {reason:?}:\n{log}");
    }
}

/// Merges delivered live are built one by one; merges made while the session was down are
/// covered by one build of the branch head the catch-up finds, which holds them all.
#[tokio::test]
async fn a_killed_session_during_a_burst_of_merges_leaves_no_merge_unbuilt() {
    let mut s = setup(&shared_amqp_url());
    let reactor = s.reactor();
    s.merge(1, true);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let first: Vec<BuildJob> = collect(
        &broker,
        &s.queue(Stage::Build),
        |g: &[BuildJob]| !g.is_empty(),
        Duration::ZERO,
    )
    .await;
    assert_eq!(first.len(), 1, "{}", reactor.output());

    // A burst: the session dies in the middle of it; the rest happens while it is down.
    let mut merged = vec![];
    for n in 2..=12 {
        merged.push(s.merge(n, true));
    }
    s.gerrit.stop();
    for n in 13..=20 {
        merged.push(s.merge(n, true));
    }
    let head = s.gerrit.head(&s.combined("hello"), "9.0");
    std::thread::sleep(Duration::from_secs(1));
    s.gerrit.start_sshd();
    reactor.wait_for_log("listening to gerrit stream-events", 2);
    s.gerrit.wait_for_streams(2);
    // And the session ends again, this time with only the stream command killed.
    s.gerrit.kill_commands();
    reactor.wait_for_log("listening to gerrit stream-events", 3);
    s.gerrit.wait_for_streams(3);
    // Merge 21 after this session's catch-up, so that it comes live.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = reactor.output();
        let listened = log.rfind("listening to gerrit stream-events").unwrap();
        if log.rfind("caught up").is_some_and(|at| at > listened) {
            break;
        }
        assert!(Instant::now() < deadline, "no catch-up:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = s.merge(21, true);

    let jobs: Vec<BuildJob> = collect(
        &broker,
        &s.queue(Stage::Build),
        |g: &[BuildJob]| g.iter().any(|j| j.trigger.change == Some(21)),
        Duration::from_secs(5),
    )
    .await;
    let mut all = first;
    all.extend(jobs);
    let per_id = ids(&all);
    assert!(
        per_id.values().all(|n| *n == 1),
        "a job was queued twice: {per_id:?}\n{}",
        reactor.output()
    );
    let commit = |j: &BuildJob| match &j.sources {
        Sources::Combined { repo } => repo.commit.clone(),
        other => panic!("{other:?}"),
    };
    let built: Vec<String> = all.iter().map(commit).collect();
    // The head the catch-up found holds merges 1 to 20; it is built once, for the newest.
    let caught: Vec<&BuildJob> = all
        .iter()
        .filter(|j| j.trigger.kind == TriggerKind::CatchUp)
        .collect();
    assert_eq!(caught.len(), 1, "{}", reactor.output());
    assert_eq!(commit(caught[0]), head, "{}", reactor.output());
    assert_eq!(caught[0].trigger.change, Some(20));
    // Merges made while the session was down are not built one by one.
    for change in &merged[11..18] {
        assert!(
            !built.contains(&change.revision),
            "change {} was built alone",
            change.number
        );
    }
    assert!(built.contains(&last.revision));
    assert!(all.iter().all(|j| j.target == Target::Release));
    assert!(s
        .gerrit
        .commands()
        .contains("gerrit query --format=JSON --current-patch-set"));
}

/// A `recheck` written while the session was down is found by the catch-up query
/// (`--comments`) and rebuilt once; messages from before the outage, and chat, are not.
#[tokio::test]
async fn a_recheck_written_during_an_outage_is_caught_up_once() {
    let mut s = setup(&shared_amqp_url());
    let reactor = s.reactor();
    let change = s.change(&s.combined("hello"), "9.0", 7, &format!("{:040x}", 7));
    let before = perestroika_tests::gerrit::now() - 60;
    let comment = |timestamp: i64, message: &str| json!({"timestamp": timestamp, "reviewer": {"name": "Dev", "username": "dev"}, "message": message});
    let mut row = change.row("NEW");
    row["comments"] = json!([comment(before, "Patch Set 1:\n\nrecheck")]);
    s.gerrit.record(&row);
    s.gerrit.emit(&change.event("patchset-created", json!({})));
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let queue = s.queue(Stage::Build);
    let first: Vec<BuildJob> = collect(
        &broker,
        &queue,
        |g: &[BuildJob]| !g.is_empty(),
        Duration::ZERO,
    )
    .await;
    assert_eq!(first.len(), 1, "{}", reactor.output());

    // Gerrit goes away; meanwhile a developer asks for a rebuild, and someone chats.
    s.gerrit.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let during = perestroika_tests::gerrit::now();
    row["comments"] = json!([
        comment(before, "Patch Set 1:\n\nrecheck"),
        comment(during, "Patch Set 1:\n\nrecheck"),
        comment(during, "Patch Set 1:\n\nlooks good, recheck later"),
    ]);
    row["lastUpdated"] = json!(during);
    s.gerrit.record(&row);
    s.gerrit.start_sshd();
    s.gerrit.wait_for_streams(2);
    let rechecked: Vec<BuildJob> = collect(
        &broker,
        &queue,
        |g: &[BuildJob]| !g.is_empty(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(rechecked.len(), 1, "{}", reactor.output());
    assert_eq!(rechecked[0].job_id, first[0].job_id);
    assert_eq!(rechecked[0].trigger.kind, TriggerKind::Recheck);
    assert!(s.gerrit.commands().contains("--comments"));

    // Another gap without new messages: the recheck already handled is not done again.
    s.gerrit.kill_commands();
    s.gerrit.wait_for_streams(3);
    reactor.wait_for_log("catching up", 2);
    let none: Vec<BuildJob> = collect(
        &broker,
        &queue,
        |_: &[BuildJob]| true,
        Duration::from_secs(3),
    )
    .await;
    assert!(none.is_empty(), "{none:?}\n{}", reactor.output());
}

#[tokio::test]
async fn a_silent_session_is_found_dead_by_keepalives_and_replaced() {
    let s = setup(&shared_amqp_url());
    let reactor = s.reactor();
    s.merge(1, true);
    reactor.wait_for_log("queueing", 2);
    // The connection goes silent: no reset, no answers. Keepalives every 2 s, three missed.
    let frozen = s.gerrit.freeze_connections();
    s.merge(2, false);
    let started = Instant::now();
    reactor.wait_for_log("listening to gerrit stream-events", 2);
    let noticed = started.elapsed();
    s.gerrit.thaw(&frozen);
    s.gerrit.wait_for_streams(2);
    // After the catch-up, so that merge 3 is a live event, not part of what is caught up.
    reactor.wait_for_log("caught up", 1);
    s.merge(3, true);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let jobs: Vec<BuildJob> = collect(
        &broker,
        &s.queue(Stage::Build),
        |g: &[BuildJob]| g.len() >= 3,
        Duration::from_secs(1),
    )
    .await;
    let changes: Vec<u64> = jobs.iter().filter_map(|j| j.trigger.change).collect();
    // Merge 2 happened while the session was silent: the catch-up builds it.
    assert_eq!(changes, [1, 2, 3], "{}", reactor.output());
    assert!(noticed < Duration::from_secs(20), "took {noticed:?}");
    assert!(
        reactor.output().contains("Gerrit session lost"),
        "{}",
        reactor.output()
    );
}

#[tokio::test]
async fn an_unknown_or_changed_host_key_is_refused() {
    let mut s = setup(&shared_amqp_url());
    s.gerrit.change_host_key();
    let check = |needle: &str| {
        let log = s.farm.dir.path().join(format!("{}.log", unique("reactor")));
        let mut daemon = Daemon::start(
            "perestroika-reactor",
            &["--config", s.farm.path.to_str().unwrap(), "run"],
            &log,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the reactor kept going:\n{}",
                daemon.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(1), "{}", daemon.output());
        assert!(
            daemon.output().contains(needle),
            "{needle:?} missing:\n{}",
            daemon.output()
        );
        assert!(
            !daemon.output().contains("listening"),
            "{}",
            daemon.output()
        );
    };
    check("host key CHANGED");
    fs_err::write(&s.gerrit.known_hosts, "").unwrap();
    check("is not in");
}

#[tokio::test]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let rabbit = Rabbit::start();
    let s = setup(&rabbit.url());
    let reactor = s.reactor();
    for n in 1..=5 {
        s.merge(n, true);
    }
    reactor.wait_for_log("queueing", 10);
    rabbit.stop();
    for n in 6..=10 {
        s.merge(n, true);
    }
    std::thread::sleep(Duration::from_secs(2));
    rabbit.start_again();
    for n in 11..=15 {
        s.merge(n, true);
    }
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let jobs: Vec<BuildJob> = collect(
        &broker,
        &s.queue(Stage::Build),
        |g: &[BuildJob]| g.iter().any(|j| j.trigger.change == Some(15)),
        Duration::from_secs(2),
    )
    .await;
    let changes: std::collections::BTreeSet<u64> =
        jobs.iter().filter_map(|j| j.trigger.change).collect();
    assert_eq!(changes, (1..=15).collect(), "{}", reactor.output());
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_reason_and_requeued() {
    let s = setup(&shared_amqp_url());
    let cfg = s.farm.path.to_str().unwrap();
    assert!(run("perestroika-queue", &["--config", cfg, "bootstrap"])
        .status
        .success());
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let queue = s.queue(Stage::Build);
    let job = combined_job(
        &s.farm.customer,
        "hello",
        "file:///dev/null",
        &"a".repeat(40),
        0,
    );
    broker.publish(&queue, &job, &job.job_id).await.unwrap();
    let delivery = broker
        .get(&queue)
        .await
        .unwrap()
        .expect("the job is queued");
    broker
        .dead_letter(
            &queue,
            &delivery,
            "build failed at step deps: no such package",
        )
        .await
        .unwrap();

    let out = run("perestroika-queue", &["--config", cfg, "dead"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(
        text.contains(&job.job_id) && text.contains("no such package"),
        "{text}"
    );
    assert!(text.contains("hello for bookworm"), "{text}");
    // Listing twice lists the same: nothing is taken away by looking.
    let out = run("perestroika-queue", &["--config", cfg, "--json", "dead"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["origin"], queue);

    let out = run(
        "perestroika-queue",
        &["--config", cfg, "dead", "requeue", "nosuchjob"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead-lettered job nosuchjob"));
    let out = run(
        "perestroika-queue",
        &["--config", cfg, "dead", "requeue", &job.job_id],
    );
    assert_success(&out);
    let back = broker.get(&queue).await.unwrap().expect("requeued");
    assert_eq!(BuildJob::from_bytes(&back.data).unwrap(), job);
    assert_eq!(
        broker
            .stats(&format!("{queue}.dead"))
            .await
            .unwrap()
            .messages,
        0
    );
}

#[tokio::test]
async fn a_retrigger_rebuilds_with_a_higher_revision_through_worker_and_publisher() {
    base_image("bookworm");
    let gerrit = Gerrit::start();
    let key = OperatorKey::new();
    let farm = signed_farm(
        &shared_amqp_url(),
        &[&key],
        &format!(
            "{}\n[build]\npackage_cache = \"{}\"\ntimeout_secs = 600\n",
            gerrit.config_section(),
            package_cache()
        ),
        BOOKWORM_RELEASE,
    );
    let cfg = farm.path.to_str().unwrap();
    assert!(run("perestroika-queue", &["--config", cfg, "bootstrap"])
        .status
        .success());
    let c = &farm.customer;
    let code = format!("{c}/openstack/greet");
    let packaging = format!("{c}/openstack-build/greet");
    let code_head = gerrit.push(&code, SPLIT_BRANCH, &greet_code("Hello again"), "code");
    let packaging_head = gerrit.push(&packaging, SPLIT_BRANCH, &greet_packaging(), "packaging");

    // A dry run shows the job and queues nothing.
    let out = run(
        "perestroika-queue",
        &[
            "--config",
            cfg,
            "retrigger",
            &code,
            SPLIT_BRANCH,
            "--dry-run",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(
        text.contains("would queue") && text.contains("rebuild 1"),
        "{text}"
    );
    assert!(
        text.contains(&code_head[..12]) && text.contains(&packaging_head[..12]),
        "{text}"
    );
    // An unmapped project says why.
    let out = run(
        "perestroika-queue",
        &["--config", cfg, "retrigger", "other/x", "main"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no mapping rule"));

    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let worker = farm.daemon("perestroika-worker", "worker.log");
    let publisher = farm.daemon("perestroika-publisher", "pub.log");
    let tree = farm.release_tree();
    let apt = AptRoot::new(
        &tree.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", tree.display()),
    );
    let mut versions = Vec::new();
    for round in 1..=2u64 {
        let out = run(
            "perestroika-queue",
            &["--config", cfg, "--json", "retrigger", &code, SPLIT_BRANCH],
        );
        assert_success(&out);
        let jobs: Vec<BuildJob> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].rebuild as u64, round);
        assert_eq!(jobs[0].trigger.kind, TriggerKind::Manual);
        let queue = s_queue(c, Stage::Mirror);
        let Some(d) = broker.take(&queue, Duration::from_secs(240)).await.unwrap() else {
            panic!(
                "round {round}: nothing published:\n{}\n---\n{}",
                worker.output(),
                publisher.output()
            )
        };
        let ann = MirrorAnnouncement::from_bytes(&d.data).unwrap();
        assert_eq!(ann.generation, round);
        apt.update();
        versions.push(apt.versions("greet").remove(0));
    }
    assert!(
        versions[0].ends_with(".1") && versions[1].ends_with(".2"),
        "{versions:?}"
    );
    let cmp = std::process::Command::new("dpkg")
        .args(["--compare-versions", &versions[1], "gt", &versions[0]])
        .status()
        .unwrap();
    assert!(cmp.success(), "{versions:?}");
}

fn s_queue(customer: &str, stage: Stage) -> String {
    QueueName::new(stage, customer, "9.0").to_string()
}

/// A recheck storm: of more rechecks of a change than `recheck_limit` within its window, the
/// limit's number are built; the change is told once (not once per refusal) what the limit
/// is and from when a recheck is accepted again; a restart and its catch-up, which hears the
/// refused rechecks again, neither reset the count nor repeat the message; and after the
/// window a recheck builds again.
#[tokio::test]
async fn a_recheck_storm_builds_the_limit_and_tells_the_change_once() {
    const LIMIT: usize = 2;
    const WINDOW: i64 = 20;
    let gerrit = Gerrit::start();
    let section = format!(
        "{}recheck_limit = {LIMIT}\nrecheck_window_secs = {WINDOW}\n",
        gerrit.config_section()
    );
    let farm = Farm::with_sections(&shared_amqp_url(), "", &section);
    let s = Setup { gerrit, farm };
    let mut reactor = s.reactor();
    let change = s.change(&s.combined("hello"), "9.0", 9, &format!("{:040x}", 9));
    let start = perestroika_tests::gerrit::now();
    let text = "Patch Set 1:\n\nrecheck";
    let recheck = |at: i64| {
        change
            .event(
                "comment-added",
                json!({"comment": text, "author": {"name": "Dev"}, "eventCreatedOn": at}),
            )
            .to_string()
    };
    // Six rechecks in six seconds.
    let storm: Vec<String> = (0..6).map(|i| recheck(start + i)).collect();
    s.gerrit.emit_raw(&storm);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let queue = s.queue(Stage::Build);
    let built: Vec<BuildJob> = collect(
        &broker,
        &queue,
        |g: &[BuildJob]| g.len() >= LIMIT,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(built.len(), LIMIT, "{built:?}\n{}", reactor.output());
    for job in &built {
        assert_eq!(job.trigger.kind, TriggerKind::Recheck);
        assert_eq!(job.trigger.change, Some(9));
    }
    reactor.wait_for_log("recheck refused", 6 - LIMIT);
    let log = reactor.output();
    assert!(
        log.lines()
            .filter(|l| l.contains("recheck refused"))
            .all(|l| l.contains("INFO") && l.contains("change=9")),
        "{log}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while s.gerrit.reviews().is_empty() {
        assert!(Instant::now() < deadline, "no notice: {}", reactor.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let next = chrono::DateTime::from_timestamp(start + WINDOW, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let told = |reviews: &[serde_json::Value]| {
        assert_eq!(reviews.len(), 1, "one notice: {reviews:?}");
        let r = &reviews[0];
        assert_eq!(r["target"], "9,1", "{r}");
        assert_eq!(r["labels"], json!({}), "no vote: {r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("recheck refused"), "{message}");
        assert!(
            message.contains(&format!("at most {LIMIT} times within {WINDOW} seconds")),
            "{message}"
        );
        assert!(message.contains(&next), "{next}: {message}");
    };
    told(&s.gerrit.reviews());

    // A restart: the catch-up hears the storm again from the change's messages, and one
    // more recheck comes within the window. Nothing is built, and nobody is told again.
    let comments: Vec<_> = (0..6)
        .map(|i| json!({"timestamp": start + i, "reviewer": {"name": "Dev"}, "message": text}))
        .collect();
    let mut row = change.row("NEW");
    row["comments"] = json!(comments);
    s.gerrit.record(&row);
    std::thread::sleep(Duration::from_millis(600));
    reactor.kill();
    let reactor = s.reactor();
    s.gerrit.wait_for_streams(2);
    reactor.wait_for_log("caught up", 1);
    let heard_again = reactor.output().matches("recheck refused").count();
    assert_eq!(heard_again, 6 - LIMIT, "{}", reactor.output());
    s.gerrit.emit_raw(&[recheck(start + 6)]);
    reactor.wait_for_log("recheck refused", 6 - LIMIT + 1);
    let none: Vec<BuildJob> = collect(
        &broker,
        &queue,
        |_: &[BuildJob]| true,
        Duration::from_secs(2),
    )
    .await;
    assert!(none.is_empty(), "{none:?}\n{}", reactor.output());
    std::thread::sleep(Duration::from_secs(1));
    told(&s.gerrit.reviews());

    // After the window, a recheck builds again.
    let wait = (start + WINDOW - perestroika_tests::gerrit::now()).max(0) as u64;
    std::thread::sleep(Duration::from_secs(wait));
    s.gerrit.emit_raw(&[recheck(
        perestroika_tests::gerrit::now().max(start + WINDOW),
    )]);
    let again: Vec<BuildJob> = collect(
        &broker,
        &queue,
        |g: &[BuildJob]| !g.is_empty(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(again.len(), 1, "{again:?}\n{}", reactor.output());
    assert_eq!(again[0].trigger.kind, TriggerKind::Recheck);
    assert_eq!(again[0].job_id, built[0].job_id);
    told(&s.gerrit.reviews());
}

/// A `gerrit review` that never answers is abandoned after `gerrit.command_timeout_secs`
/// (the feedback lock held by every queue is let go) and tried again; once Gerrit answers, the
/// feedback arrives, once.
#[tokio::test]
async fn a_hung_gerrit_review_times_out_and_the_feedback_arrives_later() {
    use perestroika_protocol::messages::{BuildOutcome, Feedback, Trigger};
    let gerrit = Gerrit::start();
    let section = format!("{}command_timeout_secs = 2\n", gerrit.config_section());
    let farm = Farm::with_sections(&shared_amqp_url(), "", &section);
    let s = Setup { gerrit, farm };
    let cfg = s.farm.path.to_str().unwrap();
    assert!(run("perestroika-queue", &["--config", cfg, "bootstrap"])
        .status
        .success());
    s.gerrit.server_option("hang_review", true);
    let reactor = s.reactor();
    let trigger = Trigger {
        kind: TriggerKind::PatchsetCreated,
        change: Some(7),
        patchset: Some(1),
        event_time: None,
    };
    let feedback = Feedback::of(
        &unique("job"),
        &s.farm.customer,
        "9.0",
        "hello",
        perestroika_config::Family::Deb,
        "bookworm",
        &Target::Review { change: 7 },
        &trigger,
        BuildOutcome::Succeeded,
        Some("1.0".into()),
    )
    .unwrap();
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    broker
        .publish(&feedback.queue(), &feedback, &feedback.job_id)
        .await
        .unwrap();
    reactor.wait_for_log("Gerrit did not answer within 2 s", 1);
    reactor.wait_for_log("the feedback waits", 1);
    assert!(
        reactor.output().contains("gerrit.command_timeout_secs"),
        "{}",
        reactor.output()
    );
    assert!(s.gerrit.reviews().is_empty());

    s.gerrit.server_option("hang_review", false);
    let answered = Instant::now();
    while s.gerrit.reviews().is_empty() {
        assert!(
            answered.elapsed() < Duration::from_secs(60),
            "no feedback once Gerrit answered:\n{}",
            reactor.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "feedback reached Gerrit {:?} after it answered again",
        answered.elapsed()
    );
    reactor.wait_for_log("feedback sent to Gerrit", 1);
    let reviews = s.gerrit.reviews();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["target"], "7,1");
    assert_eq!(reviews[0]["labels"]["Verified"], "+1");
    let dead = format!("{}.dead", feedback.queue());
    assert_eq!(broker.stats(&dead).await.unwrap().messages, 0);
    broker.close().await;
}
