//! What a submit builds, against the real reactor, broker and worker and a Gerrit stand-in that
//! submits as Gerrit does (each submit type, `ref-updated` and `change-merged`): one release
//! build per submit, of what the branch holds after it.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{BuildJob, Message, PublishJob, Sources, Target, TriggerKind};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::debian::{base_image, package_cache};
use perestroika_tests::gerrit::Gerrit;
use perestroika_tests::{collect, run, shared_amqp_url, unique, Daemon, Farm};

/// The submit types Gerrit offers, in project.config's words.
const SUBMIT_TYPES: [&str; 5] = [
    "fast forward only",
    "merge if necessary",
    "merge always",
    "rebase always",
    "cherry pick",
];

struct Setup {
    gerrit: Gerrit,
    farm: Farm,
}

fn setup() -> Setup {
    let gerrit = Gerrit::start();
    let farm = Farm::with_sections(
        &shared_amqp_url(),
        "",
        &format!(
            "{}\n[build]\npackage_cache = \"{}\"\ntimeout_secs = 600\n",
            gerrit.config_section(),
            package_cache()
        ),
    );
    let out = run(
        "perestroika-queue",
        &["--config", farm.path.to_str().unwrap(), "bootstrap"],
    );
    assert!(out.status.success(), "{out:?}");
    Setup { gerrit, farm }
}

impl Setup {
    fn daemon(&self, name: &str) -> Daemon {
        let log = self.farm.dir.path().join(format!("{}.log", unique(name)));
        Daemon::start(
            name,
            &["--config", self.farm.path.to_str().unwrap(), "run"],
            &log,
        )
    }

    fn reactor(&self) -> Daemon {
        let daemon = self.daemon("perestroika-reactor");
        daemon.wait_for_log("listening to gerrit stream-events", 1);
        self.gerrit.wait_for_streams(1);
        daemon
    }

    fn project(&self, package: &str) -> String {
        format!("{}/packages/deb/bookworm/{package}", self.farm.customer)
    }

    fn queue(&self, stage: Stage) -> String {
        QueueName::new(stage, &self.farm.customer, "9.0").to_string()
    }

    /// Release build jobs on the build queue until `done`, then `quiet` more; review builds
    /// (of uploaded patch sets) are dropped.
    async fn release_jobs(
        &self,
        broker: &Broker,
        done: impl Fn(&[BuildJob]) -> bool,
        quiet: Duration,
    ) -> Vec<BuildJob> {
        let jobs: Vec<BuildJob> = collect(
            broker,
            &self.queue(Stage::Build),
            |got: &[BuildJob]| {
                let release: Vec<BuildJob> = got
                    .iter()
                    .filter(|j| j.target == Target::Release)
                    .cloned()
                    .collect();
                done(&release)
            },
            quiet,
        )
        .await;
        jobs.into_iter()
            .filter(|j| j.target == Target::Release)
            .collect()
    }
}

/// A native package whose binary ships every file of the repository's `content/`.
fn package(name: &str) -> Vec<(String, String)> {
    vec![
        (
            "debian/changelog".into(),
            format!(
                "{name} (1.0) unstable; urgency=medium\n\n  * Initial release.\n\n -- Test <test@example.invalid>  Mon, 01 Jan 2024 00:00:00 +0000\n"
            ),
        ),
        ("debian/source/format".into(), "3.0 (native)\n".into()),
        (
            "debian/control".into(),
            format!(
                "Source: {name}\nSection: misc\nPriority: optional\nMaintainer: Test <test@example.invalid>\n\
                 Standards-Version: 4.6.2\nRules-Requires-Root: no\n\n\
                 Package: {name}\nArchitecture: all\nDescription: a test package\n A test package of the build farm.\n"
            ),
        ),
        (
            "debian/rules".into(),
            format!(
                "#!/usr/bin/make -f\nbuild build-arch build-indep:\n\n\
                 binary binary-arch binary-indep: build\n\tmkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/{name}\n\
                 \tcp content/* debian/tmp/usr/share/{name}/\n\tdpkg-gencontrol -Pdebian/tmp\n\
                 \tdpkg-deb --root-owner-group -b debian/tmp ..\n\nclean:\n\trm -rf debian/tmp\n"
            ),
        ),
        ("content/base".into(), "base\n".into()),
    ]
}

fn commit(job: &BuildJob) -> &str {
    match &job.sources {
        Sources::Combined { repo } => &repo.commit,
        other => panic!("{other:?}"),
    }
}

/// For every submit type: two changes on the same parent, submitted one after the other, give
/// exactly one release build per submit, of the branch head after it, reporting to its
/// change; built for real, each version is above the one before, and the second package holds
/// both changes (built from a merge commit, a rebased or a cherry-picked commit).
#[tokio::test]
async fn every_submit_type_builds_the_branch_head_once_per_submit() {
    base_image("bookworm");
    let s = setup();
    let mut expected: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (i, action) in SUBMIT_TYPES.iter().enumerate() {
        let name = format!("submit{i}");
        let project = s.project(&name);
        s.gerrit.push(&project, "9.0", &package(&name), "base");
        s.gerrit.set_submit_type(&project, action);
        expected.insert(project, vec![]);
    }
    let reactor = s.reactor();
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();

    for (i, action) in SUBMIT_TYPES.iter().enumerate() {
        let project = s.project(&format!("submit{i}"));
        let (a, b) = (100 * i as u64 + 1, 100 * i as u64 + 2);
        let file = |n: &str| vec![(format!("content/{n}"), format!("{n}\n"))];
        let first = s.gerrit.upload(&project, "9.0", (a, 1), &file("a"));
        let second = s.gerrit.upload(&project, "9.0", (b, 1), &file("b"));
        assert_eq!(
            first.revision.len(),
            40,
            "the stand-in uploaded a real commit"
        );
        let head_a = s.gerrit.submit(a, 1).unwrap();
        let head_b = match s.gerrit.submit(b, 1) {
            Ok(head) => head,
            Err(refusal) => {
                // Fast forward only: Gerrit refuses; the author rebases and uploads again.
                assert_eq!(*action, "fast forward only", "{refusal}");
                assert!(refusal.contains("fast-forward"), "{refusal}");
                s.gerrit.upload(&project, "9.0", (b, 2), &file("b"));
                s.gerrit.submit(b, 2).unwrap()
            }
        };
        match *action {
            "fast forward only" => assert_eq!(head_a, first.revision),
            "merge if necessary" => {
                assert_eq!(head_a, first.revision);
                assert_ne!(head_b, second.revision, "a merge commit");
            }
            _ => assert_ne!(head_a, first.revision, "{action}: a new commit"),
        }
        let list = expected.get_mut(&project).unwrap();
        list.push((a, head_a));
        list.push((b, head_b));
    }
    let submits = 2 * SUBMIT_TYPES.len();
    // Longer than the branch update's wait for its change (3 s), to catch a second build.
    let jobs = s
        .release_jobs(&broker, |got| got.len() >= submits, Duration::from_secs(6))
        .await;
    let mut built: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for job in &jobs {
        let Sources::Combined { repo } = &job.sources else {
            panic!()
        };
        assert_eq!(job.trigger.kind, TriggerKind::ChangeMerged, "{job:?}");
        assert_eq!(repo.fetch_ref, None);
        built
            .entry(repo.project.clone())
            .or_default()
            .push((job.trigger.change.unwrap(), repo.commit.clone()));
    }
    assert_eq!(
        built,
        expected,
        "one build per submit, of the branch head after it, for its change:\n{}",
        reactor.output()
    );
    // Each submit's ref-updated came first and was recognised as the same branch update.
    let log = reactor.output();
    assert_eq!(
        log.matches("the ref-updated heard before this merge is the same branch update")
            .count(),
        submits,
        "{log}"
    );

    // Built for real: versions rise, and the second build holds both changes.
    let build_queue = s.queue(Stage::Build);
    for job in &jobs {
        broker
            .publish(&build_queue, job, &job.job_id)
            .await
            .unwrap();
    }
    let worker = s.daemon("perestroika-worker");
    // The publish queue holds the merged changes' review retirements too.
    let mut published: Vec<PublishJob> = Vec::new();
    while published.len() < jobs.len() {
        let Some(d) = broker
            .take(&s.queue(Stage::Publish), Duration::from_secs(180))
            .await
            .unwrap()
        else {
            break;
        };
        published.extend(PublishJob::from_bytes(&d.data).ok());
    }
    assert_eq!(published.len(), jobs.len(), "{}", worker.output());
    let deb_of = |job: &BuildJob| {
        let p = published
            .iter()
            .find(|p| p.job_id == job.job_id)
            .expect("every job was built");
        let deb = p
            .artifacts
            .iter()
            .find(|a| a.name.ends_with("_all.deb"))
            .unwrap_or_else(|| panic!("no deb in {p:?}\n{}", worker.output()));
        s.farm.config.paths.staging.join(&p.job_id).join(&deb.name)
    };
    for (i, action) in SUBMIT_TYPES.iter().enumerate() {
        let project = s.project(&format!("submit{i}"));
        let of_project: Vec<&BuildJob> = jobs
            .iter()
            .filter(|j| matches!(&j.sources, Sources::Combined { repo } if repo.project == project))
            .collect();
        let debs: Vec<_> = of_project.iter().map(|j| deb_of(j)).collect();
        let version = |deb: &std::path::Path| {
            let out = Command::new("dpkg-deb")
                .args(["--field"])
                .arg(deb)
                .arg("Version")
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let (v1, v2) = (version(&debs[0]), version(&debs[1]));
        let higher = Command::new("dpkg")
            .args(["--compare-versions", &v2, "gt", &v1])
            .status()
            .unwrap();
        assert!(higher.success(), "{action}: {v2} is not above {v1}");
        let contents = Command::new("dpkg-deb")
            .arg("-c")
            .arg(&debs[1])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&contents.stdout);
        for file in ["base", "a", "b"] {
            assert!(
                listing.contains(&format!("/usr/share/submit{i}/{file}\n")),
                "{action}: the package of {} lacks {file}:\n{listing}",
                commit(of_project[1])
            );
        }
        eprintln!("{action}: {v1} then {v2}");
    }
}

/// `dropped-output` (Gerrit dropped events of the stream) starts a catch-up at once, which
/// builds the merge the stream never delivered; a Gerrit 2 `change-merged` (no `newRev`) builds
/// the branch head read from Gerrit.
#[tokio::test]
async fn dropped_output_catches_up_a_merge_the_stream_never_delivered() {
    let s = setup();
    let project = s.project("dropped");
    s.gerrit.push(&project, "9.0", &package("dropped"), "base");
    let reactor = s.reactor();
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let file = |n: &str| vec![(format!("content/{n}"), format!("{n}\n"))];

    // A Gerrit 2 server: change-merged without newRev.
    s.gerrit.server_option("new_rev", false);
    s.gerrit.upload(&project, "9.0", (1, 1), &file("a"));
    let other = s.gerrit.upload(&project, "9.0", (2, 1), &file("b"));
    s.gerrit.submit(1, 1).unwrap();
    let merge = s.gerrit.submit(2, 1).unwrap();
    assert_ne!(merge, other.revision);
    let live = s
        .release_jobs(&broker, |got| got.len() >= 2, Duration::from_secs(4))
        .await;
    let commits: Vec<&str> = live.iter().map(commit).collect();
    assert_eq!(commits[1], merge, "{}", reactor.output());
    assert_eq!(live.len(), 2, "{}", reactor.output());

    // The next submit's events are lost; Gerrit says so on the stream.
    s.gerrit.server_option("new_rev", true);
    s.gerrit.server_option("drop_events", true);
    s.gerrit.upload(&project, "9.0", (3, 1), &file("c"));
    let lost = s.gerrit.submit(3, 1).unwrap();
    s.gerrit.server_option("drop_events", false);
    s.gerrit.emit(&serde_json::json!({"type": "dropped-output", "eventCreatedOn": perestroika_tests::gerrit::now()}));
    let caught = s
        .release_jobs(&broker, |got| !got.is_empty(), Duration::from_secs(4))
        .await;
    assert_eq!(caught.len(), 1, "{}", reactor.output());
    assert_eq!(commit(&caught[0]), lost);
    assert_eq!(caught[0].trigger.kind, TriggerKind::CatchUp);
    assert_eq!(caught[0].trigger.change, Some(3));
    assert!(reactor.output().contains("dropped-output"));
}

/// A session lost across three submits that each make a merge commit: the catch-up builds
/// the final branch head once, and no patch set's own commit (never the branch's state)
/// reaches the release.
#[tokio::test]
async fn a_session_lost_across_three_merges_builds_the_final_head_only() {
    let mut s = setup();
    let project = s.project("lost");
    s.gerrit.push(&project, "9.0", &package("lost"), "base");
    s.gerrit.set_submit_type(&project, "merge always");
    let reactor = s.reactor();
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let file = |n: &str| vec![(format!("content/{n}"), format!("{n}\n"))];
    s.gerrit.upload(&project, "9.0", (1, 1), &file("first"));
    let first = s.gerrit.submit(1, 1).unwrap();
    let live = s
        .release_jobs(&broker, |got| !got.is_empty(), Duration::from_secs(4))
        .await;
    assert_eq!(live.len(), 1, "{}", reactor.output());
    assert_eq!(commit(&live[0]), first);

    s.gerrit.stop();
    let uploads: Vec<_> = (2..=4)
        .map(|n| {
            s.gerrit
                .upload(&project, "9.0", (n, 1), &file(&format!("f{n}")))
        })
        .collect();
    let heads: Vec<String> = (2..=4).map(|n| s.gerrit.submit(n, 1).unwrap()).collect();
    s.gerrit.start_sshd();
    reactor.wait_for_log("listening to gerrit stream-events", 2);
    let caught = s
        .release_jobs(&broker, |got| !got.is_empty(), Duration::from_secs(5))
        .await;
    assert_eq!(caught.len(), 1, "{caught:?}\n{}", reactor.output());
    assert_eq!(commit(&caught[0]), heads[2]);
    assert_eq!(caught[0].trigger.kind, TriggerKind::CatchUp);
    assert_eq!(caught[0].trigger.change, Some(4));
    for upload in &uploads {
        assert_ne!(commit(&caught[0]), upload.revision);
    }
}
