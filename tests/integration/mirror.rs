//! The mirror against real rsync daemons on loopback, judged by apt and dnf reading the
//! mirror's http server with signature checks on.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perestroika_config::broker::Broker;
use perestroika_config::messages::{MirrorAnnouncement, SCHEMA_VERSION};
use perestroika_config::{QueueName, Stage};
use perestroika_tests::apt::{dnf_install, make_deb, make_rpm, signed_farm, AptRoot, OperatorKey};
use perestroika_tests::rsyncd::RsyncHost;
use perestroika_tests::{run, shared_amqp_url, unique, wait_for_listener, Daemon, Farm};

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
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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

/// `perestroika-mirror serve` on a mirror host's data.
fn serve(s: &Setup, host: &RsyncHost) -> (Daemon, String) {
    let addr = format!("127.0.0.1:{}", perestroika_tests::free_port());
    let daemon = Daemon::start(
        "perestroika-mirror",
        &[
            "--config",
            s.cfg(),
            "serve",
            "--root",
            host.data.to_str().unwrap(),
            "--http",
            &addr,
        ],
        &s.farm.dir.path().join(format!("{}.log", unique("serve"))),
    );
    wait_for_listener(&addr, "perestroika-mirror serve", || daemon.output());
    (daemon, format!("http://{addr}"))
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

    let (_server, url) = serve(&s, &host);
    let apt = apt_for(&s, &host, &url);
    apt.update();
    assert_eq!(apt.versions("mirrored"), ["1.0"]);
    let dl = apt.apt_get(&["install", "-y", "--download-only", "mirrored"]);
    assert!(
        dl.status.success(),
        "{}",
        String::from_utf8_lossy(&dl.stderr)
    );
    let root = tempfile::tempdir().unwrap();
    let out = dnf_install(
        &format!("{url}/{}", s.tree()),
        "el9",
        root.path(),
        "mirroredrpm",
    );
    assert!(
        out.status.success(),
        "dnf: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

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
    let pool_deb = walk(&host.data.join(format!("{}/.9.0.pool", s.farm.customer)))
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

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn apt_never_fails_against_a_mirror_while_twenty_syncs_run() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    s.include("bookworm", &[s.deb("busy", "1.0")]);
    s.sync();
    let (_server, url) = serve(&s, &host);
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

#[tokio::test]
async fn a_target_that_is_down_gets_the_newest_state_once_back() {
    let up = RsyncHost::start();
    let mut down = RsyncHost::start();
    down.stop();
    let s = setup(&[("up", &up), ("down", &down)]);
    assert!(s.mirror(&["check"]).status.success());
    let out = run("perestroika-queue", &["--config", s.cfg(), "bootstrap"]);
    assert!(out.status.success());
    let daemon = Daemon::start(
        "perestroika-mirror",
        &["--config", s.cfg(), "run"],
        &s.farm.dir.path().join("mirror.log"),
    );
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let (_server, url) = serve(&s, &host);
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
    let out = Command::new("dpkg-deb")
        .args(["-Znone", "-b"])
        .arg(&dir)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.include("bookworm", &[deb]);

    let mut sync = Command::new(perestroika_tests::bin("perestroika-mirror"))
        .args(["--config", s.cfg(), "sync", &s.tree()])
        .process_group(0)
        .spawn()
        .unwrap();
    // Cut it while rsync writes the big file (a temporary name in the pool).
    let pool = host.data.join(format!("{}/.9.0.pool", s.farm.customer));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !walk(&pool).iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".big_2.0"))
    }) {
        assert!(
            Instant::now() < deadline,
            "rsync never started on the big file"
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
    let leftovers: Vec<_> = walk(&pool)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = s.mirror(&["verify", &s.tree()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_retired_review_tree_is_taken_off_the_mirror() {
    let host = RsyncHost::start();
    let s = setup(&[("m1", &host)]);
    assert!(
        run("perestroika-queue", &["--config", s.cfg(), "bootstrap"])
            .status
            .success()
    );
    let deb = s.deb("reviewed", "1.0");
    let out = s
        .farm
        .include("bookworm", &["--review", "77"], &[&deb])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = format!("{}/review/77", s.farm.customer);
    let out = s.mirror(&["sync", &tree]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review = host.data.join(format!("{}/review", s.farm.customer));
    assert!(review.join("77/KEY.asc").is_file());

    let daemon = Daemon::start(
        "perestroika-mirror",
        &["--config", s.cfg(), "run"],
        &s.farm.dir.path().join("m.log"),
    );
    let broker = Broker::connect(&s.farm.config.broker).await.unwrap();
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
    let log = s.farm.dir.path().join("m.log");
    wait_until(
        "the unknown review tree is retired",
        &daemon,
        Duration::from_secs(10),
        || {
            fs_err::read_to_string(&log).is_ok_and(|t| {
                t.contains("in sync target=m1 tree=") && t.contains("/review/78 generation=0")
            })
        },
    );
    assert!(
        !daemon.output().contains("sync failed"),
        "{}",
        daemon.output()
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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
    let out = Command::new("rsync")
        .args(["-rlt", &format!("rsync://{rsync_addr}/perestroika/")])
        .arg(format!("{}/", downstream.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
