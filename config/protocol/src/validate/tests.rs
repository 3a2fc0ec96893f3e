use super::*;
use crate::messages::{GitSource, TriggerKind, SCHEMA_VERSION};

const CONFIG: &str = r#"
[broker]
url = "amqp://127.0.0.1/%2f"
[gerrit]
host = "review.example"
user = "farm"
key_file = "/k"
known_hosts = "/kh"
[paths]
public_root = "/p"
staging = "/s"
state = "/st"
[[customers]]
name = "acme"
versions = [{ name = "9.0", deb = ["bookworm"], rpm = ["el9"] }]
[[customers]]
name = "other"
versions = [{ name = "9.0", deb = ["bookworm"] }]
"#;

fn farm() -> FarmConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("farm.toml");
    fs_err::write(&path, CONFIG).unwrap();
    FarmConfig::load_with_env(&path, Vec::new()).unwrap()
}

fn q(stage: Stage, customer: &str) -> QueueName {
    QueueName::new(stage, customer, "9.0")
}

fn repo(project: &str) -> GitSource {
    GitSource {
        project: project.into(),
        url: format!("ssh://farm@review.example:29418/{project}"),
        branch: "9.0".into(),
        commit: "a".repeat(40),
        fetch_ref: None,
    }
}

fn trigger(change: Option<u64>) -> Trigger {
    Trigger {
        kind: TriggerKind::PatchsetCreated,
        change,
        patchset: change.map(|_| 2),
        event_time: None,
    }
}

fn build(target: Target, change: Option<u64>) -> BuildJob {
    BuildJob::new(
        "acme",
        "9.0",
        "hello",
        Family::Deb,
        "bookworm",
        Sources::Combined {
            repo: repo("acme/packages/deb/bookworm/hello"),
        },
        target,
        0,
        trigger(change),
    )
}

fn publish(target: Target, change: Option<u64>) -> PublishJob {
    let b = build(target.clone(), change);
    PublishJob {
        schema_version: SCHEMA_VERSION,
        job_id: b.job_id,
        customer: b.customer,
        version: b.version,
        distro: b.distro,
        family: b.family,
        package: b.package,
        package_version: "1.0".into(),
        target,
        sources: b.sources,
        artifacts: Vec::new(),
        log: None,
        requested_at: Some(b.requested_at),
        trigger: Some(b.trigger),
        outcome: Default::default(),
        rebuild: 0,
        staged_on: None,
    }
}

fn why(r: Result<(), Refused>) -> String {
    r.expect_err("refused").to_string()
}

#[test]
fn a_build_job_of_the_configured_gerrit_passes() {
    let f = farm();
    build_job(&f, &q(Stage::Build, "acme"), &build(Target::Release, None)).unwrap();
    let review = build(Target::Review { change: 7 }, Some(7));
    build_job(&f, &q(Stage::Build, "acme"), &review).unwrap();
}

#[test]
fn a_clone_url_elsewhere_is_refused() {
    let f = farm();
    let mut job = build(Target::Release, None);
    let Sources::Combined { repo } = &mut job.sources else {
        unreachable!()
    };
    repo.url = "https://evil.example/acme/packages/deb/bookworm/hello".into();
    let err = why(build_job(&f, &q(Stage::Build, "acme"), &job));
    assert!(err.contains("not the configured Gerrit's"), "{err}");
    let err = why(publish_job(&f, &q(Stage::Publish, "acme"), &{
        let mut p = publish(Target::Release, None);
        p.sources = job.sources.clone();
        p
    }));
    assert!(err.contains("not the configured Gerrit's"), "{err}");
}

#[test]
fn a_project_of_another_customer_or_package_is_refused() {
    let f = farm();
    let mut job = build(Target::Release, None);
    job.sources = Sources::Combined {
        repo: repo("other/packages/deb/bookworm/hello"),
    };
    let err = why(build_job(&f, &q(Stage::Build, "acme"), &job));
    assert!(err.contains("maps to other 9.0 hello"), "{err}");
    job.sources = Sources::Combined {
        repo: repo("acme/packages/deb/bookworm/evil"),
    };
    assert!(build_job(&f, &q(Stage::Build, "acme"), &job).is_err());
    job.sources = Sources::Combined {
        repo: repo("acme/packages/rpm/el9/hello"),
    };
    let err = why(build_job(&f, &q(Stage::Build, "acme"), &job));
    assert!(err.contains("does not build for deb bookworm"), "{err}");
    job.sources = Sources::Split {
        code: repo("acme/packages/deb/bookworm/hello"),
        packaging: repo("acme/packages/deb/bookworm/hello"),
    };
    assert!(build_job(&f, &q(Stage::Build, "acme"), &job).is_err());
}

#[test]
fn a_job_on_another_releases_queue_is_refused() {
    let f = farm();
    let job = build(Target::Release, None);
    let err = why(build_job(&f, &q(Stage::Build, "other"), &job));
    assert!(err.contains("arrived on build.other.9.0"), "{err}");
    let err = why(build_job(&f, &q(Stage::Publish, "acme"), &job));
    assert!(err.contains("not a build queue"), "{err}");
    let p = publish(Target::Release, None);
    assert!(publish_job(&f, &q(Stage::Publish, "other"), &p).is_err());
    let mut p = p;
    p.distro = "el9".into();
    let err = why(publish_job(&f, &q(Stage::Publish, "acme"), &p));
    assert!(err.contains("rpm distro"), "{err}");
}

#[test]
fn a_publish_job_must_say_when_and_why_it_was_built() {
    let f = farm();
    let queue = q(Stage::Publish, "acme");
    let good = publish(Target::Review { change: 7 }, Some(7));
    publish_job(&f, &queue, &good).unwrap();
    let mut p = good.clone();
    p.requested_at = None;
    assert!(why(publish_job(&f, &queue, &p)).contains("requested_at"));
    let mut p = good.clone();
    p.trigger = None;
    assert!(why(publish_job(&f, &queue, &p)).contains("trigger"));
    let mut p = good.clone();
    p.target = Target::Review { change: 8 };
    assert!(why(publish_job(&f, &queue, &p)).contains("trigger is change 7"));
    let mut p = good.clone();
    p.trigger = Some(trigger(None));
    assert!(why(publish_job(&f, &queue, &p)).contains("change and patch set"));
    let mut p = good;
    p.target = Target::Topic { topic: "t".into() };
    publish_job(&f, &queue, &p).unwrap();
}

fn ann(customer: &str, tree: &str, generation: u64, snapshot: &str) -> MirrorAnnouncement {
    MirrorAnnouncement {
        schema_version: SCHEMA_VERSION,
        customer: customer.into(),
        version: "9.0".into(),
        snapshot: snapshot.into(),
        generation,
        tree: tree.into(),
        published_at: chrono::Utc::now(),
    }
}

#[test]
fn announcements_name_only_their_queues_trees_in_the_publishers_form() {
    let f = farm();
    let queue = q(Stage::Mirror, "acme");
    announcement(&f, &queue, &ann("acme", "acme/9.0", 3, "3")).unwrap();
    announcement(&f, &queue, &ann("acme", "acme/review/7", 1, "1")).unwrap();
    announcement(&f, &queue, &ann("acme", "acme/review/7", 0, "retired")).unwrap();
    // Another customer's tree, under this customer's name or on this customer's queue.
    let err = why(announcement(
        &f,
        &queue,
        &ann("acme", "other/9.0", 0, "retired"),
    ));
    assert!(err.contains("neither acme/9.0"), "{err}");
    let err = why(announcement(&f, &queue, &ann("other", "other/9.0", 1, "1")));
    assert!(err.contains("arrived on mirror.acme.9.0"), "{err}");
    assert!(announcement(&f, &queue, &ann("acme", "acme/review/7/x", 1, "1")).is_err());
    assert!(announcement(&f, &queue, &ann("acme", "acme/10.0", 1, "1")).is_err());
    // Generation 0 takes down retired review trees only, in the publisher's form.
    let err = why(announcement(
        &f,
        &queue,
        &ann("acme", "acme/9.0", 0, "retired"),
    ));
    assert!(err.contains("not a review tree"), "{err}");
    assert!(announcement(&f, &queue, &ann("acme", "acme/review/7", 0, "0")).is_err());
    assert!(announcement(&f, &queue, &ann("acme", "acme/9.0", 3, "retired")).is_err());
}

#[test]
fn retirements_promotions_and_feedback_keep_to_their_queues() {
    let f = farm();
    let r = ReviewRetirement::new("acme", "9.0", 7);
    retirement(&f, &q(Stage::Publish, "acme"), &r).unwrap();
    assert!(retirement(&f, &q(Stage::Publish, "other"), &r).is_err());
    let p = Promotion::new(
        "acme",
        "9.0",
        "hello",
        None,
        "proposed",
        "updates",
        &[],
        false,
    );
    promotion(&f, &q(Stage::Publish, "acme"), &p).unwrap();
    let bad = Promotion::new(
        "acme",
        "9.0",
        "hello",
        None,
        "proposed",
        "nowhere",
        &[],
        false,
    );
    assert!(why(promotion(&f, &q(Stage::Publish, "acme"), &bad)).contains("nowhere"));
    let b = build(Target::Review { change: 7 }, Some(7));
    let mut fb = Feedback::of(
        &b.job_id,
        "acme",
        "9.0",
        "hello",
        Family::Deb,
        "bookworm",
        &b.target,
        &b.trigger,
        Default::default(),
        None,
    )
    .unwrap();
    feedback(&f, &q(Stage::Feedback, "acme"), &fb).unwrap();
    assert!(feedback(&f, &q(Stage::Feedback, "other"), &fb).is_err());
    fb.change = 8;
    assert!(feedback(&f, &q(Stage::Feedback, "acme"), &fb).is_err());
}

#[test]
fn a_forged_rebuild_request_is_refused() {
    use crate::messages::RebuildRequest;
    let f = farm();
    let request = |job: BuildJob| RebuildRequest {
        schema_version: SCHEMA_VERSION,
        rebuild: job,
        staged_on: "worker-1".into(),
        reason: "connection refused".into(),
    };
    let honest = request(build(Target::Release, None));
    rebuild_request(&f, &q(Stage::Feedback, "acme"), &honest).unwrap();
    // On another release's feedback queue.
    let err = why(rebuild_request(&f, &q(Stage::Feedback, "other"), &honest));
    assert!(err.contains("arrived on feedback.other.9.0"), "{err}");
    // A build job for a clone URL outside the configured Gerrit.
    let mut job = build(Target::Release, None);
    let Sources::Combined { repo: source } = &mut job.sources else {
        unreachable!()
    };
    source.url = "https://evil.example/acme/packages/deb/bookworm/hello".into();
    let err = why(rebuild_request(
        &f,
        &q(Stage::Feedback, "acme"),
        &request(job),
    ));
    assert!(err.contains("not the configured Gerrit's"), "{err}");
    // A project that maps to another customer.
    let mut job = build(Target::Release, None);
    job.sources = Sources::Combined {
        repo: repo("other/packages/deb/bookworm/hello"),
    };
    let err = why(rebuild_request(
        &f,
        &q(Stage::Feedback, "acme"),
        &request(job),
    ));
    assert!(err.contains("maps to other 9.0 hello"), "{err}");
}
