//! Review builds end to end (stand-in, reactor, worker, publisher, mirror, real broker and
//! Docker): the outcome reported on the change with `gerrit review` exactly once, a failed
//! build's -1 with its reason even across a Gerrit outage, and changes of one topic building
//! against each other in a shared review repository.

use std::time::Duration;

use perestroika_tests::apt::AptRoot;
use perestroika_tests::debian::{dh_package, greet_code};
use perestroika_tests::whole::{change, push_greet, WholeFarm, SPLIT_BRANCH};
use serde_json::{json, Value};

const BUILD_TIME: Duration = Duration::from_secs(600);

fn reviews_of(f: &WholeFarm, target: &str) -> Vec<Value> {
    f.gerrit
        .reviews()
        .into_iter()
        .filter(|r| r["target"] == target)
        .collect()
}

/// The publisher dies right after queueing a review build's feedback and before
/// acknowledging its publish job; the job is redelivered and done again, its feedback is
/// sent again — and Gerrit still receives exactly one vote and message, with the version,
/// a build log link that the mirror serves, and the apt line of the review repository.
#[test]
fn a_review_build_reports_once_although_its_publish_was_redone() {
    let mut f = WholeFarm::start();
    f.restart_publisher(&[("PERESTROIKA_CRASH_AT", "feedback-sent")]);
    let (code, _, _) = push_greet(&f, "Hello, released");
    let rev = f.gerrit.push_change(
        &code,
        SPLIT_BRANCH,
        (501, 1),
        &greet_code("Hello, under review"),
        "a change under review",
    );
    f.event(
        &change(&code, SPLIT_BRANCH, 501, 1, &rev),
        "patchset-created",
    );
    f.wait_for(
        "the publisher crashing after the feedback",
        BUILD_TIME,
        || {
            f.publisher
                .output()
                .contains("crash point feedback-sent reached")
        },
    );
    f.restart_publisher(&[]);
    let review = f.tree("review/501");
    f.wait_mirrored(&review, 1, BUILD_TIME);
    f.wait_for("the repeated feedback", Duration::from_secs(60), || {
        f.reactor
            .output()
            .contains("feedback already sent; dropping the repeat")
    });

    let reviews = reviews_of(&f, "501,1");
    assert_eq!(reviews.len(), 1, "exactly one review: {reviews:?}");
    let r = &reviews[0];
    assert_eq!(r["labels"]["Verified"], "+1", "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains("greet 1.0+git2.1-1+p1.1"), "{message}");
    assert!(message.contains("succeeded"), "{message}");
    let apt_line = format!("{}/{review}/deb bookworm main", f.http);
    assert!(message.contains(&apt_line), "{message}");
    // The lines the message gives work with apt as printed: the review repository's own
    // KEY.asc downloaded from the mirror, the sources line naming the downloaded file.
    let commands: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| {
            ["install -d ", "curl ", "echo 'deb "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(commands.len(), 3, "{message}");
    assert!(
        commands[1].ends_with(&format!(" {}/{review}/KEY.asc", f.http)),
        "{message}"
    );
    let apt = AptRoot::empty();
    apt.run_as_client(&commands);
    apt.update();
    assert_eq!(apt.versions("greet"), ["1.0+git2.1-1+p1.1"]);
    let (log_url, log) = linked_log(message);
    assert!(log_url.starts_with(&f.http), "{log_url}");
    assert!(log.contains("dpkg-buildpackage"));
}

/// The build log link of a feedback message, and the log fetched from it.
fn linked_log(message: &str) -> (String, String) {
    let url = message
        .lines()
        .find_map(|l| l.strip_prefix("Build log: "))
        .unwrap_or_else(|| panic!("no build log link: {message}"));
    let log = std::process::Command::new("curl")
        .args(["-fsS", url])
        .output()
        .unwrap();
    assert!(
        log.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&log.stderr)
    );
    (
        url.to_owned(),
        String::from_utf8_lossy(&log.stdout).into_owned(),
    )
}

/// A review build that cannot get its build dependencies votes -1 and names the step and
/// the reason, with a link to its log, which the mirror serves; Gerrit is down when the result
/// is ready, and the feedback arrives once it is back. A recheck asks for the same build again
/// and gets a vote of its own.
#[test]
fn a_failed_build_votes_minus_one_with_the_reason_after_an_outage_and_again_on_recheck() {
    let mut f = WholeFarm::start();
    let project = format!("{}/packages/deb/bookworm/broken", f.farm.customer);
    f.gerrit.push(
        &project,
        "9.0",
        &dh_package("broken", "", "true"),
        "a package that builds",
    );
    let rev = f.gerrit.push_change(
        &project,
        "9.0",
        (502, 1),
        &dh_package("broken", "no-such-package-anywhere", "true"),
        "needs a package nobody has",
    );
    let spec = change(&project, "9.0", 502, 1, &rev);
    f.event(&spec, "patchset-created");
    f.wait_for("the build job", Duration::from_secs(60), || {
        !f.queued_jobs().is_empty()
    });
    f.gerrit.stop();
    f.wait_for("the reactor waiting for Gerrit", BUILD_TIME, || {
        f.reactor
            .output()
            .contains("cannot reach Gerrit; the feedback waits")
    });
    assert!(reviews_of(&f, "502,1").is_empty());
    f.gerrit.start_sshd();
    f.wait_for(
        "the review after the outage",
        Duration::from_secs(120),
        || !reviews_of(&f, "502,1").is_empty(),
    );
    let reviews = reviews_of(&f, "502,1");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["labels"]["Verified"], "-1");
    let message = reviews[0]["message"].as_str().unwrap();
    assert!(message.contains("FAILED at step build-deps"), "{message}");
    assert!(message.contains("no-such-package-anywhere"), "{message}");
    // The log is published in the change's (new) review repository, and the mirror serves it.
    let review = f.tree("review/502");
    f.wait_mirrored(&review, 1, BUILD_TIME);
    let (log_url, log) = linked_log(message);
    assert_eq!(
        log_url,
        format!("{}/{review}/logs/{}.log", f.http, f.queued_jobs()[0])
    );
    assert!(log.contains("no-such-package-anywhere"), "{log}");

    // The same job asked for again: built again, and reported again (once). The comment
    // goes to the stream the reactor opened after the outage.
    f.gerrit.wait_for_streams(2);
    f.gerrit.emit(&spec.event(
        "comment-added",
        json!({"comment": "Patch Set 1:\n\nrecheck", "author": {"name": "Dev"}}),
    ));
    f.wait_for("the recheck's review", BUILD_TIME, || {
        reviews_of(&f, "502,1").len() >= 2
    });
    let reviews = reviews_of(&f, "502,1");
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert_eq!(reviews[1]["labels"]["Verified"], "-1");
    let again = reviews[1]["message"].as_str().unwrap();
    assert!(again.contains("FAILED at step build-deps"), "{again}");
    assert!(again.contains(&format!("Build log: {log_url}")), "{again}");
    let jobs = f.queued_jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0], jobs[1], "one job, asked for twice");
}

/// Two changes in one topic: greet's packaging change and a new package build-depending on
/// greet. Both publish into the topic's repository, and the second builds with the first's
/// greet from there (the release has none).
#[test]
fn two_changes_in_one_topic_build_against_each_other() {
    let f = WholeFarm::start();
    let (code, _, _) = push_greet(&f, "Hello, released");
    let topic = "together";
    let tree = f.tree(&format!("review/{topic}"));

    let rev = f.gerrit.push_change(
        &code,
        SPLIT_BRANCH,
        (601, 1),
        &greet_code("Hello, from the topic"),
        "greet, part one",
    );
    let mut first = change(&code, SPLIT_BRANCH, 601, 1, &rev);
    first.topic = Some(topic.into());
    f.event(&first, "patchset-created");
    let generation = f.wait_mirrored(&tree, 1, BUILD_TIME);
    assert_eq!(
        f.mirrored_versions(&format!("review/{topic}"), "greet"),
        ["1.0+git2.1-1+p1.1"]
    );

    let user = format!("{}/packages/deb/bookworm/greet-user", f.farm.customer);
    f.gerrit
        .push(&user, "9.0", &dh_package("greet-user", "", "true"), "base");
    let rev = f.gerrit.push_change(
        &user,
        "9.0",
        (602, 1),
        &dh_package("greet-user", "greet", "greet"),
        "greet-user, part two",
    );
    let mut second = change(&user, "9.0", 602, 1, &rev);
    second.topic = Some(topic.into());
    f.event(&second, "patchset-created");
    f.wait_mirrored(&tree, generation + 1, BUILD_TIME);
    assert_eq!(
        f.mirrored_versions(&format!("review/{topic}"), "greet-user")
            .len(),
        1
    );
    // Its build read the topic's repository (where greet came from); its log is published
    // (staging is emptied once the job is published).
    let jobs = f.queued_jobs();
    let log_path = f
        .mirror
        .join(&tree)
        .join("logs")
        .join(format!("{}.log", jobs[1]));
    let log = fs_err::read_to_string(&log_path).unwrap();
    assert!(
        log.contains(&format!("/srv/releases/review/{topic}/deb bookworm")),
        "{log}"
    );
    assert!(!f.farm.release_tree().exists(), "the release got nothing");
}
