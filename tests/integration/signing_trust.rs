//! Whoever serves the farm's trees (a mirror, the network path) cannot pass a review tree off
//! as the release, nor freeze clients on an old state of it: real publisher, real gpg, real
//! apt judging what it reads.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use perestroika_tests::apt::{make_deb, signed_farm, AptRoot, OperatorKey};
use perestroika_tests::{run, sh, shared_amqp_url, Daemon, Farm, NO_BROKER};

/// A farm whose review and topic trees are signed with a key of their own, with `publish`
/// settings appended.
fn farm_with_review_key(
    amqp: &str,
    release: &OperatorKey,
    review: &OperatorKey,
    publish: &str,
) -> Farm {
    let farm = signed_farm(
        amqp,
        &[release],
        &format!(
            "review_fingerprint = \"{}\"\n\n[publish]\n{publish}\n",
            review.fingerprint
        ),
        perestroika_tests::apt::BOOKWORM_RELEASE,
    );
    farm.import_key(review);
    farm
}

fn apt_on(key: &Path, tree: &Path) -> AptRoot {
    AptRoot::new(key, &format!("file:{}/deb bookworm main", tree.display()))
}

fn release_file(tree: &Path) -> String {
    fs_err::read_to_string(tree.join("deb/dists/bookworm/InRelease")).unwrap()
}

fn valid_until(release: &str) -> chrono::DateTime<chrono::Utc> {
    let text = release
        .lines()
        .find_map(|l| l.strip_prefix("Valid-Until: "))
        .unwrap_or_else(|| panic!("no Valid-Until:\n{release}"));
    chrono::NaiveDateTime::parse_from_str(text.trim_end_matches(" UTC"), "%a, %d %b %Y %H:%M:%S")
        .unwrap()
        .and_utc()
}

/// Item 8, first half: a review tree (anyone's unreviewed upload) served where the release
/// should be is refused by a client that trusts the release's key; the review tree's own
/// clients read it with the review key.
#[test]
fn a_review_tree_cannot_pass_for_the_release() {
    let (release_key, review_key) = (OperatorKey::new(), OperatorKey::new());
    let farm = farm_with_review_key(NO_BROKER, &release_key, &review_key, "");
    let dir = farm.dir.path();
    farm.publish(
        "bookworm",
        &[make_deb(dir, "greet", "1.0", false, "release")],
    );
    let unreviewed = make_deb(dir, "greet", "6.6.6", false, "unreviewed");
    farm.publish_review("bookworm", 77, &[&unreviewed]);
    let release_tree = farm.release_tree();
    let review_tree = release_tree.parent().unwrap().join("review/77");

    let trusts_release = apt_on(&release_key.public_file(), &release_tree);
    trusts_release.update();
    assert_eq!(trusts_release.versions("greet"), ["1.0"]);

    // The review tree in the release's place: same suite, but not the release's key.
    let fooled = apt_on(&release_key.public_file(), &review_tree);
    let out = fooled.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "apt took the review tree:\n{said}");
    assert!(
        said.contains("NO_PUBKEY") || said.contains("not signed"),
        "{said}"
    );
    assert!(fooled.versions("greet").is_empty());

    let reviewer = apt_on(&review_key.public_file(), &review_tree);
    reviewer.update();
    assert_eq!(reviewer.versions("greet"), ["6.6.6"]);
    let review_release = release_file(&review_tree);
    assert!(review_release.contains("Label: "), "{review_release}");
    assert!(
        review_release
            .lines()
            .any(|l| l.starts_with("Label: ") && l.ends_with(" review")),
        "{review_release}"
    );
    let key = fs_err::read_to_string(review_tree.join("KEY.asc")).unwrap();
    let listed = sh(Command::new("gpg")
        .args(["--show-keys", "--with-colons"])
        .arg(review_tree.join("KEY.asc")));
    assert!(listed.contains(&review_key.fingerprint), "{key}");
    assert!(!listed.contains(&release_key.fingerprint), "{listed}");
}

/// Item 8, second half: a release's indexes carry `Valid-Until`; the running publisher signs
/// them again before it passes, on its own; a client served the old state after it passed (a
/// mirror frozen, a replay) refuses it, while the live tree stays readable.
#[test]
fn a_frozen_release_expires_and_the_publisher_signs_it_again_in_time() {
    let amqp = shared_amqp_url();
    let (release_key, review_key) = (OperatorKey::new(), OperatorKey::new());
    let farm = farm_with_review_key(&amqp, &release_key, &review_key, "valid_for_secs = 24");
    let dir = farm.dir.path();
    farm.publish("bookworm", &[make_deb(dir, "greet", "1.0", false, "first")]);
    let tree = farm.release_tree();
    let first = release_file(&tree);
    let first_until = valid_until(&first);
    let left = first_until - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(15) && left <= chrono::Duration::seconds(24),
        "{left}"
    );

    // What an attacker keeps to replay later: the whole state as clients saw it.
    let frozen = dir.join("frozen");
    fs_err::create_dir_all(&frozen).unwrap();
    sh(Command::new("cp")
        .arg("-rL")
        .arg(fs_err::canonicalize(&tree).unwrap().join("deb"))
        .arg(&frozen));

    let log = dir.join("publisher.log");
    let _publisher = Daemon::start(
        "perestroika-publisher",
        &["--config", farm.path.to_str().unwrap(), "run"],
        &log,
    );
    // Signed again once less than half of the validity is left, with nobody publishing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refreshed = loop {
        let now = release_file(&tree);
        if valid_until(&now) > first_until {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "not signed again:\n{}",
            fs_err::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(fs_err::read_to_string(&log)
        .unwrap()
        .contains("signatures refreshed before their Valid-Until"),);
    // The same packages, dated anew.
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("Date:") && !l.starts_with("Valid-Until:"))
            .take_while(|l| !l.starts_with("-----BEGIN PGP SIGNATURE"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&refreshed), strip(&first));

    // Past the first Valid-Until: the frozen copy is refused, the live tree is read.
    let wait = first_until - chrono::Utc::now() + chrono::Duration::seconds(2);
    if let Ok(wait) = wait.to_std() {
        std::thread::sleep(wait);
    }
    let replayed = apt_on(&release_key.public_file(), &frozen);
    let out = replayed.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "apt took the expired state:\n{said}");
    assert!(said.contains("expired"), "{said}");
    let live = apt_on(&release_key.public_file(), &tree);
    live.update();
    assert_eq!(live.versions("greet"), ["1.0"]);
}

/// A customer with a review key of its own: its review trees are signed with that key, not
/// the farm's review key, and read with it.
#[test]
fn a_customer_review_key_signs_that_customers_review_trees() {
    let (release_key, farm_review, own_review) =
        (OperatorKey::new(), OperatorKey::new(), OperatorKey::new());
    let farm = farm_with_review_key(NO_BROKER, &release_key, &farm_review, "");
    // The configuration ends in the customer's table.
    let text = fs_err::read_to_string(&farm.path).unwrap();
    fs_err::write(
        &farm.path,
        format!(
            "{text}review_fingerprint = \"{}\"\n",
            own_review.fingerprint
        ),
    )
    .unwrap();
    let cfg = farm.path.to_str().unwrap();
    farm.import_key(&own_review);
    let out = run("perestroika-publisher", &["--config", cfg, "check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("review key {}", own_review.fingerprint)),
        "{said}"
    );

    let dir = farm.dir.path();
    let deb = make_deb(dir, "greet", "2.0", false, "review");
    farm.publish_review("bookworm", 5, &[&deb]);
    let review_tree = farm.release_tree().parent().unwrap().join("review/5");
    let listed = sh(Command::new("gpg")
        .args(["--show-keys", "--with-colons"])
        .arg(review_tree.join("KEY.asc")));
    assert!(listed.contains(&own_review.fingerprint), "{listed}");
    assert!(!listed.contains(&farm_review.fingerprint), "{listed}");
    let reviewer = apt_on(&own_review.public_file(), &review_tree);
    reviewer.update();
    assert_eq!(reviewer.versions("greet"), ["2.0"]);
    let fooled = apt_on(&farm_review.public_file(), &review_tree);
    assert!(!fooled
        .apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"])
        .status
        .success());
}
