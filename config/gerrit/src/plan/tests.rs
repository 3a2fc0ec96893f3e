use super::*;
use crate::events::parse_event;
use std::path::Path;

struct Table;

impl Heads for Table {
    async fn branch_head(&self, project: &str, _: &str) -> Result<Option<String>, SshError> {
        Ok(match project {
            "acme/openstack-build/nova" => Some("b".repeat(40)),
            "acme/openstack/nova" => Some("c".repeat(40)),
            _ => None,
        })
    }
}

fn farm() -> FarmConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/farm.toml");
    FarmConfig::load_with_env(&path, Vec::new()).unwrap()
}

/// What a planner borrows, made from the example configuration.
struct Fixture {
    farm: FarmConfig,
    mapping: Mapping,
    gerrit: GerritSettings,
}

impl Fixture {
    fn new() -> Self {
        let farm = farm();
        Self {
            mapping: farm.mapping().unwrap(),
            gerrit: farm.gerrit.clone().unwrap(),
            farm,
        }
    }

    fn planner(&self) -> Planner<'_> {
        Planner {
            farm: &self.farm,
            mapping: &self.mapping,
            gerrit: &self.gerrit,
        }
    }
}

async fn plan(line: &str) -> Result<Vec<Action>, NotPlanned> {
    Fixture::new()
        .planner()
        .plan(&Table, &parse_event(line).unwrap(), false)
        .await
}

fn event(kind: &str, project: &str, branch: &str, extra: &str) -> String {
    format!(
        r#"{{"type":"{kind}","change":{{"project":"{project}","branch":"{branch}","number":"42","status":"NEW"}},"patchSet":{{"number":"2","revision":"{}","ref":"refs/changes/42/42/2"}}{extra}}}"#,
        "a".repeat(40)
    )
}

fn jobs(actions: &[Action]) -> Vec<&BuildJob> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Build(job) => Some(job.as_ref()),
            Action::Retire { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn a_merge_builds_the_branch_state_after_it_and_retires_the_review() {
    let merged = event(
        "change-merged",
        "acme/openstack/nova",
        "openstack-ci/fuel-9.0/mitaka",
        &format!(r#","newRev":"{}""#, "d".repeat(40)),
    );
    // newRev (a merge commit, say) is built, not the patch set's revision; without it
    // (Gerrit 2), the branch head is.
    let without = merged.replace(&format!(r#","newRev":"{}""#, "d".repeat(40)), "");
    for (line, built) in [(merged, "d"), (without, "c")] {
        let actions = plan(&line).await.unwrap();
        let builds = jobs(&actions);
        assert!(!builds.is_empty());
        for job in &builds {
            assert_eq!(job.target, Target::Release);
            assert_eq!(job.trigger.change, Some(42));
            let Sources::Split { code, packaging } = &job.sources else {
                panic!()
            };
            assert_eq!(code.commit, built.repeat(40));
            assert_eq!(code.fetch_ref, None);
            assert_eq!(packaging.commit, "b".repeat(40));
            assert_eq!(packaging.project, "acme/openstack-build/nova");
        }
        assert!(actions.contains(&Action::Retire {
            customer: "acme".into(),
            version: "9.0".into(),
            change: 42
        }));
    }
}

#[tokio::test]
async fn patch_set_builds_for_review_from_its_ref() {
    let actions = plan(&event(
        "patchset-created",
        "acme/openstack/nova",
        "openstack-ci/fuel-9.0/mitaka",
        "",
    ))
    .await
    .unwrap();
    for job in jobs(&actions) {
        assert_eq!(job.target, Target::Review { change: 42 });
        let Sources::Split { code, .. } = &job.sources else {
            panic!()
        };
        assert_eq!(code.fetch_ref.as_deref(), Some("refs/changes/42/42/2"));
        // Patch set 2: its builds sort above patch set 1's in the review repository.
        assert_eq!(job.rebuild, 2);
    }
}

#[tokio::test]
async fn a_change_with_a_topic_builds_into_the_topic_repository() {
    let with_topic = |topic: &str| {
        event(
            "patchset-created",
            "acme/openstack/nova",
            "openstack-ci/fuel-9.0/mitaka",
            "",
        )
        .replace(
            r#""status":"NEW""#,
            &format!(r#""status":"NEW","topic":"{topic}""#),
        )
    };
    for job in jobs(&plan(&with_topic("multi-fix")).await.unwrap()) {
        assert_eq!(
            job.target,
            Target::Topic {
                topic: "multi-fix".into()
            }
        );
    }
    // A topic that cannot be a repository name, or could be a change's, is not used.
    for topic in ["has space", "1234"] {
        for job in jobs(&plan(&with_topic(topic)).await.unwrap()) {
            assert_eq!(job.target, Target::Review { change: 42 }, "{topic}");
        }
    }
}

#[tokio::test]
async fn recheck_only_on_the_phrase() {
    let asks = event(
        "comment-added",
        "acme/openstack/nova",
        "openstack-ci/fuel-9.0/mitaka",
        r#","comment":"Patch Set 2:\n\nrecheck""#,
    );
    let jobs_of_recheck = plan(&asks).await.unwrap();
    assert_eq!(jobs(&jobs_of_recheck)[0].trigger.kind, TriggerKind::Recheck);
    let chat = asks.replace("recheck", "looks good, please recheck later");
    let e = plan(&chat).await.unwrap_err();
    assert!(e.to_string().contains("does not ask for a rebuild"), "{e}");

    // Only what would build counts against the recheck limit.
    let fixture = Fixture::new();
    let planner = fixture.planner();
    let is = |line: &str| planner.recheck(&parse_event(line).unwrap().event).is_some();
    assert!(is(&asks));
    assert!(!is(&chat));
    assert!(!is(
        &asks.replace(r#""status":"NEW""#, r#""status":"MERGED""#)
    ));
    assert!(!is(&asks.replace("acme/openstack/nova", "other/x")));
}

#[tokio::test]
async fn unmapped_and_missing_heads_say_why() {
    let e = plan(&event("change-merged", "other/x", "master", ""))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no mapping rule"), "{e}");
    let cinder = |extra: &str| {
        event(
            "change-merged",
            "acme/openstack-build/cinder",
            "openstack-ci/fuel-9.0/mitaka",
            extra,
        )
    };
    let e = plan(&cinder(&format!(r#","newRev":"{}""#, "d".repeat(40))))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has no branch"), "{e}");
    let e = plan(&cinder("")).await.unwrap_err();
    assert!(e.to_string().contains("which no longer exists"), "{e}");
    let tag = r#"{"type":"ref-updated","refUpdate":{"project":"acme/openstack/nova","refName":"refs/tags/1.0","oldRev":"0000000000000000000000000000000000000000","newRev":"1111111111111111111111111111111111111111"}}"#;
    let e = plan(tag).await.unwrap_err();
    assert!(e.to_string().contains("only branch updates"), "{e}");
}

#[test]
fn rebuild_phrase() {
    assert!(asks_for_rebuild("Patch Set 3:\n\n  Recheck ", "recheck"));
    assert!(!asks_for_rebuild("Patch Set 3: Code-Review+2", "recheck"));
    assert!(!asks_for_rebuild("recheck", " "));
}
