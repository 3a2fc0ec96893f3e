//! The farm as hosts on this machine (`deploy/hosts`): started with `deploy/hosts/farm up`,
//! each part a container with its own addresses on the networks of its zones, removed with
//! `farm down` when dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::gerrit::StandIn;
use crate::{logs, repo_root};

/// The running set of hosts.
pub struct Hosts {
    /// Their configuration and state (`PERESTROIKA_HOSTS_DIR`).
    pub dir: PathBuf,
    env: HashMap<String, String>,
}

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
                .env("PERESTROIKA_HOSTS_DIR", &self.dir),
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

    /// Kills host `name` at once (SIGKILL to all its processes).
    pub fn kill(&self, name: &str) {
        let out =
            output(Command::new("docker").args(["kill", &format!("perestroika-hosts-{name}")]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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

impl Drop for Hosts {
    fn drop(&mut self) {
        if std::env::var_os("PERESTROIKA_HOSTS_KEEP").is_some() {
            eprintln!(
                "hosts kept up (PERESTROIKA_HOSTS_KEEP); `deploy/hosts/farm down` removes them"
            );
            return;
        }
        self.farm("down");
    }
}
