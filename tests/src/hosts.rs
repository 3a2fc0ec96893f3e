//! The farm as hosts on this machine (`deploy/hosts`): started with `deploy/hosts/farm up`,
//! each part a container with its own addresses on the networks of its zones, removed with
//! `farm down` when dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::apt::AptRoot;
use crate::gerrit::StandIn;
use crate::{logs, repo_root};

/// The running set of hosts.
pub struct Hosts {
    /// Their configuration and state (`PERESTROIKA_HOSTS_DIR`).
    pub dir: PathBuf,
    env: HashMap<String, String>,
    /// One set at a time on this machine: its names and addresses are fixed.
    _turn: MutexGuard<'static, ()>,
}

/// Held by the running set; a test that failed with it leaves it to the next.
static TURN: Mutex<()> = Mutex::new(());

/// The zones' networks, in the order of their address's third octet (docs/hosts.md).
const ZONES: [&str; 6] = ["shared", "review", "build", "staging", "push", "public"];

/// Runs `cmd`, returning its output whatever its exit status.
fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

impl Hosts {
    /// Removes whatever an earlier run left, then brings the whole set up.
    pub fn up() -> Self {
        let dir = repo_root().join("target/hosts-test");
        let mut hosts = Self {
            dir: dir.clone(),
            env: HashMap::new(),
            _turn: TURN.lock().unwrap_or_else(|e| e.into_inner()),
        };
        hosts.farm("down");
        let _ = fs_err::remove_dir_all(&dir);
        let out = hosts.farm("up");
        assert!(
            out.status.success(),
            "deploy/hosts/farm up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        hosts.env = fs_err::read_to_string(dir.join("farm.env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        hosts
    }

    fn farm(&self, verb: &str) -> Output {
        output(
            Command::new("bash")
                .arg(repo_root().join("deploy/hosts/farm"))
                .arg(verb)
                .env("PERESTROIKA_HOSTS_DIR", &self.dir)
                // A publisher that cannot reach a job's worker asks for a rebuild after 20 s.
                .env("PERESTROIKA_HOSTS_WORKER_GONE_SECS", "20"),
        )
    }

    /// A value of `farm.env`, e.g. `PERESTROIKA_HOSTS_CUSTOMER`.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("farm.env has no {key}"))
    }

    /// The address of host number `host` (e.g. 50: the publisher) on `zone`'s network
    /// (1 shared, 2 review, 3 build, 4 staging, 5 push, 6 public).
    pub fn address(&self, zone: u8, host: u8) -> String {
        format!("{}.{zone}.{host}", self.var("PERESTROIKA_HOSTS_NET"))
    }

    /// The Gerrit stand-in's data (bind-mounted into its host).
    pub fn gerrit(&self) -> StandIn {
        StandIn::at(&self.dir.join("gerrit"))
    }

    /// The operator's public key, as the configuration pins it (not a mirror's copy).
    pub fn key(&self) -> PathBuf {
        self.dir.join("KEY.asc")
    }

    /// Runs `args` on host `name` (`perestroika-hosts-<name>`).
    pub fn exec(&self, name: &str, args: &[&str]) -> Output {
        output(
            Command::new("docker")
                .args(["exec", &format!("perestroika-hosts-{name}")])
                .args(args),
        )
    }

    /// Host `name`'s log (its processes' stdout and stderr).
    pub fn log(&self, name: &str) -> String {
        let out =
            output(Command::new("docker").args(["logs", &format!("perestroika-hosts-{name}")]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The JSON log events of host `name`.
    pub fn events(&self, name: &str) -> Vec<logs::Event> {
        logs::events(&self.log(name))
    }

    /// Runs `docker VERB [ARGS…] perestroika-hosts-<name>`, asserting success.
    fn docker(&self, verb: &[&str], name: &str) {
        let out = output(
            Command::new("docker")
                .args(verb)
                .arg(format!("perestroika-hosts-{name}")),
        );
        assert!(
            out.status.success(),
            "docker {verb:?} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills host `name` at once (SIGKILL to all its processes).
    pub fn kill(&self, name: &str) {
        self.docker(&["kill"], name);
    }

    /// Stops host `name` as an operator would (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&self, name: &str) {
        self.docker(&["stop"], name);
    }

    /// Starts host `name` again (its state and configuration as they were).
    pub fn start(&self, name: &str) {
        self.docker(&["start"], name);
    }

    /// The network of `zone` (`shared`, `review`, `build`, `staging`, `push`, `public`) and
    /// the third octet of its addresses.
    fn zone(zone: &str) -> (String, u8) {
        let n = ZONES
            .iter()
            .position(|z| *z == zone)
            .unwrap_or_else(|| panic!("no zone {zone}"));
        (format!("perestroika-hosts-{zone}"), n as u8 + 1)
    }

    /// Cuts host `name` off `zone`'s network (its address there is gone until
    /// [`Hosts::reconnect`]).
    pub fn disconnect(&self, name: &str, zone: &str) {
        let (network, _) = Self::zone(zone);
        self.docker(&["network", "disconnect", &network], name);
    }

    /// Gives host `name` its address `host` on `zone`'s network back.
    pub fn reconnect(&self, name: &str, zone: &str, host: u8) {
        let (network, n) = Self::zone(zone);
        let ip = self.address(n, host);
        self.docker(&["network", "connect", "--ip", &ip, &network], name);
    }

    /// The release's public root on mirror `m` (1 or 2), over its http on the public network.
    pub fn mirror_url(&self, m: u8) -> String {
        format!(
            "http://{}/{}/{}",
            self.address(6, 60 + m),
            self.var("PERESTROIKA_HOSTS_CUSTOMER"),
            self.var("PERESTROIKA_HOSTS_RELEASE")
        )
    }

    /// A GET of `url` from this machine (curl, 10 s at most); the body on a 2xx answer.
    pub fn get(url: &str) -> Option<String> {
        let out = output(Command::new("curl").args(["-fsS", "--max-time", "10", url]));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `script` (bash) in a throwaway client host on the public network, from base image
    /// `image`, with the pinned key at `/farm-key.asc`.
    pub fn client(&self, image: &str, script: &str) -> Output {
        let name = crate::unique("perestroika-hosts-client");
        output(
            Command::new("docker")
                .args(["run", "--rm", "--name", &name])
                .args(["--network", "perestroika-hosts-public", "-v"])
                .arg(format!("{}:/farm-key.asc:ro", self.key().display()))
                .args([image, "bash", "-c", script]),
        )
    }

    /// Waits up to `within` for `done`, failing with the named hosts' logs if it never holds.
    pub fn wait_for(&self, what: &str, within: Duration, hosts: &[&str], done: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            if Instant::now() > deadline {
                let logs: Vec<String> = hosts
                    .iter()
                    .map(|h| format!("--- {h}\n{}", logs::render(&self.log(h))))
                    .collect();
                panic!("{what}: not within {within:?}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Host path of a worker's state (the same path inside its host).
    pub fn worker_dir(&self, n: u8) -> PathBuf {
        self.dir.join(format!("worker{n}"))
    }

    /// The publisher's keyring on this machine (never mounted into another host).
    pub fn publisher_keyring(&self) -> PathBuf {
        self.dir.join("publisher/state/publisher/gnupg")
    }
}

/// What the polling clients saw: reads made, and each failed one with its output.
#[derive(Debug, Default, Clone)]
pub struct ClientReads {
    pub reads: usize,
    pub failed: Vec<String>,
}

/// apt and dnf on this machine reading the release from both mirrors over their public http,
/// in turn, about once a second each, signatures checked against the pinned key (never a
/// mirror's copy), until dropped or [`Clients::stop`]ped.
pub struct Clients {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<ClientReads>>,
    thread: Option<JoinHandle<()>>,
}

impl Clients {
    /// Starts polling the deb repository of `distro` and, unless `rpm_distro` is empty, the
    /// rpm repository of `rpm_distro` on mirrors 1 and 2 of `hosts`.
    pub fn start(hosts: &Hosts, distro: &str, rpm_distro: &str) -> Self {
        let key = hosts.key();
        let mut readers: Vec<(String, Box<dyn FnMut() -> Output + Send>)> = Vec::new();
        for m in 1..=2u8 {
            let base = hosts.mirror_url(m);
            let apt = AptRoot::new(&key, &format!("{base}/deb {distro} main"));
            readers.push((
                format!("apt from mirror{m}"),
                Box::new(move || {
                    apt.apt_get(&["update", "-q", "-o", "APT::Update::Error-Mode=any"])
                }),
            ));
            if !rpm_distro.is_empty() {
                let root = tempfile::tempdir().unwrap();
                let (key, rpm_distro) = (key.clone(), rpm_distro.to_owned());
                readers.push((
                    format!("dnf from mirror{m}"),
                    Box::new(move || dnf_makecache(root.path(), &base, &rpm_distro, &key)),
                ));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(ClientReads::default()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (what, read) in readers.iter_mut() {
                        let out = read();
                        let mut seen = seen.lock().unwrap();
                        seen.reads += 1;
                        if !out.status.success() {
                            seen.failed.push(format!(
                                "{what}: exit {:?}\n{}{}",
                                out.status.code(),
                                String::from_utf8_lossy(&out.stdout),
                                String::from_utf8_lossy(&out.stderr)
                            ));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        };
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// What was seen so far.
    pub fn seen(&self) -> ClientReads {
        self.seen.lock().unwrap().clone()
    }

    /// Stops polling (after the round in progress); returns what was seen.
    pub fn stop(&mut self) -> ClientReads {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the polling clients panicked");
        }
        self.seen()
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `dnf makecache` of the `rpm_distro` repository below `base` into `root`, its metadata
/// fetched again each time, `repomd.xml`'s signature checked against `key`.
fn dnf_makecache(root: &Path, base: &str, rpm_distro: &str, key: &Path) -> Output {
    Command::new("dnf")
        .arg(format!("--installroot={}", root.display()))
        .args(["--releasever=9", "--disablerepo=*", "-y", "-q"])
        .arg(format!(
            "--repofrompath=farm,{base}/rpm/{rpm_distro}/x86_64"
        ))
        .args([
            "--setopt=farm.gpgcheck=1",
            "--setopt=farm.repo_gpgcheck=1",
            "--setopt=farm.metadata_expire=0",
        ])
        .arg(format!("--setopt=farm.gpgkey=file://{}", key.display()))
        .args(["--enablerepo=farm", "makecache"])
        .output()
        .unwrap()
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if std::env::var_os("PERESTROIKA_HOSTS_KEEP").is_some() {
            eprintln!(
                "hosts kept up (PERESTROIKA_HOSTS_KEEP); `PERESTROIKA_HOSTS_DIR={} \
                 deploy/hosts/farm status` shows them, `… farm down` removes them",
                self.dir.display()
            );
            return;
        }
        self.farm("down");
    }
}
