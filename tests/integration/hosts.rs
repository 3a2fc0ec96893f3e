//! The farm as hosts on this machine (`deploy/hosts`, behind the `hosts` feature; run by
//! `.ci/test-hosts`): a merge in the Gerrit stand-in becomes a package apt installs from both
//! mirrors, the zones hold (checked from the hosts themselves), and a worker killed mid-build
//! is replaced by another, the job published once.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use perestroika_tests::debian::{base_image, dh_package, minimal_package};
use perestroika_tests::hosts::Hosts;
use perestroika_tests::whole::change;
use serde_json::json;

const BUILD_TIME: Duration = Duration::from_secs(900);

/// Tries TCP connections from a host: each argument `ADDR:FIRST-LAST`; prints how many ports
/// were tried, then the open ones.
const SCAN: &str = r#"
import socket, sys
tried, opened = 0, []
for arg in sys.argv[1:]:
    addr, ports = arg.rsplit(":", 1)
    first, last = (int(p) for p in ports.split("-"))
    for port in range(first, last + 1):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((addr, port))
            opened.append(f"{addr}:{port}")
        except OSError:
            pass
        finally:
            s.close()
        tried += 1
print(tried, *opened)
"#;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The ports of each `ADDR:FIRST-LAST` that accept a connection from host `from`.
fn open_ports(h: &Hosts, from: &str, targets: &[String]) -> Vec<String> {
    let mut args = vec!["python3", "-c", SCAN];
    args.extend(targets.iter().map(String::as_str));
    let out = h.exec(from, &args);
    assert!(out.status.success(), "scan from {from}: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = stdout.split_whitespace();
    let tried: usize = words.next().unwrap().parse().unwrap();
    let expected: usize = targets
        .iter()
        .map(|t| {
            let (a, b) = t.rsplit_once(':').unwrap().1.split_once('-').unwrap();
            b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1
        })
        .sum();
    assert_eq!(
        tried, expected,
        "the scan from {from} did not try every port"
    );
    words.map(str::to_owned).collect()
}

/// The versions of `package` in the bookworm index of the release on mirror `m` (1 or 2),
/// read over its http; empty while the index is missing.
fn mirrored(h: &Hosts, m: u8, package: &str) -> Vec<String> {
    let url = format!(
        "http://{}/{}/{}/deb/dists/bookworm/main/binary-amd64/Packages",
        h.address(6, 60 + m),
        h.var("PERESTROIKA_HOSTS_CUSTOMER"),
        h.var("PERESTROIKA_HOSTS_RELEASE")
    );
    let Some(body) = Hosts::get(&url) else {
        return Vec::new();
    };
    perestroika_formats::deb822::parse(&body)
        .unwrap()
        .iter()
        .filter(|s| s.get("Package") == Some(package))
        .filter_map(|s| s.get("Version").map(str::to_owned))
        .collect()
}

/// Installs `package` with apt in a client host of the public zone from mirror `m`, signature
/// checks on and the key pinned; returns what `check` prints.
fn install_from(h: &Hosts, image: &str, m: u8, package: &str, check: &str) -> String {
    let line = format!(
        "deb [signed-by=/farm-key.asc] http://{}/{}/{}/deb bookworm main",
        h.address(6, 60 + m),
        h.var("PERESTROIKA_HOSTS_CUSTOMER"),
        h.var("PERESTROIKA_HOSTS_RELEASE")
    );
    let script = format!(
        "set -e; echo '{line}' > /etc/apt/sources.list.d/farm.list; \
         apt-get update -q -o APT::Update::Error-Mode=any \
           -o Dir::Etc::SourceList=/etc/apt/sources.list.d/farm.list -o Dir::Etc::SourceParts=- >&2; \
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q {package} >&2; {check}"
    );
    let out = h.client(image, &script);
    assert!(out.status.success(), "apt from mirror{m}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Emits the merge of `head` (already on the branch) as change `number`.
fn merge(h: &Hosts, project: &str, number: u64, head: &str) {
    let ch = change(project, "9.0", number, 1, head);
    let g = h.gerrit();
    g.record(&ch.row("MERGED"));
    g.emit(&ch.event("change-merged", json!({})));
}

/// The farm's running build containers: (worker host, job id).
fn builds() -> Vec<(String, String)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "--filter",
            "label=perestroika.job",
            "--format",
            "{{.Label \"perestroika.owner\"}} {{.Label \"perestroika.job\"}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(owner, job)| {
            let host = owner.strip_prefix("worker@perestroika-hosts-")?;
            Some((host.split(':').next()?.to_owned(), job.to_owned()))
        })
        .collect()
}

#[test]
fn a_merge_is_published_to_both_mirrors_across_hosts_and_a_killed_worker_is_replaced() {
    let image = base_image("bookworm");
    let started = Instant::now();
    let h = Hosts::up();
    eprintln!("farm up: {:.1} s", started.elapsed().as_secs_f64());
    let customer = h.var("PERESTROIKA_HOSTS_CUSTOMER").to_owned();

    // Zones. From a worker: the publisher has no open port on any address the worker
    // reaches, while the same scan finds another worker's staging daemon.
    let publisher_ports = open_ports(
        &h,
        "worker1",
        &[
            format!("{}:1-65535", h.address(4, 50)),
            format!("{}:1-65535", h.address(1, 50)),
            format!("{}:8700-8760", h.address(4, 42)),
            // The mirrors' writable rsync modules: the push network is not the workers'.
            format!("{}:873-873", h.address(5, 61)),
            format!("{}:873-873", h.address(5, 62)),
        ],
    );
    assert_eq!(
        publisher_ports,
        [format!("{}:8730", h.address(4, 42))],
        "from worker1, only worker2's staging daemon may answer"
    );
    // The publisher's keyring exists on its host and nowhere a worker can read.
    let keyring = h.publisher_keyring();
    assert!(
        fs_err::read_dir(&keyring).unwrap().next().is_some(),
        "the publisher has no keyring at {}",
        keyring.display()
    );
    let keyring_seen = h.exec("worker1", &["test", "-e", keyring.to_str().unwrap()]);
    assert_eq!(
        keyring_seen.status.code(),
        Some(1),
        "{}",
        text(&keyring_seen)
    );
    let found = h.exec(
        "worker1",
        &[
            "sh",
            "-c",
            "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o \
             \\( -name pubring.kbx -o -name private-keys-v1.d -o -name secring.gpg \\) -print",
        ],
    );
    assert!(found.status.success(), "{}", text(&found));
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        "",
        "a keyring on worker1"
    );
    // The publisher pulls from each worker's staging daemon; nobody else may.
    for w in 1..=3u8 {
        let url = format!("rsync://{}:8730/staging/", h.address(4, 40 + w));
        let pulled = h.exec(
            "publisher",
            &["rsync", "--contimeout=10", "--timeout=20", &url],
        );
        assert!(
            pulled.status.success(),
            "publisher → worker{w}: {}",
            text(&pulled)
        );
    }
    let url = format!("rsync://{}:8730/staging/", h.address(4, 41));
    let refused = h.exec(
        "worker2",
        &["rsync", "--contimeout=10", "--timeout=20", &url],
    );
    assert!(!refused.status.success(), "worker2 read worker1's staging");
    assert!(
        text(&refused).contains("access denied") || text(&refused).contains("@ERROR"),
        "{}",
        text(&refused)
    );
    // A client reaches both mirrors' http, and not the publisher.
    for m in 1..=2u8 {
        let out = h.client(
            &image,
            &format!(
                "exec 3<>/dev/tcp/{}/80; printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' >&3; head -n1 <&3",
                h.address(6, 60 + m)
            ),
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.0 200"),
            "a client and mirror{m}'s http: {}",
            text(&out)
        );
    }
    let cut = h.client(
        &image,
        &format!(
            "timeout 5 sh -c 'exec 3<>/dev/tcp/{}/873' && echo reached || echo unreachable",
            h.address(4, 50)
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&cut.stdout).trim(),
        "unreachable",
        "{}",
        text(&cut)
    );

    // One merge, built by a worker through the package cache (debhelper), published, pushed
    // to both mirrors, installed by apt from each.
    let g = h.gerrit();
    g.wait_for_streams(1);
    let project = format!("{customer}/packages/deb/bookworm/hostpkg");
    let head = g.push(
        &project,
        "9.0",
        &dh_package("hostpkg", "", "echo built across hosts"),
        "hostpkg",
    );
    let merged = Instant::now();
    merge(&h, &project, 1, &head);
    let all = ["reactor", "worker1", "worker2", "worker3", "publisher"];
    h.wait_for("hostpkg on both mirrors", BUILD_TIME, &all, || {
        !mirrored(&h, 1, "hostpkg").is_empty() && !mirrored(&h, 2, "hostpkg").is_empty()
    });
    eprintln!(
        "merge to both mirrors: {:.1} s",
        merged.elapsed().as_secs_f64()
    );
    assert_eq!(mirrored(&h, 1, "hostpkg"), mirrored(&h, 2, "hostpkg"));
    // Built on the base image's own root (a worker's mounts do not reach the engine), its
    // build dependencies fetched through the cache host.
    let logs: Vec<String> = (1..=3u8)
        .flat_map(|w| {
            fs_err::read_dir(h.worker_dir(w).join("staging"))
                .into_iter()
                .flatten()
        })
        .filter_map(|e| fs_err::read_to_string(e.ok()?.path().join("build.log")).ok())
        .filter(|l| l.contains("hostpkg"))
        .collect();
    assert_eq!(
        logs.len(),
        1,
        "one build log of hostpkg in the workers' staging"
    );
    assert!(
        logs[0].contains("build.overlay_roots is off"),
        "{}",
        logs[0]
    );
    assert!(logs[0].contains("Setting up debhelper"), "{}", logs[0]);
    for m in 1..=2u8 {
        let said = install_from(&h, &image, m, "hostpkg", "cat /usr/share/hostpkg/output");
        assert_eq!(said.trim(), "built across hosts");
    }

    // A worker killed mid-build: another builds the job, published once.
    let project = format!("{customer}/packages/deb/bookworm/slowpkg");
    let head = g.push(
        &project,
        "9.0",
        &minimal_package("slowpkg", "sleep 40"),
        "slowpkg",
    );
    merge(&h, &project, 2, &head);
    let deadline = Instant::now() + BUILD_TIME;
    let (victim, job) = loop {
        if let Some(b) = builds().into_iter().next() {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "slowpkg never started building:\n{}",
            h.log("reactor")
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_secs(3));
    let victim = victim.trim_start_matches("perestroika-hosts-").to_owned();
    h.kill(&victim);
    let killed = Instant::now();
    h.wait_for("slowpkg on both mirrors", BUILD_TIME, &all, || {
        !mirrored(&h, 1, "slowpkg").is_empty() && !mirrored(&h, 2, "slowpkg").is_empty()
    });
    eprintln!(
        "worker killed to published on both mirrors: {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    let handed = |w: &str| {
        h.events(w).iter().any(|e| {
            e.job() == Some(job.as_str())
                && e.message().contains("built and handed to the publisher")
        })
    };
    assert!(
        !handed(&victim),
        "{victim} was killed before it built {job}"
    );
    let builders: Vec<&str> = ["worker1", "worker2", "worker3"]
        .into_iter()
        .filter(|w| *w != victim)
        .filter(|w| handed(w))
        .collect();
    assert_eq!(
        builders.len(),
        1,
        "one other worker built {job}: {builders:?}"
    );
    let published = h
        .events("publisher")
        .iter()
        .filter(|e| e.job() == Some(job.as_str()) && e.message() == "published")
        .count();
    assert_eq!(published, 1, "{}", h.log("publisher"));
    assert_eq!(mirrored(&h, 1, "slowpkg"), ["1.0+p1.0"]);
    assert_eq!(mirrored(&h, 2, "slowpkg"), ["1.0+p1.0"]);
}
