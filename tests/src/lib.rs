//! Harness for the end-to-end tests: the binaries under test, private service instances, and
//! throwaway farm configurations. Every helper fails loudly when a service is missing; nothing
//! is skipped silently.

pub mod apt;
pub mod cut_proxy;
pub mod debian;
pub mod gerrit;
pub mod hosts;
pub mod logs;
pub mod rabbit;
pub mod registry;
pub mod rsyncd;
pub mod whole;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

/// A broker URL nothing listens on, for farms whose commands never connect to one.
pub const NO_BROKER: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

/// Path of a workspace binary, built by `cargo build --workspace` before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` before the integration tests",
        path.display()
    );
    path
}

/// Runs a workspace binary with arguments and returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// Asserts that a command's run succeeded, showing its standard error otherwise.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command, asserting success; returns its standard output.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command; its standard output, or an error naming the command with its output
/// (for the examples, which report failures instead of panicking).
pub fn try_sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("{cmd:?}: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits up to ten seconds until something listens on `addr` (`host:port`); on timeout,
/// fails with `what` and the log `log` returns.
pub fn wait_for_listener(addr: &str, what: &str, log: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {addr}:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A name no other test uses, for customers and queues on a shared broker.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The reports `perestroika-queue --json rebuild-release` printed (its output named when
/// they cannot be read).
pub fn rebuild_reports(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Asserts that a `rebuild-release` succeeded and rebuilt exactly `sources`, each identically.
pub fn assert_rebuilt_identically(out: &Output, reports: &[serde_json::Value], sources: &[&str]) {
    assert!(
        out.status.success(),
        "{reports:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rebuilt: Vec<&str> = reports
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    rebuilt.sort_unstable();
    assert_eq!(rebuilt, sources);
    for r in reports {
        assert_eq!(r["result"], "succeeded", "{r:#}");
        assert_eq!(r["identical"], true, "{r:#}");
    }
}

/// Every file (and link) below `dir`, never following links into other directories; nothing
/// when `dir` cannot be read.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A farm configuration in a temporary directory, pointing at `amqp_url`, with one customer
/// (a unique name) and one release `9.0` building for bookworm.
pub struct Farm {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub customer: String,
    pub config: perestroika_config::FarmConfig,
}

impl Farm {
    /// The customer's directory of the public root: its releases' trees, `review/`, `topic/`
    /// and the generations (`.<version>.gen`).
    pub fn customer_root(&self) -> PathBuf {
        self.config.paths.public_root.join(&self.customer)
    }

    /// Where the publisher records what became of job `job_id` (its own state, never
    /// staging).
    pub fn publisher_record(&self, job_id: &str) -> PathBuf {
        self.config
            .paths
            .state
            .join("publisher/records")
            .join(format!("{job_id}.json"))
    }

    /// The public tree of this farm's release `9.0` (what clients read).
    pub fn release_tree(&self) -> PathBuf {
        self.customer_root().join("9.0")
    }

    /// `perestroika-publisher include` of `files` into this farm's release `9.0` for `distro`,
    /// with `extra` arguments (such as `--review 77`); run it with `.output()`.
    pub fn include(&self, distro: &str, extra: &[&str], files: &[&Path]) -> Command {
        let mut cmd = Command::new(bin("perestroika-publisher"));
        cmd.arg("--config")
            .arg(&self.path)
            .args(["include", "--customer", &self.customer])
            .args(["--version", "9.0", "--distro", distro])
            .args(extra)
            .args(files)
            .env_remove("RUST_LOG");
        cmd
    }

    /// [`Farm::include`] of `files` for `distro`, asserting that it succeeded.
    pub fn publish<P: AsRef<Path>>(&self, distro: &str, files: &[P]) {
        let files: Vec<&Path> = files.iter().map(AsRef::as_ref).collect();
        let out = self.include(distro, &[], &files).output().unwrap();
        assert!(
            out.status.success(),
            "publishing failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `perestroika-mirror serve` of `root` over http on a free loopback port, started with
    /// this farm's configuration; its daemon and URL, once it listens.
    pub fn serve_mirror(&self, root: &Path) -> (Daemon, String) {
        let addr = format!("127.0.0.1:{}", free_port());
        let daemon = Daemon::start(
            "perestroika-mirror",
            &[
                "--config",
                self.path.to_str().unwrap(),
                "serve",
                "--root",
                root.to_str().unwrap(),
                "--http",
                &addr,
            ],
            &self.dir.path().join(format!("{}.log", unique("serve"))),
        );
        wait_for_listener(&addr, "perestroika-mirror serve", || daemon.output());
        (daemon, format!("http://{addr}"))
    }

    /// Starts daemon `name` (`perestroika-worker`, `-publisher`, …) on this farm's
    /// configuration (`--config <farm.toml> run`), logging to `log` in the farm's directory.
    pub fn daemon(&self, name: &str, log: impl AsRef<Path>) -> Daemon {
        Daemon::start(
            name,
            &["--config", self.path.to_str().unwrap(), "run"],
            &self.dir.path().join(log),
        )
    }

    /// Starts a worker of this farm whose state (containers, scratch, git cache) is its own,
    /// as on a host of its own, with `paths` lines added to its `[paths]` and reaching the
    /// broker at `broker_url` (the farm's when `None`); returns once it takes jobs.
    pub fn own_worker(
        &self,
        name: &str,
        env: &[(&str, &str)],
        paths: &str,
        broker_url: Option<&str>,
    ) -> Daemon {
        let text = fs_err::read_to_string(&self.path).unwrap();
        let state = self.dir.path().join(format!("state-{name}"));
        let url = broker_url.unwrap_or(&self.config.broker.url);
        let text = text
            .replace(
                &format!("state = \"{}\"", self.config.paths.state.display()),
                &format!("state = \"{}\"\n{paths}", state.display()),
            )
            .replace(
                &format!("url = \"{}\"", self.config.broker.url),
                &format!("url = \"{url}\""),
            );
        let path = self.dir.path().join(format!("{name}.toml"));
        fs_err::write(&path, text).unwrap();
        let log = self.dir.path().join(format!("{name}.log"));
        let daemon = Daemon::start_with_env(
            "perestroika-worker",
            &["--config", path.to_str().unwrap(), "run"],
            env,
            &log,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.output().contains("taking build jobs") {
            assert!(
                Instant::now() < deadline,
                "the worker {name} does not take jobs:\n{}",
                daemon.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    /// `perestroika-queue bootstrap` of this farm's queues, asserting that it succeeded.
    pub fn bootstrap(&self) {
        let out = run(
            "perestroika-queue",
            &["--config", self.path.to_str().unwrap(), "bootstrap"],
        );
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A farm whose `[broker]` section also holds `extra`.
    pub fn new(amqp_url: &str, extra: &str) -> Self {
        Self::with_sections(amqp_url, extra, "")
    }

    /// Like [`Farm::new`], with more TOML sections appended (e.g. `[build]`).
    pub fn with_sections(amqp_url: &str, extra: &str, sections: &str) -> Self {
        Self::custom(
            amqp_url,
            extra,
            sections,
            r#"{ name = "9.0", deb = ["bookworm"] }"#,
        )
    }

    /// Like [`Farm::with_sections`], with the customer's release `9.0` written as `release`
    /// (an inline TOML table).
    pub fn custom(amqp_url: &str, extra: &str, sections: &str, release: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let customer = unique("c");
        let root = dir.path().display();
        let text = format!(
            r#"
[broker]
url = "{amqp_url}"
reconnect_max_secs = 2
{extra}
[paths]
public_root = "{root}/public"
staging = "{root}/staging"
state = "{root}/state"

{sections}

[[customers]]
name = "{customer}"
versions = [{release}]
"#
        );
        let path = dir.path().join("farm.toml");
        fs_err::write(&path, text).expect("write config");
        let config = perestroika_config::FarmConfig::load_with_env(&path, Vec::new())
            .expect("test configuration loads");
        Self {
            dir,
            path,
            customer,
            config,
        }
    }
}

/// A daemon started by a test, killed (SIGKILL) when dropped. It logs JSON lines
/// (`PERESTROIKA_LOG_FORMAT=json`): [`Daemon::events`] reads them, [`Daemon::output`] renders
/// them as text.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts a workspace binary with arguments, logging JSON; its stderr and stdout go to
    /// `log`.
    pub fn start(name: &str, args: &[&str], log: &Path) -> Self {
        Self::start_with_env(name, args, &[], log)
    }

    /// [`Daemon::start`] with more environment variables (e.g. a crash point).
    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let file = fs_err::File::create(log).expect("daemon log");
        let child = Command::new(bin(name))
            .args(args)
            .env("RUST_LOG", "info")
            .env("PERESTROIKA_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(file.try_clone().expect("clone").into_parts().0)
            .stderr(file.into_parts().0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            log: log.to_owned(),
        }
    }

    /// Kills the daemon at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the daemon logged so far, as it wrote it (JSON lines and anything else).
    pub fn raw_output(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the daemon logged so far, its JSON events rendered as text lines.
    pub fn output(&self) -> String {
        logs::render(&self.raw_output())
    }

    /// The events the daemon logged so far.
    pub fn events(&self) -> Vec<logs::Event> {
        logs::events(&self.raw_output())
    }

    /// Waits (30 s at most) until the daemon has logged `needle` `times` times.
    pub fn wait_for_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.output().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "{} never logged {needle:?} {times} times:\n{}",
                self.log.display(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Consumes messages from `queue` until `done` says so (or 60 s are up), acknowledging
/// them; then keeps listening for `quiet` to catch extras.
pub async fn collect<M: perestroika_protocol::messages::Message>(
    broker: &perestroika_protocol::broker::Broker,
    queue: &str,
    done: impl Fn(&[M]) -> bool,
    quiet: Duration,
) -> Vec<M> {
    use futures_util::StreamExt;
    let (_channel, mut consumer) = broker.consume(queue, 500).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_until = None;
    loop {
        if quiet_until.is_none() && done(&got) {
            quiet_until = Some(Instant::now() + quiet);
        }
        let until = quiet_until.unwrap_or(deadline);
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                d.ack(lapin::options::BasicAckOptions::default())
                    .await
                    .unwrap();
                got.push(M::from_bytes(&d.data).unwrap());
            }
            _ => break,
        }
    }
    got
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The AMQP URL of the broker `.ci/test` started for the suite.
pub fn shared_amqp_url() -> String {
    std::env::var("FARM_TEST_AMQP_URL").expect(
        "FARM_TEST_AMQP_URL is not set: run the suite with `.ci/test`, which starts RabbitMQ \
         and sets it (or start one with `.ci/rabbitmq start DIR PORT` and export its URL)",
    )
}

/// A manual build job of release `9.0` of `customer` for `package` on bookworm, from one
/// repository holding code and packaging (`url` at `commit`).
pub fn combined_job(
    customer: &str,
    package: &str,
    url: &str,
    commit: &str,
    rebuild: u32,
) -> perestroika_protocol::messages::BuildJob {
    combined_job_for(
        customer,
        package,
        (perestroika_config::Family::Deb, "bookworm"),
        url,
        commit,
        rebuild,
    )
}

/// Like [`combined_job`], for another (family, distro).
pub fn combined_job_for(
    customer: &str,
    package: &str,
    (family, distro): (perestroika_config::Family, &str),
    url: &str,
    commit: &str,
    rebuild: u32,
) -> perestroika_protocol::messages::BuildJob {
    combined_job_in(
        customer,
        "9.0",
        package,
        (family, distro),
        url,
        commit,
        rebuild,
    )
}

/// Like [`combined_job_for`], for release `version` (its branch of the same name).
pub fn combined_job_in(
    customer: &str,
    version: &str,
    package: &str,
    (family, distro): (perestroika_config::Family, &str),
    url: &str,
    commit: &str,
    rebuild: u32,
) -> perestroika_protocol::messages::BuildJob {
    use perestroika_protocol::messages::{
        BuildJob, GitSource, Sources, Target, Trigger, TriggerKind,
    };
    BuildJob::new(
        customer,
        version,
        package,
        family,
        distro,
        Sources::Combined {
            repo: GitSource {
                project: format!("{customer}/packages/{family}/{distro}/{package}"),
                url: url.to_owned(),
                branch: version.to_owned(),
                commit: commit.to_owned(),
                fetch_ref: None,
            },
        },
        Target::Release,
        rebuild,
        Trigger {
            kind: TriggerKind::Manual,
            change: None,
            patchset: None,
            event_time: None,
        },
    )
}
