//! The mirror against real rsync daemons on loopback, judged by apt and dnf reading the
//! mirror's http server with signature checks on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{MirrorAnnouncement, SCHEMA_VERSION};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::{dnf_installs, make_deb, make_rpm, signed_farm, AptRoot, OperatorKey};
use perestroika_tests::rsyncd::RsyncHost;
use perestroika_tests::{
    assert_success, files_below, run, sh, shared_amqp_url, unique, wait_for_listener, Daemon, Farm,
};

const RELEASE: &str = r#"{ name = "9.0", deb = ["bookworm"], rpm = ["el9"] }"#;

struct Setup {
    farm: Farm,
    _key: OperatorKey,
    work: tempfile::TempDir,
}

fn mirrors_section(hosts: &[(&str, &RsyncHost)]) -> String {
    hosts
        .iter()
        .map(|(name, h)| format!("[[mirrors]]\nname = \"{name}\"\ntarget = \"{}\"\n", h.url()))
        .collect()
}

fn setup(hosts: &[(&str, &RsyncHost)]) -> Setup {
    let key = OperatorKey::new();
    let farm = signed_farm(
        &shared_amqp_url(),
        &[&key],
        &mirrors_section(hosts),
        RELEASE,
    );
    Setup {
        farm,
        _key: key,
        work: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn cfg(&self) -> &str {
        self.farm.path.to_str().unwrap()
    }

    fn tree(&self) -> String {
        format!("{}/9.0", self.farm.customer)
    }

    /// Publishes files into the release with the publisher's one-shot `include`.
    fn include(&self, distro: &str, files: &[PathBuf]) {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let out = self.farm.include(distro, &[], &files).output().unwrap();
        assert_success(&out);
    }

    fn deb(&self, name: &str, version: &str) -> PathBuf {
        make_deb(self.work.path(), name, version, false, version)
    }

    fn mirror(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--config", self.cfg()];
        all.extend_from_slice(args);
        run("perestroika-mirror", &all)
    }

    fn sync(&self) {
        let out = self.mirror(&["sync", &self.tree()]);
        assert!(
            out.status.success(),
            "sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn live_generation(&self) -> u64 {
        let link = self.farm.config.paths.public_root.join(self.tree());
        fs_err::read_link(link)
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn apt_for(s: &Setup, host: &RsyncHost, url: &str) -> AptRoot {
    AptRoot::new(
        &host.data.join(s.tree()).join("KEY.asc"),
        &format!("{url}/{}/deb bookworm main", s.tree()),
    )
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-"])
        .args(args)
        .output()
        .unwrap();
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(text.len(), |p| p + 4);
    (
        String::from_utf8_lossy(&text[..split]).into_owned(),
        text[split..].to_vec(),
    )
}

#[test]
fn a_synced_mirror_serves_apt_and_dnf_and_verifies() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.include("bookworm", &[s.deb("mirrored", "1.0")]);
    let (rpm, _) = make_rpm(s.work.path(), "mirroredrpm", "1.0", "a");
    s.include("el9", &[rpm]);
    s.sync();

    let (_server, url) = s.farm.serve_mirror(&host.data);
    let apt = apt_for(&s, &host, &url);
    apt.update();
    assert_eq!(apt.versions("mirrored"), ["1.0"]);
    let dl = apt.apt_get(&["install", "-y", "--download-only", "mirrored"]);
    assert_success(&dl);
    dnf_installs(&format!("{url}/{}", s.tree()), "el9", "mirroredrpm");

    // The http server: ranges, types, listings, and nothing outside its root.
    let key = format!("{url}/{}/KEY.asc", s.tree());
    let whole = fs_err::read(host.data.join(s.tree()).join("KEY.asc")).unwrap();
    let (head, body) = curl(&["-r", "5-14", &key]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 5-14/{}", whole.len())),
        "{head}"
    );
    assert_eq!(body, whole[5..15]);
    assert!(
        head.contains("content-type: application/pgp-signature"),
        "{head}"
    );
    let (head, body) = curl(&[&format!("{url}/{}/", s.farm.customer)]);
    assert!(head.contains("text/html"), "{head}");
    let listing = String::from_utf8_lossy(&body);
    assert!(
        listing.contains("9.0/") && listing.contains(".9.0.pool/"),
        "{listing}"
    );
    let (head, _) = curl(&["--path-as-is", &format!("{url}/../../etc/passwd")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // verify: the state and the target agree; a changed file on the target is found.
    let out = s.mirror(&["verify", &s.tree()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
    let pool_deb = files_below(&host.data.join(format!("{}/.9.0.pool", s.farm.customer)))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("the deb is in the mirror's pool");
    fs_err::write(&pool_deb, b"tampered").unwrap();
    let out = s.mirror(&["verify", &s.tree()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("target differs") && err.contains("mirrored_1.0_all.deb"),
        "{err}"
    );
}

#[test]
fn apt_never_fails_against_a_mirror_while_twenty_syncs_run() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.include("bookworm", &[s.deb("busy", "1.0")]);
    s.sync();
    let (_server, url) = s.farm.serve_mirror(&host.data);
    let apt = Arc::new(apt_for(&s, &host, &url));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (apt, stop) = (apt.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = apt.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"]);
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(
                    out.status.success() && !err.contains("W:"),
                    "apt-get update failed during a sync: {err}"
                );
                runs += 1;
            }
            runs
        })
    };
    for i in 2..=21 {
        s.include("bookworm", &[s.deb("busy", &format!("{i}.0"))]);
        s.sync();
    }
    stop.store(true, Ordering::Relaxed);
    let runs = client.join().expect("apt never failed");
    assert!(runs >= 5, "only {runs} apt-get update runs");
    apt.update();
    // Every version stays listed, the newest first.
    let versions = apt.versions("busy");
    assert_eq!(
        (versions.len(), versions[0].as_str()),
        (21, "21.0"),
        "{versions:?}"
    );
}

fn announce(broker_url: &Setup, generation: u64) -> MirrorAnnouncement {
    MirrorAnnouncement {
        schema_version: SCHEMA_VERSION,
        customer: broker_url.farm.customer.clone(),
        version: "9.0".into(),
        snapshot: generation.to_string(),
        generation,
        tree: broker_url.tree(),
        published_at: chrono::Utc::now(),
    }
}

fn wait_until(what: &str, daemon: &Daemon, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}:\n{}",
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn link_target(host: &RsyncHost, tree: &str) -> Option<String> {
    fs_err::read_link(host.data.join(tree))
        .ok()
        .map(|p| p.display().to_string())
}

/// One tree that keeps failing (announced at a generation its publisher never wrote) holds up
/// no other tree of the same target: a review tree announced after it is synced at once, while
/// the failing one is retried on its own.
#[tokio::test]
async fn a_failing_tree_does_not_hold_up_the_others_on_its_target() {
    let up = RsyncHost::start();
    let s = setup(&[("up", &up)]);
    s.farm.bootstrap();
    let daemon = s.farm.daemon("perestroika-mirror", "mirror.log");
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let queue = QueueName::new(Stage::Mirror, &s.farm.customer, "9.0").to_string();
    // The release tree (first in order) at a generation that does not exist: it fails.
    broker
        .publish(&queue, &announce(&s, 99), &unique("ann"))
        .await
        .unwrap();
    let status_of = || -> serde_json::Value {
        serde_json::from_slice(&s.mirror(&["--json", "status"]).stdout).unwrap()
    };
    let tree = s.tree();
    wait_until(
        "the release tree fails",
        &daemon,
        Duration::from_secs(30),
        || status_of()["up"][&tree]["last_error"].is_string(),
    );
    let review = format!("{}/review/77", s.farm.customer);
    s.farm
        .publish_review("bookworm", 77, &[s.deb("reviewed", "1.0")]);
    let mut ann = announce(&s, 1);
    ann.tree = review.clone();
    broker.publish(&queue, &ann, &unique("ann")).await.unwrap();
    wait_until(
        "the review tree is synced beside the failing one",
        &daemon,
        Duration::from_secs(20),
        || status_of()["up"][&review]["synced"] == 1,
    );
    assert_eq!(link_target(&up, &review).as_deref(), Some(".77.gen/1"));
    let status = status_of();
    assert!(status["up"][&tree]["last_error"].is_string(), "{status}");
    assert_ne!(status["up"][&tree]["synced"], 99, "{status}");
}

#[tokio::test]
async fn a_target_that_is_down_gets_the_newest_state_once_back() {
    let up = RsyncHost::start();
    let mut down = RsyncHost::start();
    down.stop();
    let s = setup(&[("up", &up), ("down", &down)]);
    assert!(s.mirror(&["check"]).status.success());
    s.farm.bootstrap();
    let daemon = s.farm.daemon("perestroika-mirror", "mirror.log");
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let queue = QueueName::new(Stage::Mirror, &s.farm.customer, "9.0").to_string();
    for v in 1..=3 {
        s.include("bookworm", &[s.deb("later", &format!("{v}.0"))]);
        let ann = announce(&s, s.live_generation());
        broker.publish(&queue, &ann, &unique("ann")).await.unwrap();
    }
    let tree = s.tree();
    let status_of = || -> serde_json::Value {
        serde_json::from_slice(&s.mirror(&["--json", "status"]).stdout).unwrap()
    };
    wait_until(
        "the up target has generation 3",
        &daemon,
        Duration::from_secs(60),
        || status_of()["up"][&tree]["synced"] == 3,
    );
    assert_eq!(link_target(&up, &tree).as_deref(), Some(".9.0.gen/3"));
    let status = status_of();
    assert_eq!(status["up"][&tree]["synced"], 3, "{status}");
    assert_eq!(status["down"][&tree]["wanted"], 3, "{status}");
    assert!(
        status["down"][&tree]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("rsync")),
        "{status}"
    );
    let text = String::from_utf8_lossy(&s.mirror(&["status"]).stdout).into_owned();
    assert!(text.contains("failing"), "{text}");

    down.start_again();
    wait_until(
        "the down target catches up",
        &daemon,
        Duration::from_secs(90),
        || link_target(&down, &tree).as_deref() == Some(".9.0.gen/3"),
    );
    let out = s.mirror(&["verify", &tree]);
    assert_success(&out);
    // The newest announcement superseded the older ones: the up target synced fewer than 3
    // times or each sync went straight to the newest generation.
    assert!(daemon.output().contains("in sync"));
}

#[test]
fn a_sync_killed_midway_leaves_the_target_valid() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.include("bookworm", &[s.deb("big", "1.0")]);
    s.sync();
    let (_server, url) = s.farm.serve_mirror(&host.data);
    let apt = apt_for(&s, &host, &url);
    apt.update();

    // A large package, so that the copy takes long enough to be cut.
    let dir = s.work.path().join("big-2");
    fs_err::create_dir_all(dir.join("DEBIAN")).unwrap();
    fs_err::create_dir_all(dir.join("usr/share/big")).unwrap();
    let status = Command::new("dd")
        .args(["if=/dev/urandom", "bs=1M", "count=300", "status=none"])
        .arg(format!("of={}", dir.join("usr/share/big/blob").display()))
        .status()
        .unwrap();
    assert!(status.success());
    fs_err::write(
        dir.join("DEBIAN/control"),
        "Package: big\nVersion: 2.0\nArchitecture: all\nSection: misc\nPriority: optional\nMaintainer: T <t@example.invalid>\nDescription: big\n big\n",
    )
    .unwrap();
    let deb = s.work.path().join("big_2.0_all.deb");
    sh(Command::new("dpkg-deb")
        .args(["-Znone", "-b"])
        .arg(&dir)
        .arg(&deb));
    s.include("bookworm", &[deb]);

    let mut sync = Command::new(perestroika_tests::bin("perestroika-mirror"))
        .args(["--config", s.cfg(), "sync", &s.tree()])
        .process_group(0)
        .spawn()
        .unwrap();
    // Cut it while rsync writes the big file (a temporary name in the pool).
    let pool = host.data.join(format!("{}/.9.0.pool", s.farm.customer));
    // A loaded host (the suite's other tests build in parallel) may take a while to get there.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !files_below(&pool).iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".big_2.0"))
    }) {
        if let Some(status) = sync.try_wait().unwrap() {
            panic!("the sync ended ({status}) before it could be cut on the big file");
        }
        assert!(
            Instant::now() < deadline,
            "rsync did not start on the big file within 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", sync.id())])
        .status();
    let _ = sync.wait();
    assert_eq!(link_target(&host, &s.tree()).as_deref(), Some(".9.0.gen/1"));
    apt.update();
    assert_eq!(apt.versions("big"), ["1.0"]);

    s.sync();
    apt.update();
    assert_eq!(apt.versions("big"), ["2.0", "1.0"]);
    let leftovers: Vec<_> = files_below(&pool)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = s.mirror(&["verify", &s.tree()]);
    assert_success(&out);
}

#[tokio::test]
async fn a_retired_review_tree_is_taken_off_the_mirror() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.farm.bootstrap();
    let deb = s.deb("reviewed", "1.0");
    s.farm.publish_review("bookworm", 77, &[&deb]);
    let tree = format!("{}/review/77", s.farm.customer);
    let out = s.mirror(&["sync", &tree]);
    assert_success(&out);
    let review = host.data.join(format!("{}/review", s.farm.customer));
    assert!(review.join("77/KEY.asc").is_file());

    let daemon = s.farm.daemon("perestroika-mirror", "m.log");
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    // The publisher takes the tree down (link first) before it announces generation 0.
    fs_err::remove_file(s.farm.config.paths.public_root.join(&tree)).unwrap();
    let mut gone = announce(&s, 0);
    gone.tree = tree.clone();
    gone.snapshot = "retired".into();
    let queue = QueueName::new(Stage::Mirror, &s.farm.customer, "9.0").to_string();
    broker.publish(&queue, &gone, "retire-77").await.unwrap();
    wait_until(
        "the review tree is gone from the mirror",
        &daemon,
        Duration::from_secs(30),
        || {
            fs_err::read_dir(&review)
                .map(|d| d.count() == 0)
                .unwrap_or(false)
        },
    );

    // A change whose review tree never reached this mirror (abandoned before any build was
    // published) is retired at once, without an error and its retries.
    let mut never = announce(&s, 0);
    never.tree = format!("{}/review/78", s.farm.customer);
    never.snapshot = "retired".into();
    broker.publish(&queue, &never, "retire-78").await.unwrap();
    wait_until(
        "the unknown review tree is retired",
        &daemon,
        Duration::from_secs(10),
        || {
            daemon.events().iter().any(|e| {
                e.ends("mirror")
                    && e.str("target") == Some("m1")
                    && e.str("tree").is_some_and(|t| t.ends_with("/review/78"))
                    && e.number("generation") == Some(0.0)
            })
        },
    );
    assert!(
        !daemon.output().contains("sync failed"),
        "{}",
        daemon.output()
    );
    drop(daemon);

    // A retired tree is reported as retired, not as in sync at generation 0, and there is
    // nothing of it to verify.
    let status = String::from_utf8_lossy(&s.mirror(&["status"]).stdout).into_owned();
    let line = status
        .lines()
        .find(|l| l.contains(&format!("{tree} ")))
        .unwrap_or_else(|| panic!("{tree} missing from: {status}"));
    assert!(line.trim_end().ends_with("retired"), "{status}");
    assert!(!line.contains("in sync"), "{status}");
    let json: serde_json::Value =
        serde_json::from_slice(&s.mirror(&["--json", "status"]).stdout).unwrap();
    assert_eq!(json["m1"][&tree]["state"], "retired", "{json}");
    let out = s.mirror(&["verify", &tree]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("is retired (taken down); nothing to verify"),
        "{said}"
    );
}

#[test]
fn an_ssh_target_and_the_served_rsync_module_for_downstream_mirrors() {
    let ssh = perestroika_tests::gerrit::Gerrit::start_ssh_host();
    let data = ssh.dir.path().join("mirror-data");
    fs_err::create_dir_all(&data).unwrap();
    let key = OperatorKey::new();
    let section = format!(
        "[[mirrors]]\nname = \"viassh\"\ntarget = \"ssh://{}@127.0.0.1:{}{}\"\nssh_key = \"{}\"\nknown_hosts = \"{}\"\n",
        ssh.user,
        ssh.port,
        data.display(),
        ssh.key_file.display(),
        ssh.known_hosts.display()
    );
    let farm = signed_farm(&shared_amqp_url(), &[&key], &section, RELEASE);
    let s = Setup {
        farm,
        _key: key,
        work: tempfile::tempdir().unwrap(),
    };
    s.include("bookworm", &[s.deb("overssh", "1.0")]);
    s.sync();
    assert_eq!(
        fs_err::read_link(data.join(s.tree()))
            .unwrap()
            .display()
            .to_string(),
        ".9.0.gen/1"
    );
    let out = s.mirror(&["verify", &s.tree()]);
    assert_success(&out);

    // The mirror host offers its copy to downstream mirrors as a read-only rsync module.
    let rsync_addr = format!("127.0.0.1:{}", perestroika_tests::free_port());
    let http_addr = format!("127.0.0.1:{}", perestroika_tests::free_port());
    let run_dir = s.work.path().join("run");
    let server = Daemon::start(
        "perestroika-mirror",
        &[
            "--config",
            s.cfg(),
            "serve",
            "--root",
            data.to_str().unwrap(),
            "--http",
            &http_addr,
            "--rsync",
            &rsync_addr,
            "--run-dir",
            run_dir.to_str().unwrap(),
        ],
        &s.farm.dir.path().join("serve.log"),
    );
    wait_for_listener(&rsync_addr, "the rsync module", || server.output());
    let downstream = s.work.path().join("downstream");
    sh(Command::new("rsync")
        .args(["-rlt", &format!("rsync://{rsync_addr}/perestroika/")])
        .arg(format!("{}/", downstream.display())));
    assert_eq!(
        fs_err::read_link(downstream.join(s.tree()))
            .unwrap()
            .display()
            .to_string(),
        ".9.0.gen/1"
    );
    assert!(downstream
        .join(s.tree())
        .join("deb/dists/bookworm/InRelease")
        .is_file());
    // It is read-only.
    let out = Command::new("rsync")
        .arg(s.work.path().join("big-2").display().to_string())
        .arg(format!("rsync://{rsync_addr}/perestroika/"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Regression: `verify` trusted the tree's own `KEY.asc`, so a tree re-signed by another key
/// with its `KEY.asc` replaced passed. Every signature must be by the pinned key.
#[test]
fn a_tree_re_signed_by_a_stranger_with_its_key_replaced_fails_verify() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.include("bookworm", &[s.deb("resigned", "1.0")]);
    let (rpm, _) = make_rpm(s.work.path(), "resignedrpm", "1.0", "a");
    s.include("el9", &[rpm]);
    s.sync();
    let out = s.mirror(&["verify", &s.tree()]);
    assert_success(&out);

    // A stranger re-signs every index of the generation and puts its own key beside them.
    let operator = s.farm.config.signing.as_ref().unwrap().fingerprint.clone();
    let stranger = OperatorKey::new();
    let generation = s.farm.config.paths.public_root.join(format!(
        "{}/.9.0.gen/{}",
        s.farm.customer,
        s.live_generation()
    ));
    let mut signed = 0;
    for suite in fs_err::read_dir(generation.join("deb/dists")).unwrap() {
        let suite = suite.unwrap().path();
        let release = suite.join("Release");
        stranger.sign(&release, &suite.join("InRelease"), true);
        stranger.sign(&release, &suite.join("Release.gpg"), false);
        signed += 2;
    }
    for repomd in files_below(&generation.join("rpm"))
        .into_iter()
        .filter(|p| p.ends_with("repodata/repomd.xml"))
    {
        stranger.sign(&repomd, &repomd.with_extension("xml.asc"), false);
        signed += 1;
    }
    assert!(signed >= 3, "{signed} signatures replaced");
    let key = generation.join("KEY.asc");
    fs_err::remove_file(&key).unwrap();
    fs_err::copy(stranger.public_file(), &key).unwrap();
    // The tampered tree is what the target holds too: only the signatures are wrong.
    let out = s.mirror(&["sync", &s.tree(), "--full"]);
    assert_success(&out);

    let out = s.mirror(&["verify", &s.tree()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "KEY.asc: holds key {}, which is not pinned (expected {operator})",
            stranger.fingerprint
        )),
        "{err}"
    );
    let bad = format!(
        "signed by key {}, expected {operator}",
        stranger.fingerprint
    );
    for file in ["InRelease", "Release", "repomd.xml"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("/{file}: bad")) && l.contains(&bad)),
            "{file} not reported:\n{err}"
        );
    }
    assert!(!err.contains("target differs"), "{err}");

    // The same tree passes once the stranger's key is the one pinned: the refusal above is
    // the pin's doing.
    let out = s.mirror(&["verify", &s.tree(), "--fingerprint", &stranger.fingerprint]);
    assert_success(&out);

    // A configuration that pins no key cannot verify, and says so.
    let unpinned = s.farm.dir.path().join("unpinned.toml");
    let text = fs_err::read_to_string(&s.farm.path).unwrap();
    let text: String = text
        .lines()
        .filter(|l| {
            !(l.starts_with("[signing]")
                || l.starts_with("fingerprint")
                || l.starts_with("also_sign_with"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    fs_err::write(&unpinned, text).unwrap();
    let out = run(
        "perestroika-mirror",
        &["--config", unpinned.to_str().unwrap(), "verify", &s.tree()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pins no signing key") && err.contains("--fingerprint"),
        "{err}"
    );
}

/// Opens `n` connections to `addr`; every `half_every`-th sends half a request head and
/// stalls. Each is watched by a thread that returns how long it stayed open (up to 60 s).
fn idle_connections(
    addr: &str,
    n: usize,
    half_every: usize,
) -> Vec<std::thread::JoinHandle<Option<Duration>>> {
    (0..n)
        .map(|i| {
            let mut c = TcpStream::connect(addr).unwrap();
            let opened = Instant::now();
            if i % half_every == 0 {
                c.write_all(b"GET /x HTTP/1.1\r\nHost: mirror\r\nUser-Agent: sl")
                    .unwrap();
            }
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => return Some(opened.elapsed()),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                            return Some(opened.elapsed())
                        }
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect()
}

/// How long each connection stayed open; fails on one the server never closed.
fn lifetimes(watchers: Vec<std::thread::JoinHandle<Option<Duration>>>) -> Vec<Duration> {
    watchers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            w.join()
                .unwrap()
                .unwrap_or_else(|| panic!("connection {i} was still open after 60 s"))
        })
        .collect()
}

fn timed_curl(url: &str) -> (Duration, std::process::Output) {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "60", url])
        .output()
        .unwrap();
    (started.elapsed(), out)
}

/// Regression: the http server had no header timeout and no connection cap, and a failing
/// `accept` (descriptors exhausted) ended it and the rsync daemon with it, so a thousand idle
/// sockets took a mirror down.
#[test]
fn idle_and_half_sent_connections_do_not_take_the_mirror_down() {
    let farm = perestroika_tests::Farm::with_sections(
        &shared_amqp_url(),
        "",
        "[serve]\nmax_connections = 64\nheader_timeout_secs = 1\nstall_timeout_secs = 5\n",
    );
    let root = farm.dir.path().join("mirror");
    let key = root.join("acme/9.0/KEY.asc");
    fs_err::create_dir_all(key.parent().unwrap()).unwrap();
    let content = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n".repeat(100);
    fs_err::write(&key, &content).unwrap();
    let http = format!("127.0.0.1:{}", perestroika_tests::free_port());
    let rsync = format!("127.0.0.1:{}", perestroika_tests::free_port());
    let mut server = Daemon::start(
        "perestroika-mirror",
        &[
            "--config",
            farm.path.to_str().unwrap(),
            "serve",
            "--root",
            root.to_str().unwrap(),
            "--http",
            &http,
            "--rsync",
            &rsync,
            "--run-dir",
            farm.dir.path().join("run").to_str().unwrap(),
        ],
        &farm.dir.path().join("serve.log"),
    );
    wait_for_listener(&http, "perestroika-mirror serve", || server.output());
    wait_for_listener(&rsync, "the rsync module", || server.output());
    let url = format!("http://{http}/acme/9.0/KEY.asc");

    // 600 connections, nine times the cap: every sixth sends half a request head.
    let opening = Instant::now();
    let idle = idle_connections(&http, 600, 6);
    eprintln!("600 connections opened in {:.1?}", opening.elapsed());
    let (took, out) = timed_curl(&url);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.output()
    );
    assert_eq!(out.stdout, content);
    assert!(took < Duration::from_secs(25), "served after {took:?}");
    eprintln!("a client behind them was served after {took:.1?}");
    // Each is closed by the server; the first 64, taken at once, after the header timeout.
    let lasted = lifetimes(idle);
    let mut first: Vec<Duration> = lasted[..64].to_vec();
    first.sort();
    assert!(
        first[0] >= Duration::from_millis(900) && first[63] < Duration::from_secs(4),
        "{first:?}"
    );
    eprintln!(
        "the first 64 lasted {:.2?} to {:.2?}; the longest of all 600 {:.2?}",
        first[0],
        first[63],
        lasted.iter().max().unwrap()
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "{}",
        server.output()
    );

    // With descriptors nearly exhausted, accept fails; the server pauses and serves on.
    let pid = server.child.id().to_string();
    let out = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=32:32"])
        .output()
        .unwrap();
    assert_success(&out);
    let idle = idle_connections(&http, 200, 4);
    server.wait_for_log("accept failed", 1);
    let (took, out) = timed_curl(&url);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.output()
    );
    assert_eq!(out.stdout, content);
    eprintln!(
        "with 32 descriptors, a client behind 200 idle connections was served after {took:.1?}"
    );
    let lasted = lifetimes(idle);
    eprintln!(
        "those 200 were all closed, the longest after {:.2?}",
        lasted.iter().max().unwrap()
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "{}",
        server.output()
    );
    // And the rsync daemon beside it still serves.
    let out = Command::new("rsync")
        .arg(format!("rsync://{rsync}/perestroika/acme/9.0/KEY.asc"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("KEY.asc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Anyone holding broker credentials can put an announcement on a mirror queue. Generation 0
/// naming another customer's tree, a release tree, a tree of another queue, or a review tree
/// the publisher has not taken down removes nothing: each is dead-lettered with its reason.
/// The publisher's own retirement still takes a review tree off the mirror afterwards.
#[tokio::test]
async fn forged_announcements_remove_nothing_from_a_mirror() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.farm.bootstrap();
    s.include("bookworm", &[s.deb("kept", "1.0")]);
    s.sync();
    let review = format!("{}/review/91", s.farm.customer);
    let deb = s.deb("reviewed", "1.0");
    s.farm.publish_review("bookworm", 91, &[&deb]);
    assert!(s.mirror(&["sync", &review]).status.success());
    // Another customer's tree on the same mirror host.
    let stranger = unique("c");
    let theirs = host.data.join(&stranger).join("9.0");
    fs_err::create_dir_all(&theirs).unwrap();
    fs_err::write(theirs.join("KEY.asc"), "theirs").unwrap();

    let log = s.farm.dir.path().join("m.log");
    let daemon = Daemon::start("perestroika-mirror", &["--config", s.cfg(), "run"], &log);
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
    let queue = QueueName::new(Stage::Mirror, &s.farm.customer, "9.0").to_string();
    let gone = |customer: &str, tree: &str| MirrorAnnouncement {
        customer: customer.to_owned(),
        tree: tree.to_owned(),
        snapshot: "retired".into(),
        ..announce(&s, 0)
    };
    let forged = [
        gone(&s.farm.customer, &format!("{stranger}/9.0")),
        gone(&stranger, &format!("{stranger}/9.0")),
        gone(&s.farm.customer, &format!("{stranger}/review/91")),
        gone(&s.farm.customer, &s.tree()),
        // The publisher has not retired it: its link is still live.
        gone(&s.farm.customer, &review),
        MirrorAnnouncement {
            snapshot: "0".into(),
            ..gone(&s.farm.customer, &format!("{}/review/92", s.farm.customer))
        },
    ];
    for (i, a) in forged.iter().enumerate() {
        broker
            .publish(&queue, a, &format!("forged-{i}"))
            .await
            .unwrap();
    }
    let dead = format!("{queue}.dead");
    let mut reasons = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reasons.len() < forged.len() {
        assert!(
            Instant::now() < deadline,
            "dead letters {reasons:?}:\n{}",
            daemon.output()
        );
        match broker.get(&dead).await.unwrap() {
            Some(d) => reasons.push(perestroika_protocol::broker::dead_reason(&d)),
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    for (reason, want) in reasons.iter().zip([
        "is neither",
        "arrived on",
        "is neither",
        "not a review tree",
        "still live",
        "must have snapshot",
    ]) {
        assert!(reason.contains(want), "{reason:?} lacks {want:?}");
    }
    assert!(theirs.join("KEY.asc").is_file());
    assert!(host.data.join(s.tree()).join("KEY.asc").is_file());
    assert!(host.data.join(&review).join("KEY.asc").is_file());
    let synced_zero = |e: &perestroika_tests::logs::Event| {
        e.message() == "syncing" && e.number("generation") == Some(0.0)
    };
    assert!(
        !daemon.events().iter().any(synced_zero),
        "{}",
        daemon.output()
    );

    // The publisher's retirement: the tree is taken down here first, then announced.
    fs_err::remove_file(s.farm.config.paths.public_root.join(&review)).unwrap();
    broker
        .publish(&queue, &gone(&s.farm.customer, &review), "retire-91")
        .await
        .unwrap();
    wait_until(
        "the retired review tree is gone",
        &daemon,
        Duration::from_secs(30),
        || !host.data.join(&review).exists(),
    );
    assert!(theirs.join("KEY.asc").is_file());
    assert!(host.data.join(s.tree()).join("KEY.asc").is_file());
    broker.close().await;
}
