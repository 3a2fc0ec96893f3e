//! The farm as hosts on this machine (`deploy/hosts`, behind the `hosts` feature; run by
//! `.ci/test-hosts`): a merge in the Gerrit stand-in becomes a package apt installs from both
//! mirrors, the zones hold (checked from the hosts themselves), and the farm loses nothing
//! under real faults — hosts killed, stopped and cut off the network — while apt and dnf
//! clients read both mirrors the whole time.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use perestroika_tests::debian::{
    base_image, dh_package, greet_code, greet_packaging, minimal_package, rpm_image,
};
use perestroika_tests::hosts::{Clients, Hosts};
use perestroika_tests::logs;
use perestroika_tests::whole::change;
use serde_json::json;

const BUILD_TIME: Duration = Duration::from_secs(900);

/// The hosts whose logs a failed wait shows.
const PARTS: [&str; 5] = ["reactor", "worker1", "worker2", "worker3", "publisher"];

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
        "{}/deb/dists/bookworm/main/binary-amd64/Packages",
        h.mirror_url(m)
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
        "deb [signed-by=/farm-key.asc] {}/deb bookworm main",
        h.mirror_url(m)
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

/// Pushes `files` as package `name`'s project of `family` (`deb` or `rpm`) and `distro`, and
/// merges it as the next change.
fn push_and_merge(h: &Hosts, family: &str, distro: &str, name: &str, files: &[(String, String)]) {
    let project = format!(
        "{}/packages/{family}/{distro}/{name}",
        h.var("PERESTROIKA_HOSTS_CUSTOMER")
    );
    let g = h.gerrit();
    let head = g.push(&project, "9.0", files, name);
    merge(h, &project, g.next_change_number(), &head);
}

/// [`push_and_merge`] of a small native deb for bookworm whose build runs `build_step`.
fn merge_deb(h: &Hosts, name: &str, build_step: &str) {
    push_and_merge(
        h,
        "deb",
        "bookworm",
        name,
        &minimal_package(name, build_step),
    );
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
    // `farm up` pushes the release's rpm base image to the farm's registry too.
    rpm_image();
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
            // Their http is the workers' (build dependencies); their rsync is not.
            format!("{}:873-873", h.address(3, 61)),
            format!("{}:873-873", h.address(3, 62)),
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
    h.wait_for("hostpkg on both mirrors", BUILD_TIME, &PARTS, || {
        !mirrored(&h, 1, "hostpkg").is_empty() && !mirrored(&h, 2, "hostpkg").is_empty()
    });
    eprintln!(
        "merge to both mirrors: {:.1} s",
        merged.elapsed().as_secs_f64()
    );
    assert_eq!(mirrored(&h, 1, "hostpkg"), mirrored(&h, 2, "hostpkg"));
    // From here on apt and dnf read both mirrors (the rpm side is the release's empty one).
    let mut clients = Clients::start(&h, "bookworm", h.var("PERESTROIKA_HOSTS_RPM_DISTRO"));
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

    // A worker killed mid-build: another builds the job, published once; the killed worker's
    // leftovers are gone once it is back.
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
    assert_eq!(containers_left_by(&victim), 1, "{victim}'s build container");
    h.kill(&victim);
    let killed = Instant::now();
    h.wait_for(
        "another worker building slowpkg",
        BUILD_TIME,
        &PARTS,
        || {
            builds()
                .iter()
                .any(|(w, j)| *j == job && !w.ends_with(&victim))
        },
    );
    // The killed worker's build root and sources stay on its disk until it comes back; its
    // container (named for the job) the worker that took the job over has replaced.
    let number: u8 = victim.trim_start_matches("worker").parse().unwrap();
    let left = || {
        (
            containers_left_by(&victim),
            paths_naming(&h.worker_dir(number), &job),
        )
    };
    let (_, paths) = left();
    assert!(
        !paths.is_empty(),
        "the killed worker left no files of {job}"
    );
    h.start(&victim);
    let back = Instant::now();
    h.wait_for(
        "the returned worker removing its dead build's container and files",
        Duration::from_secs(120),
        &[&victim],
        || left() == (0, Vec::new()),
    );
    eprintln!(
        "the returned worker removed its dead build's leftovers in {:.1} s",
        back.elapsed().as_secs_f64()
    );
    h.wait_for("slowpkg on both mirrors", BUILD_TIME, &PARTS, || {
        !mirrored(&h, 1, "slowpkg").is_empty() && !mirrored(&h, 2, "slowpkg").is_empty()
    });
    let published_at = Instant::now();
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
    let (lost, duplicates) = tally(&h, &["slowpkg".into()]);
    let mut ledger = Ledger::default();
    ledger.record(Fault {
        name: "worker killed mid-build",
        injected: format!("docker kill {victim} 3 s into a 40 s build"),
        recovery: published_at - killed,
        lost,
        duplicates,
        failed_reads: clients.seen().failed.len(),
    });
    ledger.judge(&mut clients);
}

/// Containers of any state that host `worker` started (its owner label).
fn containers_left_by(worker: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=perestroika.owner",
            "--format",
            "{{.Label \"perestroika.owner\"}}",
        ])
        .output()
        .unwrap();
    let prefix = format!("worker@perestroika-hosts-{worker}:");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

/// Paths below `dir` whose name holds `job` (its id).
fn paths_naming(dir: &std::path::Path, job: &str) -> Vec<String> {
    perestroika_tests::files_below(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(job))
        .map(|p| p.display().to_string())
        .collect()
}

/// One fault as the note records it.
struct Fault {
    name: &'static str,
    injected: String,
    /// From the fault (or its end, where the farm waits for it) to every job it touched
    /// published on both mirrors.
    recovery: Duration,
    lost: usize,
    duplicates: usize,
    failed_reads: usize,
}

/// The faults of one run, printed as a table as each ends and judged at the end (each must
/// lose nothing, publish nothing twice and fail no client read).
#[derive(Default)]
struct Ledger {
    faults: Vec<Fault>,
}

impl Ledger {
    fn record(&mut self, fault: Fault) {
        eprintln!(
            "fault | {} | {} | recovery {:.1} s | lost {} | duplicates {} | failed client reads {}",
            fault.name,
            fault.injected,
            fault.recovery.as_secs_f64(),
            fault.lost,
            fault.duplicates,
            fault.failed_reads
        );
        self.faults.push(fault);
    }

    fn judge(&self, clients: &mut Clients) {
        let seen = clients.stop();
        eprintln!(
            "client reads: {} in all, {} failed",
            seen.reads,
            seen.failed.len()
        );
        assert!(seen.reads > 0, "the clients read nothing");
        assert!(
            seen.failed.is_empty(),
            "failed client reads:\n{}",
            seen.failed.join("\n")
        );
        for f in &self.faults {
            assert_eq!(
                (f.lost, f.duplicates, f.failed_reads),
                (0, 0, 0),
                "{}: lost, duplicates, failed reads",
                f.name
            );
        }
    }
}

/// Every worker host's JSON log events.
fn worker_events(h: &Hosts) -> Vec<logs::Event> {
    ["worker1", "worker2", "worker3"]
        .iter()
        .flat_map(|w| h.events(w))
        .collect()
}

/// The build jobs the reactor queued for `package` (first queueing and any re-queueing).
fn jobs_of(h: &Hosts, package: &str) -> Vec<String> {
    let events = h.events("reactor");
    let prefix = format!("build {package} for ");
    let mut jobs: Vec<String> = events
        .iter()
        .filter(|e| e.stage() == Some("queued"))
        .filter(|e| e.str("what").is_some_and(|w| w.starts_with(&prefix)))
        .filter_map(|e| e.job().map(str::to_owned))
        .collect();
    jobs.dedup();
    jobs
}

/// How often each job of `package` was built and handed over, and published.
fn built_and_published(h: &Hosts, package: &str) -> (usize, usize) {
    let jobs = jobs_of(h, package);
    let mine = |e: &logs::Event| e.job().is_some_and(|j| jobs.iter().any(|x| x == j));
    let handed = worker_events(h)
        .iter()
        .filter(|e| mine(e) && e.message().contains("built and handed to the publisher"))
        .count();
    let published = h
        .events("publisher")
        .iter()
        .filter(|e| mine(e) && e.message() == "published")
        .count();
    (handed, published)
}

/// Jobs lost and published twice among `packages` (debs of bookworm): a package is lost when
/// it was never published or is missing on a mirror; a duplicate is a second publish, or a
/// second version on a mirror.
fn tally(h: &Hosts, packages: &[String]) -> (usize, usize) {
    let (mut lost, mut duplicates) = (0, 0);
    for p in packages {
        let (_, published) = built_and_published(h, p);
        let on = [mirrored(h, 1, p).len(), mirrored(h, 2, p).len()];
        if published == 0 || on.contains(&0) {
            lost += 1;
        }
        duplicates +=
            published.saturating_sub(1) + on.iter().map(|n| n.saturating_sub(1)).sum::<usize>();
    }
    (lost, duplicates)
}

/// Waits until every one of `packages` is on both mirrors; returns when it was.
fn wait_mirrored(h: &Hosts, what: &str, packages: &[String]) -> Instant {
    h.wait_for(what, BUILD_TIME, &PARTS, || {
        packages
            .iter()
            .all(|p| !mirrored(h, 1, p).is_empty() && !mirrored(h, 2, p).is_empty())
    });
    Instant::now()
}

/// Records a fault over `packages`, its recovery counted from `from`, its failed client reads
/// those since `reads_before`.
fn record(
    ledger: &mut Ledger,
    h: &Hosts,
    clients: &Clients,
    (name, injected): (&'static str, String),
    packages: &[String],
    from: Instant,
    reads_before: usize,
) {
    let recovered = wait_mirrored(h, name, packages);
    let (lost, duplicates) = tally(h, packages);
    ledger.record(Fault {
        name,
        injected,
        recovery: recovered - from,
        lost,
        duplicates,
        failed_reads: clients.seen().failed.len() - reads_before,
    });
}

/// The farm with a deb and an rpm published on both mirrors, and apt and dnf clients reading
/// both mirrors from then on.
fn seeded_farm() -> (Hosts, Clients) {
    base_image("bookworm");
    rpm_image();
    let h = Hosts::up();
    h.gerrit().wait_for_streams(1);
    merge_deb(&h, "seeddeb", "true");
    let rpm_distro = h.var("PERESTROIKA_HOSTS_RPM_DISTRO").to_owned();
    let mut greet = greet_code("Hello from the hosts");
    greet.extend(greet_packaging());
    push_and_merge(&h, "rpm", &rpm_distro, "greet", &greet);
    wait_mirrored(&h, "seeddeb on both mirrors", &["seeddeb".into()]);
    h.wait_for("greet's rpm on both mirrors", BUILD_TIME, &PARTS, || {
        (1..=2).all(|m| {
            Hosts::get(&format!(
                "{}/rpm/{rpm_distro}/x86_64/Packages/greet-1.0-p1.0.x86_64.rpm",
                h.mirror_url(m)
            ))
            .is_some()
        })
    });
    assert_eq!(built_and_published(&h, "greet"), (1, 1));
    let clients = Clients::start(&h, h.var("PERESTROIKA_HOSTS_DISTRO"), &rpm_distro);
    (h, clients)
}

/// The job of the running build of `package`, once it runs: (worker host, job id).
fn running_build(h: &Hosts, package: &str) -> (String, String) {
    let deadline = Instant::now() + BUILD_TIME;
    loop {
        let jobs = jobs_of(h, package);
        if let Some(b) = builds().into_iter().find(|(_, j)| jobs.contains(j)) {
            return (b.0.trim_start_matches("perestroika-hosts-").to_owned(), b.1);
        }
        assert!(
            Instant::now() < deadline,
            "{package} never started building:\n{}",
            h.log("reactor")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The worker hosts whose events say they built `package` and handed it over.
fn builders_of(h: &Hosts, package: &str) -> Vec<String> {
    let jobs = jobs_of(h, package);
    ["worker1", "worker2", "worker3"]
        .into_iter()
        .filter(|w| {
            h.events(w).iter().any(|e| {
                e.job().is_some_and(|j| jobs.iter().any(|x| x == j))
                    && e.message().contains("built and handed to the publisher")
            })
        })
        .map(str::to_owned)
        .collect()
}

/// Fault 2: the worker that built a job is killed after staging it, before the publisher
/// (stopped meanwhile) fetched its files: the publisher finds it gone, the reactor queues the
/// build again, another worker builds it, published once.
fn worker_killed_after_staging(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    let before = clients.seen().failed.len();
    h.stop("publisher");
    merge_deb(h, "stagedpkg", "true");
    h.wait_for("stagedpkg staged by a worker", BUILD_TIME, &PARTS, || {
        !builders_of(h, "stagedpkg").is_empty()
    });
    let victim = builders_of(h, "stagedpkg").remove(0);
    h.kill(&victim);
    let killed = Instant::now();
    h.start("publisher");
    record(
        ledger,
        h,
        clients,
        (
            "worker killed after staging",
            format!("docker kill {victim} with its job staged, the publisher down until then"),
        ),
        &["stagedpkg".into()],
        killed,
        before,
    );
    let again = h.events("reactor").iter().any(|e| {
        e.message().starts_with("queued the build again")
            && e.str("worker") == Some(victim.as_str())
    });
    assert!(
        again,
        "the reactor never queued stagedpkg again:\n{}",
        h.log("reactor")
    );
    let builders = builders_of(h, "stagedpkg");
    assert_eq!(
        builders.len(),
        2,
        "{victim} and one other built it: {builders:?}"
    );
    h.start(&victim);
}

/// Follows host `name`'s log from `since` (seconds since the epoch) until a line holding
/// every one of `words` appears; false if none does within the build time.
fn follow_until(name: &str, since: f64, words: &[&str]) -> bool {
    use std::io::BufRead;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec timeout {} docker logs -f --since {since:.3} perestroika-hosts-{name} 2>&1",
            BUILD_TIME.as_secs()
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let found = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| words.iter().all(|w| l.contains(w)));
    let _ = child.kill();
    let _ = child.wait();
    found
}

/// Seconds since the epoch.
fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Fault 3: the publisher host killed at several points of one job's publish — as it starts
/// signing and switching, and 0.1, 0.3 and 0.7 s later — and started again each time: the
/// redelivered job completes once.
fn publisher_killed_mid_publish(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    let before = clients.seen().failed.len();
    let mut since = epoch();
    merge_deb(h, "pubkillpkg", "true");
    h.wait_for("pubkillpkg's job queued", BUILD_TIME, &PARTS, || {
        !jobs_of(h, "pubkillpkg").is_empty()
    });
    let job = jobs_of(h, "pubkillpkg").remove(0);
    let mut points = Vec::new();
    let mut first = None;
    for delay_ms in [0u64, 100, 300, 700] {
        assert!(
            follow_until("publisher", since, &[&job, "\"publishing\""]),
            "the publisher's log ended before it published {job}"
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        h.kill("publisher");
        first.get_or_insert_with(Instant::now);
        let done = built_and_published(h, "pubkillpkg").1 > 0;
        points.push(format!(
            "{delay_ms} ms{}",
            if done { " (after its switch)" } else { "" }
        ));
        since = epoch();
        h.start("publisher");
        if done {
            break;
        }
    }
    assert!(
        points.len() >= 2,
        "the publisher was killed mid-publish only at {points:?}"
    );
    record(
        ledger,
        h,
        clients,
        (
            "publisher killed mid-publish",
            format!(
                "docker kill publisher {} after its publish started, started again each time",
                points.join(", ")
            ),
        ),
        &["pubkillpkg".into()],
        first.unwrap(),
        before,
    );
}

/// Fault 6: one mirror cut off its push network while two jobs are published and synced: the
/// other mirror has them at once, the cut one converges once reachable.
fn mirror_cut_off(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    let before = clients.seen().failed.len();
    h.disconnect("mirror2", "push");
    let packages: Vec<String> = vec!["cutpkg1".into(), "cutpkg2".into()];
    for p in &packages {
        merge_deb(h, p, "true");
    }
    h.wait_for(
        "both on mirror1 while mirror2 is cut off",
        BUILD_TIME,
        &PARTS,
        || packages.iter().all(|p| !mirrored(h, 1, p).is_empty()),
    );
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        packages.iter().all(|p| mirrored(h, 2, p).is_empty()),
        "mirror2 got them while cut off"
    );
    h.reconnect("mirror2", "push", 62);
    let back = Instant::now();
    record(
        ledger,
        h,
        clients,
        (
            "mirror cut off during syncs",
            "mirror2 off the push network for two publishes and 10 s".into(),
        ),
        &packages,
        back,
        before,
    );
}

/// The base image digest in the result of each staged build of `package`.
fn base_digests_of(h: &Hosts, package: &str) -> Vec<String> {
    let jobs = jobs_of(h, package);
    (1..=3u8)
        .flat_map(|w| {
            fs_err::read_dir(h.worker_dir(w).join("staging"))
                .into_iter()
                .flatten()
        })
        .filter_map(|e| fs_err::read_to_string(e.ok()?.path().join("result.json")).ok())
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r).ok())
        .filter(|r| {
            r["job_id"]
                .as_str()
                .is_some_and(|j| jobs.iter().any(|x| x == j))
        })
        .filter_map(|r| r["image_digest"].as_str().map(str::to_owned))
        .collect()
}

/// Fault 8: the registry down while a worker starts: the only worker left running builds with
/// the base digest it resolved before, never another.
fn registry_down(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    let before = clients.seen().failed.len();
    let builder = builders_of(h, "seeddeb").remove(0);
    let digest = base_digests_of(h, "seeddeb");
    assert_eq!(
        digest.len(),
        1,
        "seeddeb's result names its base digest: {digest:?}"
    );
    let others: Vec<&str> = ["worker1", "worker2", "worker3"]
        .into_iter()
        .filter(|w| *w != builder)
        .collect();
    for w in &others {
        h.stop(w);
    }
    h.stop("registry");
    h.stop(&builder);
    h.start(&builder);
    let started = Instant::now();
    merge_deb(h, "offlinepkg", "true");
    record(
        ledger,
        h,
        clients,
        (
            "registry down",
            format!("registry stopped, {builder} restarted, the other workers stopped"),
        ),
        &["offlinepkg".into()],
        started,
        before,
    );
    assert_eq!(
        base_digests_of(h, "offlinepkg"),
        digest,
        "offlinepkg built on another base"
    );
    let offline = h.events(&builder).iter().any(|e| {
        e.message() == "the registry is unreachable; using the base digest resolved last"
            && e.str("digest") == Some(digest[0].as_str())
    });
    assert!(
        offline,
        "{builder} never found the registry unreachable:\n{}",
        h.log(&builder)
    );
    h.start("registry");
    for w in &others {
        h.start(w);
    }
}

/// Fault 7: a job whose build takes its worker down every time (the test kills the worker host
/// whenever its build runs, and starts it again): dead-lettered after the delivery limit with
/// its reason; the job merged after it is published once.
fn poison_job(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    let before = clients.seen().failed.len();
    merge_deb(h, "poisonpkg", "sleep 600");
    merge_deb(h, "afterpoison", "true");
    let first = Instant::now();
    let mut kills = Vec::new();
    let dead = |h: &Hosts| {
        worker_events(h)
            .iter()
            .any(|e| e.render().contains("times without being settled"))
    };
    while !dead(h) {
        assert!(kills.len() <= 6, "built past the delivery limit: {kills:?}");
        assert!(
            first.elapsed() < BUILD_TIME,
            "poisonpkg never dead-lettered"
        );
        let jobs = jobs_of(h, "poisonpkg");
        if let Some((w, _)) = builds().into_iter().find(|(_, j)| jobs.contains(j)) {
            let w = w.trim_start_matches("perestroika-hosts-").to_owned();
            h.kill(&w);
            h.start(&w);
            kills.push(w);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        kills.len(),
        5,
        "one kill per delivery the limit allows: {kills:?}"
    );
    let (_, poison_published) = built_and_published(h, "poisonpkg");
    assert_eq!(poison_published, 0);
    record(
        ledger,
        h,
        clients,
        (
            "poison job",
            format!("the worker building it killed {} times", kills.len()),
        ),
        &["afterpoison".into()],
        first,
        before,
    );
    h.wait_for(
        "no container of poisonpkg left",
        Duration::from_secs(120),
        &["worker1", "worker2", "worker3"],
        || {
            let jobs = jobs_of(h, "poisonpkg");
            builds().iter().all(|(_, j)| !jobs.contains(j))
        },
    );
}

#[test]
fn workers_the_publisher_a_mirror_and_the_registry_fail_and_nothing_is_lost() {
    let (h, mut clients) = seeded_farm();
    let mut ledger = Ledger::default();
    worker_killed_after_staging(&h, &clients, &mut ledger);
    publisher_killed_mid_publish(&h, &clients, &mut ledger);
    mirror_cut_off(&h, &clients, &mut ledger);
    registry_down(&h, &clients, &mut ledger);
    poison_job(&h, &clients, &mut ledger);
    ledger.judge(&mut clients);
}

/// The names of the broker nodes running as one cluster, as node 1 (or, when it is down,
/// node 2) sees them.
fn running_nodes(h: &Hosts) -> Vec<String> {
    for n in [1, 2, 3] {
        let out = h.exec(
            &format!("rabbit{n}"),
            &[
                "env",
                "HOME=/var/lib/rabbitmq",
                "/usr/lib/rabbitmq/bin/rabbitmqctl",
                "-q",
                "-n",
                &format!("rabbit@rabbit{n}"),
                "cluster_status",
                "--formatter",
                "json",
            ],
        );
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            if let Some(nodes) = v["running_nodes"].as_array() {
                return nodes
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect();
            }
        }
    }
    Vec::new()
}

/// Fault 4: a broker node stopped while a build is in flight and another merge arrives, then
/// brought back; later another node cut off the shared network the same way, then restored.
fn broker_nodes_fail(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    for (round, node, cut) in [(1, "rabbit1", false), (2, "rabbit2", true)] {
        let before = clients.seen().failed.len();
        let slow = format!("brokerslow{round}");
        let quick = format!("brokerquick{round}");
        merge_deb(h, &slow, "sleep 20");
        running_build(h, &slow);
        if cut {
            h.disconnect(node, "shared");
        } else {
            h.stop(node);
        }
        let injected = Instant::now();
        merge_deb(h, &quick, "true");
        let packages = vec![slow.clone(), quick.clone()];
        record(
            ledger,
            h,
            clients,
            (
                if cut {
                    "broker node cut off"
                } else {
                    "broker node stopped"
                },
                format!(
                    "{} {node} during a 20 s build and a merge; {} once both were published",
                    if cut {
                        "docker network disconnect shared"
                    } else {
                        "docker stop"
                    },
                    if cut { "reconnected" } else { "started again" }
                ),
            ),
            &packages,
            injected,
            before,
        );
        if cut {
            h.reconnect(node, "shared", 10 + round);
        } else {
            h.start(node);
        }
        h.wait_for(
            "three broker nodes running again",
            Duration::from_secs(180),
            &PARTS,
            || running_nodes(h).len() == 3,
        );
        for p in &packages {
            assert_eq!(builders_of(h, p).len(), 1, "{p} built once");
        }
    }
}

/// Fault 5: the reactor's SSH session to Gerrit cut twice during a burst of 50 merges — its
/// sessions killed on the Gerrit host, then the reactor off the review network for 15 s —
/// each time it opens a new one and catches up: each merge is built exactly once and
/// published once.
fn ssh_cut_during_merges(h: &Hosts, clients: &Clients, ledger: &mut Ledger) {
    let before = clients.seen().failed.len();
    let g = h.gerrit();
    let customer = h.var("PERESTROIKA_HOSTS_CUSTOMER").to_owned();
    let packages: Vec<String> = (1..=50).map(|i| format!("burst{i:02}")).collect();
    let heads: Vec<(String, String)> = packages
        .iter()
        .map(|p| {
            let project = format!("{customer}/packages/deb/bookworm/{p}");
            let head = g.push(&project, "9.0", &minimal_package(p, "true"), p);
            (project, head)
        })
        .collect();
    let sessions = || {
        h.events("reactor")
            .iter()
            .filter(|e| e.message() == "listening to gerrit stream-events")
            .count()
    };
    let before_cuts = sessions();
    let mut first = None;
    let mut off = None;
    for (i, (project, head)) in heads.iter().enumerate() {
        if i == 15 {
            let out = h.exec("gerrit", &["pkill", "-f", "gerrit-shell"]);
            assert!(out.status.success(), "no Gerrit session to cut");
            first.get_or_insert_with(Instant::now);
        }
        if i == 35 {
            h.disconnect("reactor", "review");
            off = Some(Instant::now());
        }
        if i == 45 {
            // Off for 15 s: longer than the reactor's keepalive (5 s) lets a dead session last.
            let off = off.unwrap().elapsed();
            std::thread::sleep(Duration::from_secs(15).saturating_sub(off));
            h.reconnect("reactor", "review", 30);
        }
        merge(h, project, g.next_change_number(), head);
        std::thread::sleep(Duration::from_millis(300));
    }
    record(
        ledger,
        h,
        clients,
        ("Gerrit session cut during 50 merges", "its sessions killed on the Gerrit host at merge 15; the reactor off the review network from merge 35 to 45".into()),
        &packages,
        first.unwrap(),
        before,
    );
    let twice: Vec<&String> = packages
        .iter()
        .filter(|p| builders_of(h, p).len() != 1)
        .collect();
    assert!(twice.is_empty(), "not built exactly once: {twice:?}");
    assert!(
        sessions() >= before_cuts + 2,
        "the reactor did not open a new Gerrit session after each cut:\n{}",
        h.log("reactor")
    );
}

#[test]
fn broker_nodes_and_the_gerrit_session_fail_and_nothing_is_lost() {
    let (h, mut clients) = seeded_farm();
    let mut ledger = Ledger::default();
    broker_nodes_fail(&h, &clients, &mut ledger);
    ssh_cut_during_merges(&h, &clients, &mut ledger);
    ledger.judge(&mut clients);
}
