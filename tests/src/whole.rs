//! The whole farm on one host for the end-to-end tests: the Gerrit stand-in, the four daemons
//! (reactor, worker, publisher, mirror) with a signed release, a local mirror target and the
//! mirror's http server.

use crate::assert_success;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::apt::{signed_farm_on, OperatorKey};
use crate::debian::{base_image, package_cache};
use crate::gerrit::{ChangeSpec, Gerrit};
use crate::logs;
use crate::{free_port, run, sh, shared_amqp_url, wait_for_listener, Daemon, Farm};

/// The branch of the greet example's code and packaging projects.
pub const SPLIT_BRANCH: &str = "openstack-ci/fuel-9.0/mitaka";

/// Patch set `patch_set` of change `number` of `project` on `branch`, at `revision`.
pub fn change(
    project: &str,
    branch: &str,
    number: u64,
    patch_set: u32,
    revision: &str,
) -> ChangeSpec {
    ChangeSpec {
        project: project.to_owned(),
        branch: branch.to_owned(),
        number,
        patch_set,
        revision: revision.to_owned(),
        topic: None,
    }
}

/// Pushes the greet example (code printing `greeting`, and its packaging) to the stand-in
/// as the farm customer's projects; returns the code and packaging projects and the
/// packaging's head.
pub fn push_greet(f: &WholeFarm, greeting: &str) -> (String, String, String) {
    let c = &f.farm.customer;
    let code = format!("{c}/openstack/greet");
    let packaging = format!("{c}/openstack-build/greet");
    f.gerrit.push(
        &code,
        SPLIT_BRANCH,
        &crate::debian::greet_code(greeting),
        "code",
    );
    let head = f.gerrit.push(
        &packaging,
        SPLIT_BRANCH,
        &crate::debian::greet_packaging(),
        "packaging",
    );
    (code, packaging, head)
}

/// A running farm. Dropping it stops every daemon and the stand-in.
pub struct WholeFarm {
    pub key: OperatorKey,
    pub farm: Farm,
    pub gerrit: Gerrit,
    /// The local mirror target's directory.
    pub mirror: PathBuf,
    _mirror_dir: tempfile::TempDir,
    /// The mirror's http server, e.g. `http://127.0.0.1:8123`.
    pub http: String,
    pub reactor: Daemon,
    pub worker: Daemon,
    pub publisher: Daemon,
    pub mirror_daemon: Daemon,
    _server: Daemon,
}

impl WholeFarm {
    /// Starts everything for a release `9.0` of bookworm of a fresh customer.
    pub fn start() -> Self {
        Self::start_with(crate::apt::BOOKWORM_RELEASE)
    }

    /// Starts everything with `release` (a TOML inline table) as the customer's release 9.0.
    pub fn start_with(release: &str) -> Self {
        Self::start_on(&shared_amqp_url(), "", release)
    }

    /// [`WholeFarm::start_with`] on the broker at `amqp_url`, with `broker_extra` lines in
    /// `[broker]` (e.g. a cluster's other nodes).
    pub fn start_on(amqp_url: &str, broker_extra: &str, release: &str) -> Self {
        base_image("bookworm");
        let gerrit = Gerrit::start();
        let key = OperatorKey::new();
        let mirror_tmp = tempfile::tempdir().unwrap();
        let mirror_dir = mirror_tmp.path().to_owned();
        let addr = format!("127.0.0.1:{}", free_port());
        let farm = signed_farm_on(
            amqp_url,
            broker_extra,
            &[&key],
            &format!(
                "{}\n[build]\npackage_cache = \"{}\"\ntimeout_secs = 900\n\n\
                 [[mirrors]]\nname = \"local\"\ntarget = \"{}\"\nhttp_url = \"http://{addr}\"\n",
                gerrit.config_section(),
                package_cache(),
                mirror_dir.display()
            ),
            release,
        );
        let cfg = farm.path.to_str().unwrap().to_owned();
        let out = run("perestroika-queue", &["--config", &cfg, "bootstrap"]);
        assert_success(&out);
        let log = |name: &str| farm.dir.path().join(format!("{name}.log"));
        let daemon = |bin: &str, args: &[&str], name: &str| {
            let mut all = vec!["--config", cfg.as_str()];
            all.extend_from_slice(args);
            Daemon::start(bin, &all, &log(name))
        };
        let reactor = daemon("perestroika-reactor", &["run"], "reactor");
        let worker = daemon("perestroika-worker", &["run"], "worker");
        let publisher = daemon("perestroika-publisher", &["run"], "publisher");
        let mirror_daemon = daemon("perestroika-mirror", &["run"], "mirror");
        let server = daemon(
            "perestroika-mirror",
            &[
                "serve",
                "--root",
                mirror_dir.to_str().unwrap(),
                "--http",
                &addr,
            ],
            "serve",
        );
        wait_for_listener(&addr, "perestroika-mirror serve", || server.output());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reactor
            .output()
            .contains("listening to gerrit stream-events")
        {
            assert!(
                Instant::now() < deadline,
                "the reactor did not start:\n{}",
                reactor.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gerrit.wait_for_streams(1);
        Self {
            key,
            farm,
            gerrit,
            mirror: mirror_dir,
            _mirror_dir: mirror_tmp,
            http: format!("http://{addr}"),
            reactor,
            worker,
            publisher,
            mirror_daemon,
            _server: server,
        }
    }

    /// Stops the publisher and starts it again with `env` (e.g. a crash point); its log goes
    /// to a new file.
    pub fn restart_publisher(&mut self, env: &[(&str, &str)]) {
        self.publisher.kill();
        let cfg = self.farm.path.to_str().unwrap().to_owned();
        let log = self
            .farm
            .dir
            .path()
            .join(format!("publisher-{}.log", crate::unique("r")));
        self.publisher = Daemon::start_with_env(
            "perestroika-publisher",
            &["--config", &cfg, "run"],
            env,
            &log,
        );
    }

    /// Waits up to `within` for `done`, failing with every daemon's log if it never holds.
    pub fn wait_for(&self, what: &str, within: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}\n--- reactor\n{}\n--- worker\n{}\n--- publisher\n{}",
                self.reactor.output(),
                self.worker.output(),
                self.publisher.output(),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tree of the release (`<customer>/9.0`) or of a review (`<customer>/review/<n>`).
    pub fn tree(&self, sub: &str) -> String {
        format!("{}/{sub}", self.farm.customer)
    }

    /// Emits `kind` (`change-merged`, `patchset-created`, `change-abandoned`) of `change` and
    /// records the change for `gerrit query`; returns when it was emitted.
    pub fn event(&self, change: &ChangeSpec, kind: &str) -> DateTime<Utc> {
        let status = match kind {
            "change-merged" => "MERGED",
            "change-abandoned" => "ABANDONED",
            _ => "NEW",
        };
        self.gerrit.record(&change.row(status));
        let at = Utc::now();
        self.gerrit.emit(&change.event(kind, json!({})));
        at
    }

    /// Waits until the mirror's status says `tree` is live at a generation of at least
    /// `generation` (0: retired) on the local target; returns the synced generation.
    pub fn wait_mirrored(&self, tree: &str, generation: u64, within: Duration) -> u64 {
        let status = self.farm.config.paths.state.join("mirror/status.json");
        let deadline = Instant::now() + within;
        loop {
            let synced = fs_err::read(&status)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["local"][tree]["synced"].as_u64());
            match synced {
                Some(g) if generation == 0 && g == 0 => return 0,
                Some(g) if generation > 0 && g >= generation => return g,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "{tree} not mirrored at generation {generation} within {within:?}\n\
                 --- reactor\n{}\n--- worker\n{}\n--- publisher\n{}\n--- mirror\n{}",
                self.reactor.output(),
                self.worker.output(),
                self.publisher.output(),
                self.mirror_daemon.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Installs `packages` with apt in a fresh container of the bookworm base image, from the
    /// mirror's http server, trusting only the mirrored `KEY.asc`; runs `check` after and
    /// returns its output.
    pub fn apt_install_from_mirror(&self, packages: &[&str], check: &str) -> String {
        let image = base_image("bookworm");
        let tree = self.tree("9.0");
        let key = self.mirror.join(&tree).join("KEY.asc");
        assert!(key.is_file(), "the mirror has no {tree}/KEY.asc");
        let line = format!(
            "deb [signed-by=/farm-key.asc] {}/{tree}/deb bookworm main",
            self.http
        );
        let script = format!(
            "set -e; echo '{line}' > /etc/apt/sources.list.d/farm.list; \
             apt-get update -q -o APT::Update::Error-Mode=any \
               -o Dir::Etc::SourceList=/etc/apt/sources.list.d/farm.list -o Dir::Etc::SourceParts=- >&2; \
             DEBIAN_FRONTEND=noninteractive apt-get install -y -q {} >&2; {check}",
            packages.join(" ")
        );
        sh(Command::new("docker")
            .args(["run", "--rm", "--network", "host", "-v"])
            .arg(format!("{}:/farm-key.asc:ro", key.display()))
            .args([&image, "sh", "-c", &script]))
    }

    /// The versions of `package` in the mirrored tree's bookworm `Packages` index.
    pub fn mirrored_versions(&self, sub: &str, package: &str) -> Vec<String> {
        self.mirrored_versions_in(sub, "bookworm", package)
    }

    /// The versions of `package` in the mirrored tree's `suite` `Packages` index; fails when
    /// the index is missing (an empty answer must mean "not published there").
    pub fn mirrored_versions_in(&self, sub: &str, suite: &str, package: &str) -> Vec<String> {
        let packages = perestroika_tree::GenerationDir::new(self.mirror.join(self.tree(sub)))
            .deb_suite(suite)
            .join("main/binary-amd64/Packages");
        let text = fs_err::read_to_string(&packages)
            .unwrap_or_else(|e| panic!("the mirror has no {suite} index of {sub}: {e}"));
        perestroika_formats::deb822::parse(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", packages.display()))
            .iter()
            .filter(|stanza| stanza.get("Package") == Some(package))
            .filter_map(|stanza| stanza.get("Version").map(str::to_owned))
            .collect()
    }

    /// The stages of one job from the event to the mirror, read from the daemons' JSON log
    /// events (their `job`, `stage`, `tree` and `generation` fields).
    pub fn trace(&self, emitted: DateTime<Utc>, job: &str, tree: &str) -> StageTrace {
        let daemons = [
            &self.reactor,
            &self.worker,
            &self.publisher,
            &self.mirror_daemon,
        ];
        let events = daemons.map(Daemon::events);
        StageTrace::from_events(emitted, job, tree, events.each_ref().map(Vec::as_slice))
            .unwrap_or_else(|missing| {
                panic!(
                    "{missing}:\n--- reactor\n{}\n--- worker\n{}\n--- publisher\n{}\n--- mirror\n{}",
                    daemons[0].output(),
                    daemons[1].output(),
                    daemons[2].output(),
                    daemons[3].output()
                )
            })
    }

    /// The build jobs the reactor queued, in order (retirements left out).
    pub fn queued_jobs(&self) -> Vec<String> {
        logs::queued_build_jobs(&self.reactor.events())
    }
}

/// When each stage of a job happened.
#[derive(Debug, Clone)]
pub struct StageTrace {
    pub emitted: DateTime<Utc>,
    pub queued: DateTime<Utc>,
    pub build_started: DateTime<Utc>,
    pub built: DateTime<Utc>,
    pub published: DateTime<Utc>,
    pub mirrored: DateTime<Utc>,
}

impl StageTrace {
    /// The stages of job `job` of tree `tree` (`<customer>/<version>`), its event emitted at
    /// `emitted`, from the JSON log events of the reactor, worker, publisher and mirror, in
    /// that order; or which event is missing.
    pub fn from_events(
        emitted: DateTime<Utc>,
        job: &str,
        tree: &str,
        [reactor, worker, publisher, mirror]: [&[logs::Event]; 4],
    ) -> Result<Self, String> {
        let event = |events: &[logs::Event], stage: &str, end: bool| {
            let found = if end {
                logs::ended(events, job, stage)
            } else {
                logs::started(events, job, stage)
            };
            found.map(|e| e.timestamp).ok_or_else(|| {
                let how = if end { "ending" } else { "starting" };
                format!("no event of job {job} {how} stage {stage}")
            })
        };
        let published = logs::ended(publisher, job, "publish")
            .ok_or_else(|| format!("no event of job {job} ending stage publish"))?;
        let generation = published
            .number("generation")
            .ok_or("the publisher logs no generation")?;
        let mirrored = mirror
            .iter()
            .find(|e| {
                e.ends("mirror")
                    && e.str("tree") == Some(tree)
                    && e.number("generation") == Some(generation)
            })
            .ok_or_else(|| format!("no event of {tree} generation {generation} in sync"))?;
        Ok(Self {
            emitted,
            queued: event(reactor, "queued", false)?,
            build_started: event(worker, "build", false)?,
            built: event(worker, "build", true)?,
            published: published.timestamp,
            mirrored: mirrored.timestamp,
        })
    }

    /// (stage, seconds) in order.
    pub fn stages(&self) -> Vec<(&'static str, f64)> {
        let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds() as f64 / 1000.0;
        vec![
            ("event -> queued", secs(self.emitted, self.queued)),
            (
                "queued -> build start",
                secs(self.queued, self.build_started),
            ),
            ("build", secs(self.build_started, self.built)),
            ("publish", secs(self.built, self.published)),
            ("mirror", secs(self.published, self.mirrored)),
            ("total", secs(self.emitted, self.mirrored)),
        ]
    }
}

impl std::fmt::Display for StageTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (stage, secs) in self.stages() {
            writeln!(f, "  {stage:<24} {secs:>8.3} s")?;
        }
        Ok(())
    }
}

/// Unpacks a Debian source package (patches unapplied, as a packaging repository keeps it).
pub fn unpacked_source(dsc: &Path, into: &Path) -> PathBuf {
    let dir = into.join("tree");
    sh(Command::new("dpkg-source")
        .args(["--no-check", "--skip-patches", "-x"])
        .arg(dsc)
        .arg(&dir));
    dir
}
