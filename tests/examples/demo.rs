//! The demo's main job, run by `.ci/demo` once it has started the farm on this host (the
//! broker, the package cache, the Gerrit stand-in's sshd and the four daemons): the example's
//! code is pushed to the stand-in and its packaging uploaded as a change; the change is
//! reviewed, then submitted; the merge is built, published into `bookworm-proposed` and
//! mirrored; the stage times are printed; the package is promoted to `bookworm-updates` and
//! installed from there with apt from the mirror, signature checks on, set up with the lines
//! `perestroika-queue client` prints.
//!
//! Re-running it is harmless: unchanged code is not pushed again, a version already on the
//! mirror is not merged again, and promoting it again changes nothing. Exit code 0 when the
//! package was installed, 1 when a step failed, 2 on bad usage.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::Utc;
use clap::Parser;
use perestroika_tests::debian::{base_image, greet_packaging};
use perestroika_tests::gerrit::StandIn;
use perestroika_tests::logs;
use perestroika_tests::whole::StageTrace;
use perestroika_tests::{bin, repo_root, try_sh as run};
use perestroika_worker::deb::changelog::parse_head;
use perestroika_worker::version::{farm_version, Counts};

/// The demo's customer, release and the branch its projects use.
const CUSTOMER: &str = "demo";
const RELEASE: &str = "1.0";
const TREE: &str = "demo/1.0";
const BRANCH: &str = "openstack-ci/fuel-1.0/bookworm";
const CODE_PROJECT: &str = "demo/openstack/greet";
const PACKAGING_PROJECT: &str = "demo/openstack-build/greet";

/// Runs the demo's main job against a farm `.ci/demo` started.
#[derive(Parser)]
#[command(name = "demo")]
struct Args {
    /// The demo's state directory, as `.ci/demo` laid it out: `farm.toml`, `gerrit/` (the
    /// stand-in's data), `logs/` (the daemons' logs), `client/`.
    #[arg(long, default_value = "target/demo")]
    root: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match Demo::new(&args.root).and_then(|demo| demo.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Demo {
    root: PathBuf,
    config: PathBuf,
    logs: PathBuf,
    gerrit: StandIn,
    /// The mirror's http server, e.g. `http://127.0.0.1:8642`.
    http: String,
}

impl Demo {
    fn new(root: &Path) -> Result<Self> {
        let root = std::path::absolute(root)?;
        let config = root.join("farm.toml");
        let farm = perestroika_config::FarmConfig::load_with_env(&config, Vec::new())
            .with_context(|| format!("{}: run `.ci/demo`, which writes it", config.display()))?;
        let http = perestroika_config::client::public_url(&farm)
            .context("the demo's configuration names no mirror http_url")?;
        Ok(Self {
            config,
            logs: root.join("logs"),
            gerrit: StandIn::at(&root.join("gerrit")),
            http,
            root,
        })
    }

    fn run(&self) -> Result<()> {
        println!("== base image");
        println!("   {}", base_image("bookworm"));
        ensure!(
            self.gerrit.wait_for_live_stream(Duration::from_secs(10)),
            "no stream-events session reached the Gerrit stand-in; see {}",
            self.logs.join("reactor.log").display()
        );
        println!("== the example's code, pushed to the stand-in");
        let examples = repo_root().join("worker/examples/greet");
        let code = self.gerrit.push_dir_if_changed(
            CODE_PROJECT,
            BRANCH,
            &examples.join("code"),
            CODE_PROJECT,
        );
        let merged = self
            .gerrit
            .branch_head(PACKAGING_PROJECT, BRANCH)
            .map(|head| self.version(&code, &head))
            .transpose()?;
        let version = match merged {
            Some(v) if self.on_mirror("bookworm-proposed", &v)? => {
                println!(
                    "== greet {v} is already built, published into bookworm-proposed and \
                     mirrored: nothing to merge"
                );
                v
            }
            _ => self.review_and_merge(&code)?,
        };
        self.promote(&version)?;
        self.install()
    }

    /// The version the farm gives a release build of `code` with packaging `packaging`.
    fn version(&self, code: &str, packaging: &str) -> Result<String> {
        let changelog = fs_err::read_to_string(
            repo_root().join("worker/examples/greet/packaging/debian/changelog"),
        )?;
        let base = parse_head(&changelog)?.version;
        let counts = Counts::Split {
            code: self.gerrit.commit_count(CODE_PROJECT, code),
            packaging: self.gerrit.commit_count(PACKAGING_PROJECT, packaging),
        };
        Ok(farm_version(&base, false, counts, 0, false).to_string())
    }

    /// Uploads the packaging as a change, waits for the farm's review, submits it and waits
    /// until the merge's build is on the mirror; prints where the time went. Returns the
    /// version built.
    fn review_and_merge(&self, code: &str) -> Result<String> {
        let number = self.gerrit.next_change_number();
        let change = self
            .gerrit
            .upload(PACKAGING_PROJECT, BRANCH, (number, 1), &greet_packaging());
        let version = self.version(code, &change.revision)?;
        println!(
            "== uploaded change {number} of {PACKAGING_PROJECT} (packaging {}, code {code}) for review",
            change.revision
        );
        println!("   the farm builds the patch set into {CUSTOMER}/review/{number} and reports on the change");
        let target = format!("{number},1");
        self.wait("a review of the change", Duration::from_secs(600), || {
            Ok(self.reviews_of(&target).next().is_some())
        })?;
        if let Some(message) = self.reviews_of(&target).last() {
            println!("{}", indent(&message));
        }
        println!(
            "== submitting change {number} (gerrit review {target} --submit): the stand-in \
             merges it and sends ref-updated and change-merged"
        );
        let emitted = Utc::now();
        self.gerrit
            .submit(number, 1)
            .map_err(|e| anyhow::anyhow!("gerrit review {target} --submit: {e}"))?;
        println!(
            "   waiting for greet {version} in bookworm-proposed on the mirror (logs in {}/)",
            self.logs.display()
        );
        let mut last_progress = Instant::now();
        self.wait(
            "greet on bookworm-proposed",
            Duration::from_secs(600),
            || {
                if last_progress.elapsed() > Duration::from_secs(25) {
                    last_progress = Instant::now();
                    let log = logs::render(&self.log("worker"));
                    let line = log.lines().last().unwrap_or_default();
                    println!("   … {}", line.chars().take(150).collect::<String>());
                }
                self.on_mirror("bookworm-proposed", &version)
            },
        )?;
        self.print_stage_times(emitted)?;

        // What the farm reported on the merged change (the stand-in records `gerrit review`).
        let feedback = || self.reviews_of(&target).count() >= 2;
        let _ = self.wait("feedback", Duration::from_secs(10), || Ok(feedback()));
        match self
            .reviews_of(&target)
            .nth(1)
            .and(self.reviews_of(&target).last())
        {
            Some(message) => {
                println!("== the farm's message on the merged change (gerrit review {target}):");
                println!("{}", indent(&message));
            }
            None => println!(
                "   (no feedback reached the stand-in yet; see {})",
                self.logs.join("reactor.log").display()
            ),
        }
        Ok(version)
    }

    /// Event → queued → build → publish → mirror, from the daemons' JSON log events.
    fn print_stage_times(&self, emitted: chrono::DateTime<Utc>) -> Result<()> {
        let job = logs::queued_build_jobs(&self.events("reactor"))
            .pop()
            .context("the reactor logged no queued build job")?;
        // The mirror logs the sync's end just after the new tree went live.
        let mut trace = Err(String::new());
        let _ = self.wait("the mirror's event", Duration::from_secs(5), || {
            let events = ["reactor", "worker", "publisher", "mirror"].map(|d| self.events(d));
            trace =
                StageTrace::from_events(emitted, &job, TREE, events.each_ref().map(Vec::as_slice));
            Ok(trace.is_ok())
        });
        let trace = trace.map_err(|missing| anyhow::anyhow!("{missing} in the daemons' logs"))?;
        for (stage, secs) in trace.stages() {
            println!("   {stage:<24} {secs:>8.2} s");
        }
        Ok(())
    }

    fn promote(&self, version: &str) -> Result<()> {
        println!(
            "== promoting greet from bookworm-proposed to bookworm-updates: the same files, \
             re-signed and mirrored"
        );
        let args = ["promote", CUSTOMER, RELEASE, "greet", "--to", "updates"];
        println!("   perestroika-queue {}", args.join(" "));
        // What it prints and logs, in the order an operator's terminal shows them.
        let output = self.root.join("logs/promote.out");
        let file = fs_err::File::create(&output)?;
        let status = self
            .queue_command(&args)
            .stdout(file.file().try_clone()?)
            .stderr(file.into_parts().0)
            .status()?;
        print!("{}", indent(&fs_err::read_to_string(&output)?));
        ensure!(status.success(), "perestroika-queue promote failed");
        self.wait("greet on bookworm-updates", Duration::from_secs(60), || {
            self.on_mirror("bookworm-updates", version)
        })
    }

    /// Installs greet in a fresh container of the base image, with the lines
    /// `perestroika-queue client` prints.
    fn install(&self) -> Result<()> {
        println!(
            "== installing greet with apt from bookworm-updates on the mirror, signature \
             checks on, in a fresh container"
        );
        let out = self.queue(&["client", CUSTOMER, RELEASE, "--suite", "updates"])?;
        ensure!(out.status.success(), "perestroika-queue client failed");
        let client = String::from_utf8(out.stdout)?;
        let fetch_key: Vec<&str> = client
            .lines()
            .filter(|l| l.starts_with("install -d") || l.starts_with("curl "))
            .collect();
        let add_line = client
            .lines()
            .find(|l| l.starts_with("echo 'deb "))
            .context("perestroika-queue client printed no sources line")?;
        let list = add_line
            .rsplit_once("> ")
            .map(|(_, file)| file.trim())
            .context("the sources line names no file")?;
        // The base image has no curl: the key is fetched here, as printed, into a directory
        // the container sees as /etc/apt/keyrings; apt reads it as its _apt user.
        let keyrings = self.root.join("client/keyrings");
        let _ = fs_err::remove_dir_all(&keyrings);
        let script = fetch_key
            .join("\n")
            .replace("/etc/apt/keyrings", &keyrings.display().to_string());
        run(Command::new("sh").args(["-ec", &script]))?;
        let check = format!(
            "set -e\n{add_line}\n\
             apt-get update -q -o APT::Update::Error-Mode=any -o Dir::Etc::SourceList={list} \
               -o Dir::Etc::SourceParts=- >/dev/null\n\
             apt-get install -y -q -t bookworm-updates greet >/dev/null\n\
             dpkg-query -W greet\n\
             apt-cache policy greet | sed -n 's/^ *[0-9]* \\(.*bookworm-updates.*\\)/installed from: \\1/p' | head -n1\n\
             greet"
        );
        let installed = run(Command::new("docker")
            .args(["run", "--rm", "--network", "host", "-v"])
            .arg(format!("{}:/etc/apt/keyrings:ro", keyrings.display()))
            .args([base_image("bookworm").as_str(), "sh", "-c", &check]))?;
        print!("{installed}");
        println!();
        println!(
            "A client of bookworm-updates uses the release with (as root; the key is a DEMO key;\n\
             `perestroika-queue --config {} client demo 1.0 --suite updates` prints it again):",
            self.config.display()
        );
        print!("{}", indent_by(&client, "  "));
        println!(
            "The farm keeps running (logs in {}/); stop it with: bash .ci/demo stop",
            self.logs.display()
        );
        Ok(())
    }

    /// Whether the mirror's http server lists greet `version` in `suite`.
    fn on_mirror(&self, suite: &str, version: &str) -> Result<bool> {
        let url = format!(
            "{}/{TREE}/deb/dists/{suite}/main/binary-amd64/Packages",
            self.http
        );
        let out = Command::new("curl").args(["-fsS", &url]).output()?;
        let wanted = format!("Version: {version}");
        Ok(out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == wanted))
    }

    /// The messages of the farm's `gerrit review`s of `target` (`CHANGE,PS`), oldest first.
    fn reviews_of<'a>(&self, target: &'a str) -> impl Iterator<Item = String> + 'a {
        self.gerrit
            .reviews()
            .into_iter()
            .filter(move |r| r["target"] == target)
            .map(|r| r["message"].as_str().unwrap_or_default().to_owned())
    }

    fn log(&self, daemon: &str) -> String {
        fs_err::read_to_string(self.logs.join(format!("{daemon}.log"))).unwrap_or_default()
    }

    /// A daemon's JSON log events (`.ci/demo` starts them with `PERESTROIKA_LOG_FORMAT=json`).
    fn events(&self, daemon: &str) -> Vec<logs::Event> {
        logs::events(&self.log(daemon))
    }

    /// `perestroika-queue` with the demo's configuration, logging as on a terminal.
    fn queue_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("perestroika-queue"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("PERESTROIKA_LOG_FORMAT");
        cmd
    }

    fn queue(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(self.queue_command(args).output()?)
    }

    /// Polls `done` until it holds, or fails after `within` naming `what` and the logs.
    fn wait(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        while !done()? {
            if Instant::now() >= deadline {
                bail!(
                    "no {what} within {} s; see {}/",
                    within.as_secs(),
                    self.logs.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// `text` with every line indented by three spaces.
fn indent(text: &str) -> String {
    indent_by(text, "   ")
}

/// `text` with `by` before every line.
fn indent_by(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}
