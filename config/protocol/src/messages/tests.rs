use super::*;
use perestroika_config::settings::Family;

fn src(project: &str, c: char) -> GitSource {
    GitSource {
        project: project.into(),
        url: format!("ssh://gerrit/{project}"),
        branch: "openstack-ci/fuel-9.0/mitaka".into(),
        commit: c.to_string().repeat(40),
        fetch_ref: None,
    }
}

fn job(kind: TriggerKind, rebuild: u32) -> BuildJob {
    BuildJob::new(
        "acme",
        "9.0",
        "nova",
        Family::Deb,
        "bookworm",
        Sources::Split {
            code: src("acme/openstack/nova", 'a'),
            packaging: src("acme/openstack-build/nova", 'b'),
        },
        Target::Release,
        rebuild,
        Trigger {
            kind,
            change: Some(7),
            patchset: Some(1),
            event_time: None,
        },
    )
}

#[test]
fn review_trees_name_their_customer() {
    assert_eq!(review_tree_customer("acme/review/42"), Some("acme"));
    assert_eq!(review_tree_customer("acme/review/shared-fix"), Some("acme"));
    assert_eq!(review_tree_customer("acme/9.0"), None);
    assert_eq!(review_tree_customer("acme"), None);
    for target in [
        Target::Review { change: 1 },
        Target::Topic { topic: "t".into() },
    ] {
        assert_eq!(
            review_tree_customer(&target.tree("acme", "9.0")),
            Some("acme")
        );
    }
    assert_eq!(
        review_tree_customer(&Target::Release.tree("acme", "9.0")),
        None
    );
}

#[test]
fn job_id_is_deterministic_and_ignores_the_trigger() {
    let merged = job(TriggerKind::ChangeMerged, 0);
    let caught_up = job(TriggerKind::CatchUp, 0);
    assert_eq!(merged.job_id, caught_up.job_id);
    assert_eq!(merged.job_id.len(), 24);
    assert_ne!(merged.job_id, job(TriggerKind::Manual, 1).job_id);
}

#[test]
fn round_trip_and_checks() {
    let j = job(TriggerKind::ChangeMerged, 0);
    let back = BuildJob::from_bytes(&j.to_bytes()).unwrap();
    assert_eq!(back, j);

    let mut tampered = j.clone();
    tampered.rebuild = 3;
    let err = BuildJob::from_bytes(&tampered.to_bytes()).unwrap_err();
    assert!(matches!(err, MessageError::JobId { .. }), "{err}");

    let mut evil = j.clone();
    evil.package = "../../etc".into();
    evil.job_id = evil.compute_id();
    let err = BuildJob::from_bytes(&evil.to_bytes()).unwrap_err();
    assert!(err.to_string().contains("package"), "{err}");
}

#[test]
fn unknown_schema_is_refused() {
    let mut v = serde_json::to_value(job(TriggerKind::Manual, 0)).unwrap();
    v["schema_version"] = 99.into();
    let err = BuildJob::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("schema_version 99"), "{err}");
    let err = BuildJob::from_bytes(b"{not json").unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[test]
fn artifact_names_are_checked() {
    let p = PublishJob {
        schema_version: SCHEMA_VERSION,
        job_id: "abc".into(),
        customer: "acme".into(),
        version: "9.0".into(),
        distro: "bookworm".into(),
        family: Family::Deb,
        package: "hello".into(),
        package_version: "1:2.10-3".into(),
        target: Target::Review { change: 12 },
        sources: Sources::Combined {
            repo: src("acme/packages/deb/bookworm/hello", 'a'),
        },
        artifacts: vec![Artifact {
            name: "../x.deb".into(),
            sha256: "0".repeat(64),
            size: 1,
        }],
        log: None,
        requested_at: None,
        trigger: None,
        outcome: BuildOutcome::Succeeded,
        rebuild: 0,
        staged_on: None,
    };
    assert!(PublishJob::from_bytes(&p.to_bytes()).is_err());
    let mut ok = p.clone();
    ok.artifacts[0].name = "hello_2.10-3_amd64.deb".into();
    assert!(PublishJob::from_bytes(&ok.to_bytes()).is_ok());
    // The log is a build log, by name.
    let mut log = ok.clone();
    log.log = Some(Artifact {
        name: "KEY.asc".into(),
        ..ok.artifacts[0].clone()
    });
    assert!(PublishJob::from_bytes(&log.to_bytes()).is_err());
    log.log.as_mut().unwrap().name = LOG_NAME.into();
    assert!(PublishJob::from_bytes(&log.to_bytes()).is_ok());
}
