//! The release lifecycle: a release in maintenance publishes into `proposed`, and
//! `perestroika-queue promote` moves the same files on to `updates` through the publisher
//! daemon — real broker, gpg, reprepro, apt.

use std::path::Path;
use std::process::Output;

use perestroika_formats::release_index::{read_index, stanzas};
use perestroika_tests::apt::{
    dnf_installs, make_deb_with, make_dsc, make_rpm_with, signed_farm, AptRoot, OperatorKey,
};
use perestroika_tests::{free_port, run, shared_amqp_url, wait_for_listener, Daemon, Farm};

const MAINTENANCE: &str = r#"{ name = "9.0", deb = ["bookworm"], state = "maintenance" }"#;
const DEVELOPMENT: &str = r#"{ name = "9.0", deb = ["bookworm"] }"#;

struct Lifecycle {
    farm: Farm,
    _key: OperatorKey,
    _publisher: Daemon,
    /// `perestroika-mirror serve` of the public root, at the configured mirror's `http_url`.
    _serve: Daemon,
    work: tempfile::TempDir,
}

impl Lifecycle {
    /// A signed farm whose release (bookworm) is in maintenance, its queues declared, its
    /// publisher running.
    fn start() -> Self {
        Self::start_with(MAINTENANCE)
    }

    /// [`Lifecycle::start`] with `release` as the customer's release 9.0.
    fn start_with(release: &str) -> Self {
        let key = OperatorKey::new();
        let work = tempfile::tempdir().unwrap();
        let http = format!("127.0.0.1:{}", free_port());
        let mirror = format!(
            "[[mirrors]]\nname = \"web\"\ntarget = \"{}/mirror/\"\nhttp_url = \"http://{http}\"\n",
            work.path().display()
        );
        let farm = signed_farm(&shared_amqp_url(), &[&key], &mirror, release);
        let cfg = farm.path.to_str().unwrap();
        let public = &farm.config.paths.public_root;
        fs_err::create_dir_all(public).unwrap();
        let serve = Daemon::start(
            "perestroika-mirror",
            &[
                "--config",
                cfg,
                "serve",
                "--root",
                public.to_str().unwrap(),
                "--http",
                &http,
            ],
            &farm.dir.path().join("serve.log"),
        );
        wait_for_listener(&http, "perestroika-mirror serve", || serve.output());
        assert!(run("perestroika-queue", &["--config", cfg, "bootstrap"])
            .status
            .success());
        let publisher = farm.daemon("perestroika-publisher", "publisher.log");
        Self {
            farm,
            _key: key,
            _publisher: publisher,
            _serve: serve,
            work,
        }
    }

    /// Publishes a binary (and optionally its source) the way a merge build would.
    fn merge(&self, name: &str, version: &str, depends: &str, with_source: bool) {
        let dir = self.work.path().join(format!("{name}-{version}"));
        fs_err::create_dir_all(&dir).unwrap();
        let mut fields = "Section: misc\n".to_owned();
        if !depends.is_empty() {
            fields.push_str(&format!("Depends: {depends}\n"));
        }
        let mut files = vec![make_deb_with(&dir, name, version, false, &fields, "m")];
        if with_source {
            files.push(make_dsc(&dir, name, version, "debhelper-compat (= 13)"));
        }
        self.farm.publish("bookworm", &files);
    }

    fn promote(&self, args: &[&str]) -> Output {
        let cfg = self.farm.path.to_str().unwrap();
        let mut all = vec!["--config", cfg, "promote", &self.farm.customer, "9.0"];
        all.extend_from_slice(args);
        run("perestroika-queue", &all)
    }

    /// The stanzas of `package` in a suite's `main/binary-amd64/Packages`.
    fn packages(
        &self,
        suite: &str,
        package: &str,
    ) -> Vec<perestroika_formats::release_index::Stanza> {
        let path = self
            .farm
            .release_tree()
            .join("deb/dists")
            .join(suite)
            .join("main/binary-amd64/Packages");
        let text = read_index(&path)
            .unwrap_or_else(|| panic!("{} is missing or unreadable", path.display()));
        stanzas(&text)
            .into_iter()
            .filter(|s| s.get("Package").map(String::as_str) == Some(package))
            .collect()
    }

    /// Announcements waiting on the release's mirror queue (no mirror runs here).
    fn announcements(&self) -> u64 {
        let cfg = self.farm.path.to_str().unwrap();
        let out = run("perestroika-queue", &["--config", cfg, "--json", "queues"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let name = format!("mirror.{}.9.0", self.farm.customer);
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == name.as_str())
            .and_then(|q| q["stats"]["messages"].as_u64())
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    }

    /// The farm's dead letters of this release (`perestroika-queue dead --json`).
    fn dead_letters(&self) -> Vec<serde_json::Value> {
        let cfg = self.farm.path.to_str().unwrap();
        let out = run("perestroika-queue", &["--config", cfg, "--json", "dead"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn generation(&self) -> String {
        fs_err::read_link(self.farm.release_tree())
            .unwrap()
            .display()
            .to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sha256(path: &Path) -> String {
    perestroika_protocol::messages::Artifact::of_file(path)
        .unwrap()
        .sha256
}

/// In maintenance a merge lands in `proposed` only; promotion copies the very same files
/// (binary and source) to `updates`, which is signed, snapshotted and announced, and
/// `apt-get install -t bookworm-updates` fetches the file with the checksum it had in
/// `proposed`.
#[test]
fn a_promoted_package_installs_from_updates_with_the_bytes_it_had_in_proposed() {
    let l = Lifecycle::start();
    l.merge("fixed", "1.1", "", true);
    assert_eq!(l.packages("bookworm-proposed", "fixed").len(), 1);
    assert!(l.packages("bookworm", "fixed").is_empty());
    assert!(l.packages("bookworm-updates", "fixed").is_empty());
    let before = l.generation();
    let announced = l.announcements();

    let out = l.promote(&["fixed", "--to", "updates"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("promoted fixed from proposed to updates"),
        "{said}"
    );
    assert!(said.contains("fixed_1.1_all.deb"), "{said}");
    assert!(said.contains("fixed_1.1.dsc"), "{said}");
    assert_ne!(l.generation(), before, "a new generation went live");
    assert_eq!(l.announcements(), announced + 1, "announced to the mirrors");

    let proposed = &l.packages("bookworm-proposed", "fixed")[0];
    let updates = &l.packages("bookworm-updates", "fixed")[0];
    assert_eq!(proposed.get("SHA256"), updates.get("SHA256"));
    assert_eq!(proposed.get("Filename"), updates.get("Filename"));
    let sources = read_index(
        &l.farm
            .release_tree()
            .join("deb/dists/bookworm-updates/main/source/Sources"),
    )
    .unwrap();
    assert!(sources.contains("Package: fixed"), "{sources}");
    // The snapshot of the promotion records the suites it signed.
    let cfg = l.farm.path.to_str().unwrap();
    let list = run(
        "perestroika-publisher",
        &["--config", cfg, "snapshot", "list", &l.farm.customer, "9.0"],
    );
    assert!(list.status.success(), "{}", text(&list));

    // apt as a client of bookworm-updates, set up with exactly the commands the CLI printed:
    // the release's KEY.asc downloaded from the mirror's http server, and a sources line
    // naming the downloaded file.
    let commands: Vec<&str> = said
        .lines()
        .skip_while(|l| !l.starts_with("clients of bookworm-updates use it with"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(commands.len(), 4, "{said}");
    assert!(
        commands[2].contains("deb [signed-by=/etc/apt/keyrings/"),
        "{said}"
    );
    let cfg = l.farm.path.to_str().unwrap();
    let client = run(
        "perestroika-queue",
        &[
            "--config",
            cfg,
            "client",
            &l.farm.customer,
            "9.0",
            "--suite",
            "updates",
        ],
    );
    assert!(client.status.success(), "{}", text(&client));
    assert_eq!(
        String::from_utf8_lossy(&client.stdout),
        format!("# bookworm-updates\n{}\n", commands.join("\n")),
        "`client` prints what `promote` printed"
    );
    let apt = AptRoot::empty();
    apt.run_as_client(&commands[..3]);
    apt.update();
    let got = apt.apt_get(&[
        "install",
        "-y",
        "-q",
        "--download-only",
        "-t",
        "bookworm-updates",
        "fixed",
    ]);
    assert!(got.status.success(), "{}", text(&got));
    let fetched = apt
        .dir
        .path()
        .join("var/cache/apt/archives/fixed_1.1_all.deb");
    let proposed_sum = proposed.get("SHA256").unwrap();
    assert_eq!(&sha256(&fetched), proposed_sum);

    // Promoting again changes nothing.
    let live = l.generation();
    let again = l.promote(&["fixed=1.1", "--to", "updates"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(l.generation(), live);

    // Not in the suite asked for, but in others: the refusal names them and the command.
    let out = l.promote(&["fixed", "--from", "holdback", "--to", "security"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let c = &l.farm.customer;
    assert!(
        text(&out).contains(&format!("fixed is not published in the holdback suite of {c}/9.0; it is published in bookworm-proposed (1.1), bookworm-updates (1.1). To promote it from there: perestroika-queue promote {c} 9.0 fixed --from proposed --to security")),
        "{}",
        text(&out)
    );
    assert_eq!(l.dead_letters(), Vec::<serde_json::Value>::new());
}

/// A package whose dependency is still only in `proposed` is not promoted alone: the
/// refusal names what is missing, nothing changes, and it goes through once its dependency
/// is promoted (or when forced).
#[test]
fn a_promotion_with_an_unsatisfiable_dependency_is_refused() {
    let l = Lifecycle::start();
    l.merge("libfixed", "2.0", "base-files", false);
    l.merge("fixed-user", "2.0", "libfixed (>= 2.0), base-files", false);
    let before = l.generation();

    let out = l.promote(&["fixed-user", "--to", "updates"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("libfixed (>= 2.0)"), "{said}");
    assert!(
        !said.contains("base-files"),
        "base packages are not judged: {said}"
    );
    assert!(l.packages("bookworm-updates", "fixed-user").is_empty());
    assert_eq!(l.generation(), before);

    let out = l.promote(&["libfixed", "--to", "updates"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = l.promote(&["fixed-user", "--to", "updates"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(l.packages("bookworm-updates", "fixed-user").len(), 1);

    // Forced past a missing dependency, into security.
    l.merge("fixed-user", "3.0", "libfixed (>= 3.0)", false);
    let out = l.promote(&["fixed-user", "--to", "security"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("libfixed (>= 3.0)"), "{}", text(&out));
    let out = l.promote(&["fixed-user=3.0", "--to", "security", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let versions: Vec<String> = l
        .packages("bookworm-security", "fixed-user")
        .iter()
        .filter_map(|s| s.get("Version").cloned())
        .collect();
    assert_eq!(versions, ["3.0"]);

    // A package that is not in the suite is an error that says so.
    let out = l.promote(&["nosuch", "--to", "updates"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("nosuch is not published in the proposed suite"),
        "{}",
        text(&out)
    );
    // Every refusal went to the asking CLI: none of them is a dead letter.
    assert_eq!(l.dead_letters(), Vec::<serde_json::Value>::new());
}

/// Regression: the demo's first promotion (a release in development) was refused with only
/// "not published in the proposed suite", and the refusal became a dead letter summarised
/// `greet for `. The refusal is the asker's answer: it says where the package is and what to
/// do, the CLI exits 1, and the dead-letter queue stays empty. Only a refusal nobody waits
/// for (`--no-wait`) is dead-lettered, summarised as the promotion it is.
#[test]
fn a_refused_promotion_answers_the_asker_with_where_the_package_is_and_is_no_dead_letter() {
    let l = Lifecycle::start_with(DEVELOPMENT);
    l.merge("fixed", "1.0", "", true);
    assert_eq!(l.packages("bookworm", "fixed").len(), 1);
    let before = l.generation();

    let out = l.promote(&["fixed", "--to", "updates"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    let c = &l.farm.customer;
    assert!(
        said.contains(&format!(
            "promotion refused: fixed is not published in the proposed suite of {c}/9.0; it is published in bookworm (1.0, the release suite)."
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("{c} 9.0 is in development")),
        "{said}"
    );
    assert!(said.contains("state = \"maintenance\""), "{said}");
    assert!(
        said.contains(&format!(
            "`perestroika-queue promote {c} 9.0 fixed --to updates`"
        )),
        "{said}"
    );
    assert_eq!(l.generation(), before, "nothing changed");
    assert_eq!(l.dead_letters(), Vec::<serde_json::Value>::new());
    let cfg = l.farm.path.to_str().unwrap();
    let listed = run("perestroika-queue", &["--config", cfg, "dead"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("no dead-lettered jobs"),
        "{}",
        text(&listed)
    );

    // The publisher is still serving: nobody waits for this one, so its refusal is kept as a
    // dead letter, with the promotion's own summary.
    let out = l.promote(&["nosuch", "--to", "updates", "--no-wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let letters = loop {
        let letters = l.dead_letters();
        if !letters.is_empty() || std::time::Instant::now() > deadline {
            break letters;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        letters[0]["summary"],
        "promote nosuch from proposed to updates"
    );
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("nosuch is not published in the proposed suite"),
        "{reason}"
    );
    assert!(reason.contains("nobody waited for the answer"), "{reason}");
}

/// The rpm side: a source rpm and its binary move from `el9-proposed` to `el9-updates` as the
/// same files, dnf installs from `el9-updates` with signatures checked, and a binary whose
/// `Requires` only `proposed` satisfies is refused until its dependency is promoted.
#[test]
fn rpms_are_promoted_between_sibling_repositories() {
    let l = Lifecycle::start_with(r#"{ name = "9.0", rpm = ["el9"], state = "maintenance" }"#);
    let publish = |name: &str, preamble: &str| {
        let (binary, source) = make_rpm_with(l.work.path(), name, "2.0", preamble, "m");
        l.farm.publish("el9", &[binary, source]);
    };
    publish("librpmfix", "");
    publish("rpmfix-user", "Requires: librpmfix >= 2.0\n");
    let tree = l.farm.release_tree();
    let proposed = tree.join("rpm/el9-proposed/x86_64/Packages/librpmfix-2.0-1.noarch.rpm");
    assert!(proposed.is_file());
    assert!(!tree.join("rpm/el9/x86_64/repodata/repomd.xml").exists());

    let out = l.promote(&["rpmfix-user", "--to", "updates"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("librpmfix (>= 2.0)"), "{}", text(&out));

    let out = l.promote(&["librpmfix", "--to", "updates"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("librpmfix-2.0-1.src.rpm"),
        "{}",
        text(&out)
    );
    let updates = tree.join("rpm/el9-updates/x86_64/Packages/librpmfix-2.0-1.noarch.rpm");
    assert_eq!(sha256(&updates), sha256(&proposed));
    assert!(tree
        .join("rpm/el9-updates/source/Packages/librpmfix-2.0-1.src.rpm")
        .is_file());
    dnf_installs(
        &format!("file://{}", tree.display()),
        "el9-updates",
        "librpmfix",
    );

    let out = l.promote(&["rpmfix-user", "--to", "updates"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tree
        .join("rpm/el9-updates/x86_64/Packages/rpmfix-user-2.0-1.noarch.rpm")
        .is_file());
}
