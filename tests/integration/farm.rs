//! The whole farm end to end on one host: Gerrit stand-in (real sshd, real git), reactor,
//! worker (real Docker), publisher (real gpg, reprepro), mirror (rsync, http), real RabbitMQ,
//! and apt installing from the mirror with signature checks on.

use std::time::Duration;

use perestroika_tests::debian::{debian_source, dh_package, greet_code};
use perestroika_tests::whole::{change, push_greet, unpacked_source, WholeFarm, SPLIT_BRANCH};

const BUILD_TIME: Duration = Duration::from_secs(600);

/// A merge of bookworm's own `hello` (unpacked from `apt-get source` into the packaging
/// repository, patches unapplied) is built, published, signed, mirrored, and installs with apt
/// from the mirror's http server; the stages' times are printed.
#[test]
fn a_merge_of_hello_is_installable_from_the_mirror() {
    let f = WholeFarm::start();
    let work = tempfile::tempdir().unwrap();
    let tree = unpacked_source(&debian_source("hello"), work.path());
    let project = format!("{}/packages/deb/bookworm/hello", f.farm.customer);
    let head = f
        .gerrit
        .push_dir(&project, "9.0", &tree, "hello 2.10-3 from bookworm");
    let merged = change(&project, "9.0", 101, 1, &head);
    let emitted = f.event(&merged, "change-merged");

    let release = f.tree("9.0");
    let generation = f.wait_mirrored(&release, 1, BUILD_TIME);
    assert_eq!(f.mirrored_versions("9.0", "hello"), ["2.10+git1-3+p1.0"]);
    let said = f.apt_install_from_mirror(&["hello"], "hello; dpkg-query -W hello");
    assert!(said.contains("Hello, world!"), "{said}");
    assert!(said.contains("2.10+git1-3+p1.0"), "{said}");

    let jobs = f.queued_jobs();
    assert_eq!(jobs.len(), 1, "one merge, one build job: {jobs:?}");
    let trace = f.trace(emitted, &jobs[0], &release);
    eprintln!("hello, merge to installable from the mirror (generation {generation}):\n{trace}");

    // A second merge, with the caches warm: a higher version, both versions on the mirror.
    let readme = tree.join("README");
    let mut text = fs_err::read_to_string(&readme).unwrap();
    text.push_str("\nBuilt again by the farm.\n");
    fs_err::write(&readme, text).unwrap();
    let head = f
        .gerrit
        .push_dir(&project, "9.0", &tree, "hello: a second merge");
    let emitted = f.event(&change(&project, "9.0", 102, 1, &head), "change-merged");
    let generation = f.wait_mirrored(&release, generation + 1, BUILD_TIME);
    let mut versions = f.mirrored_versions("9.0", "hello");
    versions.sort();
    assert_eq!(versions, ["2.10+git1-3+p1.0", "2.10+git2-3+p2.0"]);
    let jobs = f.queued_jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let trace = f.trace(emitted, &jobs[1], &release);
    eprintln!("hello, a second merge, caches warm (generation {generation}):\n{trace}");
}

/// Two packages, greet-user build-depending on greet: a merge in greet rebuilds greet only,
/// and every published version of greet is higher than the last.
#[test]
fn a_merge_rebuilds_only_the_package_whose_sources_changed() {
    let f = WholeFarm::start();
    let c = f.farm.customer.clone();
    let (code, packaging, pkg_head) = push_greet(&f, "Hello, first");
    f.event(
        &change(&packaging, SPLIT_BRANCH, 201, 1, &pkg_head),
        "change-merged",
    );
    let release = f.tree("9.0");
    let first = f.wait_mirrored(&release, 1, BUILD_TIME);

    // greet-user: its build runs greet, so greet must come from the release.
    let files = dh_package("greet-user", "greet", "greet");
    let user_project = format!("{c}/packages/deb/bookworm/greet-user");
    let user_head = f.gerrit.push(&user_project, "9.0", &files, "greet-user");
    f.event(
        &change(&user_project, "9.0", 202, 1, &user_head),
        "change-merged",
    );
    let second = f.wait_mirrored(&release, first + 1, BUILD_TIME);
    assert_eq!(f.mirrored_versions("9.0", "greet-user"), ["1.0+p1.0"]);

    // A new greet: greet is rebuilt, greet-user is not.
    let code_head = f
        .gerrit
        .push(&code, SPLIT_BRANCH, &greet_code("Hello, second"), "code 2");
    f.event(
        &change(&code, SPLIT_BRANCH, 203, 1, &code_head),
        "change-merged",
    );
    f.wait_mirrored(&release, second + 1, BUILD_TIME);
    let mut greet = f.mirrored_versions("9.0", "greet");
    greet.sort();
    assert_eq!(greet, ["1.0+git1-1+p1.0", "1.0+git2-1+p1.0"]);
    assert_eq!(f.mirrored_versions("9.0", "greet-user"), ["1.0+p1.0"]);
    let jobs = f.queued_jobs();
    assert_eq!(jobs.len(), 3, "three merges, three builds: {jobs:?}");
    let said = f.apt_install_from_mirror(&["greet", "greet-user"], "greet");
    assert_eq!(said.trim(), "Hello, second");
}

/// A patch set builds into its change's review repository only; a later patch set replaces
/// it there; abandoning the change takes the repository down, on the mirror too, and a build
/// asked for before that but finishing after it does not bring it back.
#[test]
fn review_repositories_follow_their_change() {
    let f = WholeFarm::start();
    let (code, _, _) = push_greet(&f, "Hello, released");
    let review = f.tree("review/301");

    let mut versions = Vec::new();
    for (ps, greeting) in [(1, "Hello, patch set 1"), (2, "Hello, patch set 2")] {
        let rev = f.gerrit.push_change(
            &code,
            SPLIT_BRANCH,
            (301, ps),
            &greet_code(greeting),
            "a change under review",
        );
        f.event(
            &change(&code, SPLIT_BRANCH, 301, ps, &rev),
            "patchset-created",
        );
        f.wait_mirrored(&review, u64::from(ps), BUILD_TIME);
        versions.push(f.mirrored_versions("review/301", "greet"));
    }
    // Patch set 2 replaced patch set 1 (same commit counts; the patch set is in the version).
    assert_eq!(versions[0], ["1.0+git2.1-1+p1.1"]);
    assert_eq!(versions[1], ["1.0+git2.2-1+p1.2"]);
    // Never mixed into the release: it has no tree yet.
    assert!(!f.mirror.join(f.tree("9.0")).exists());
    assert!(!f.farm.release_tree().exists());

    // Patch set 3 is asked for, and the change is abandoned while it builds: the review
    // repository goes, on the mirror too, and the late build is not published.
    let rev = f.gerrit.push_change(
        &code,
        SPLIT_BRANCH,
        (301, 3),
        &greet_code("Hello, too late"),
        "late",
    );
    f.event(
        &change(&code, SPLIT_BRANCH, 301, 3, &rev),
        "patchset-created",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while f.queued_jobs().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            f.reactor.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    f.event(
        &change(&code, SPLIT_BRANCH, 301, 3, &rev),
        "change-abandoned",
    );
    f.wait_mirrored(&review, 0, Duration::from_secs(60));
    assert!(
        !f.mirror.join(&review).exists(),
        "the mirror still has {review}"
    );
    let public = f.farm.config.paths.public_root.join(&review);
    let deadline = std::time::Instant::now() + BUILD_TIME;
    while !f.publisher.output().contains("was retired") {
        assert!(
            std::time::Instant::now() < deadline,
            "the late build never reached the publisher:\n{}\n{}",
            f.worker.output(),
            f.publisher.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!public.exists(), "a late build brought {review} back");
}

/// A release in maintenance: a merge publishes into `<distro>-proposed` only, never into the
/// release's own suite.
#[test]
fn a_release_in_maintenance_publishes_merges_into_proposed() {
    let f = WholeFarm::start_with(r#"{ name = "9.0", deb = ["bookworm"], state = "maintenance" }"#);
    let (_, packaging, head) = push_greet(&f, "Hello, proposed");
    f.event(
        &change(&packaging, SPLIT_BRANCH, 401, 1, &head),
        "change-merged",
    );
    f.wait_mirrored(&f.tree("9.0"), 1, BUILD_TIME);
    assert_eq!(
        f.mirrored_versions_in("9.0", "bookworm-proposed", "greet"),
        ["1.0+git1-1+p1.0"]
    );
    assert!(f.mirrored_versions("9.0", "greet").is_empty());
    assert!(f
        .mirrored_versions_in("9.0", "bookworm-updates", "greet")
        .is_empty());
}
