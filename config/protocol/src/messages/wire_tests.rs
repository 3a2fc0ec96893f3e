//! Each message kind's JSON on the wire, pinned: a change of a field's name, order or shape
//! changes the snapshot (`cargo insta review` to accept a deliberate one). Times are fixed, so
//! nothing needs filtering; every pinned message also reads back as itself.

use chrono::{DateTime, TimeZone, Utc};
use perestroika_config::settings::Family;

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

fn git(project: &str, c: char) -> GitSource {
    GitSource {
        project: project.into(),
        url: format!("ssh://gerrit.example:29418/{project}"),
        branch: "openstack-ci/fuel-9.0/mitaka".into(),
        commit: c.to_string().repeat(40),
        fetch_ref: None,
    }
}

fn split() -> Sources {
    Sources::Split {
        code: git("acme/openstack/nova", 'a'),
        packaging: git("acme/openstack-build/nova", 'b'),
    }
}

fn trigger() -> Trigger {
    Trigger {
        kind: TriggerKind::ChangeMerged,
        change: Some(7),
        patchset: Some(2),
        event_time: Some(1_780_000_000),
    }
}

fn artifact(name: &str, c: char, size: u64) -> Artifact {
    Artifact {
        name: name.into(),
        sha256: c.to_string().repeat(64),
        size,
    }
}

fn build_job() -> BuildJob {
    let mut job = BuildJob::new(
        "acme",
        "9.0",
        "nova",
        Family::Deb,
        "bookworm",
        split(),
        Target::Release,
        1,
        trigger(),
    );
    job.requested_at = at(0);
    job
}

/// The message as it goes on the wire, pretty-printed (same fields, same order), after
/// checking that it reads back as itself.
fn wire<M: Message + PartialEq + std::fmt::Debug>(message: &M) -> String {
    let back = M::from_bytes(&message.to_bytes()).expect("a pinned message reads back");
    assert_eq!(&back, message);
    let value: serde_json::Value = serde_json::from_slice(&message.to_bytes()).unwrap();
    let pretty = serde_json::to_string_pretty(message).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
        value
    );
    pretty
}

#[test]
fn build_job_on_the_wire() {
    insta::assert_snapshot!(wire(&build_job()));
}

#[test]
fn review_build_job_on_the_wire() {
    let mut job = BuildJob::new(
        "acme",
        "9.0",
        "greet",
        Family::Rpm,
        "el9",
        Sources::Combined {
            repo: GitSource {
                fetch_ref: Some("refs/changes/07/7/2".into()),
                ..git("acme/packages/rpm/el9/greet", 'c')
            },
        },
        Target::Topic {
            topic: "shared-fix".into(),
        },
        0,
        Trigger {
            kind: TriggerKind::PatchsetCreated,
            ..trigger()
        },
    );
    job.requested_at = at(1);
    insta::assert_snapshot!(wire(&job));
}

#[test]
fn build_result_on_the_wire() {
    let job = build_job();
    let result = BuildResult {
        schema_version: SCHEMA_VERSION,
        job_id: job.job_id,
        outcome: BuildOutcome::Failed {
            step: "dpkg-buildpackage".into(),
            reason: "debian/rules exited with status 2".into(),
        },
        package_version: Some("2:13.0.0+git5-1+p1.1".into()),
        artifacts: vec![artifact("nova_13.0.0+git5-1+p1.1.dsc", 'd', 1234)],
        log: Some(artifact(LOG_NAME, 'e', 56789)),
        image_id: Some(format!("sha256:{}", "f".repeat(64))),
        image_digest: None,
        worker: "worker-1".into(),
        started_at: at(10),
        finished_at: at(70),
    };
    insta::assert_snapshot!(wire(&result));
}

#[test]
fn publish_job_on_the_wire() {
    let job = build_job();
    let mut publish = PublishJob::of_build(
        &job,
        "2:13.0.0+git5-1+p1.1".into(),
        vec![
            artifact("nova_13.0.0+git5-1+p1.1.dsc", 'd', 1234),
            artifact("python3-nova_13.0.0+git5-1+p1.1_all.deb", 'a', 98765),
        ],
        Some(artifact(LOG_NAME, 'e', 56789)),
        BuildOutcome::Succeeded,
    );
    publish.staged_on = Some("worker-1".into());
    insta::assert_snapshot!(wire(&publish));
}

#[test]
fn rebuild_request_on_the_wire() {
    let request = RebuildRequest {
        schema_version: SCHEMA_VERSION,
        rebuild: build_job(),
        staged_on: "worker-1".into(),
        reason: "cannot fetch the job's files from worker worker-1".into(),
    };
    assert!(RebuildRequest::is_one(&request.to_bytes()));
    assert_eq!(
        RebuildRequest::from_bytes(&request.to_bytes()).unwrap(),
        request
    );
    insta::assert_snapshot!(wire(&request));
}

#[test]
fn review_retirement_on_the_wire() {
    let mut retire = ReviewRetirement::new("acme", "9.0", 7);
    retire.requested_at = at(2);
    insta::assert_snapshot!(wire(&retire));
}

#[test]
fn signature_refresh_on_the_wire() {
    insta::assert_snapshot!(wire(&SignatureRefresh::new("acme", "9.0")));
}

#[test]
fn mirror_announcement_on_the_wire() {
    let announcement = MirrorAnnouncement {
        schema_version: SCHEMA_VERSION,
        customer: "acme".into(),
        version: "9.0".into(),
        snapshot: "12".into(),
        generation: 12,
        tree: "acme/9.0".into(),
        published_at: at(3),
    };
    insta::assert_snapshot!(wire(&announcement));
}

#[test]
fn feedback_on_the_wire() {
    let job = build_job();
    let mut feedback = Feedback::of(
        &job.job_id,
        &job.customer,
        &job.version,
        &job.package,
        job.family,
        &job.distro,
        &job.target,
        &job.trigger,
        BuildOutcome::Succeeded,
        Some("2:13.0.0+git5-1+p1.1".into()),
    )
    .expect("the trigger names a change");
    feedback.suite = Some("bookworm".into());
    feedback.log = Some(format!("acme/9.0/logs/{}.log", job.job_id));
    feedback.requested_at = Some(job.requested_at);
    insta::assert_snapshot!(wire(&feedback));
}

#[test]
fn promotion_on_the_wire() {
    let mut promotion = Promotion::new(
        "acme",
        "9.0",
        "nova",
        Some("2:13.0.0+git5-1+p1.1"),
        "proposed",
        "updates",
        &["bookworm".to_owned()],
        false,
    );
    promotion.reply_to = Some("amq.gen-reply".into());
    promotion.requested_at = at(4);
    insta::assert_snapshot!(wire(&promotion));
}

#[test]
fn promotion_result_on_the_wire() {
    let promotion = Promotion::new(
        "acme",
        "9.0",
        "nova",
        None,
        "proposed",
        "updates",
        &[],
        true,
    );
    let result = PromotionResult {
        schema_version: SCHEMA_VERSION,
        job_id: promotion.job_id,
        promoted: true,
        copied: vec!["bookworm-updates: python3-nova_13.0.0+git5-1+p1.1_all.deb".into()],
        missing: vec!["nova-api: python3-nova (>= 2:13.0.0)".into()],
        error: None,
        generation: Some(13),
    };
    insta::assert_snapshot!(wire(&result));
}
