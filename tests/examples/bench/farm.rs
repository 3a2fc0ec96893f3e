//! The farm under load.
//!
//! - `--builds` jobs of a small package queued at once and taken by one, two and three workers
//!   (each its own state, as on a host of its own) until every publish job is queued. Printed:
//!   builds per minute for each count, next to the ideal (that many times one worker's) and the
//!   scaling ratio. On a host with fewer cores than workers the workers share them: read the
//!   ratio with the core count printed beside it.
//! - `--merges` merges in one burst through the whole farm (reactor, worker, publisher, mirror
//!   daemon) to two mirror targets: for each, merge → installable from both mirrors, less its
//!   build, and less its wait behind the builds before it too; p50 and p99.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use perestroika_protocol::broker::Broker;
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::BOOKWORM_RELEASE;
use perestroika_tests::debian::{base_image, greet_code, minimal_package, package_cache, GitRepo};
use perestroika_tests::logs::{self, Event};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::whole::{change, push_greet, WholeFarm, SPLIT_BRANCH};
use perestroika_tests::{combined_job, Farm};

use crate::measure::percentile;

/// How many builds, across how many workers.
#[derive(clap::Args)]
pub struct Args {
    /// Builds queued at once (0: none).
    #[arg(long, env = "BENCH_BUILDS", default_value_t = 200)]
    builds: u32,
    /// The worker counts measured, in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    workers: Vec<usize>,
    /// Merges in the burst through the whole farm (0: none).
    #[arg(long, env = "BENCH_MERGES", default_value_t = 50)]
    merges: u32,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    base_image("bookworm");
    let rabbit = Rabbit::start();
    let runtime = tokio::runtime::Runtime::new()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.builds > 0 {
        println!(
            "farm: {} builds of a small deb queued at once, {cores} cores",
            args.builds
        );
        println!("workers  minutes  builds/min  ideal (n × one)  ratio");
        let mut one = None;
        for &n in &args.workers {
            let per_min = runtime.block_on(measure(&rabbit, args.builds, n))?;
            let base = *one.get_or_insert(per_min / n as f64);
            println!(
                "{n:>7}  {:>7.2}  {per_min:>10.1}  {:>15.1}  {:>5.2}",
                f64::from(args.builds) / per_min,
                base * n as f64,
                per_min / (base * n as f64)
            );
        }
    }
    if args.merges > 0 {
        merge_burst(&rabbit, args.merges)?;
    }
    Ok(())
}

/// `merges` merges of greet in one burst, each to both mirrors.
fn merge_burst(rabbit: &Rabbit, merges: u32) -> anyhow::Result<()> {
    let f = WholeFarm::start_on(&rabbit.url(), "", BOOKWORM_RELEASE, 2);
    let tree = f.tree("9.0");
    let (code, packaging, head) = push_greet(&f, "Hello, 0");
    // A first build warms the caches; it is not counted.
    f.event(
        &change(&packaging, SPLIT_BRANCH, 500, 1, &head),
        "change-merged",
    );
    let within = Duration::from_secs(600);
    for m in &f.mirrors {
        f.wait_mirrored_to(&m.name, &tree, 1, within);
    }
    let mut emitted = Vec::new();
    for i in 1..=merges {
        let head = f.gerrit.push(
            &code,
            SPLIT_BRANCH,
            &greet_code(&format!("Hello, {i}")),
            &format!("code {i}"),
        );
        let at = f.event(
            &change(&code, SPLIT_BRANCH, 500 + u64::from(i), 1, &head),
            "change-merged",
        );
        emitted.push(at);
    }
    let within = Duration::from_secs(120 * u64::from(merges));
    f.wait_for("every merge published", within, || {
        let ends = f.publisher.events();
        ends.iter().filter(|e| e.ends("publish")).count() > merges as usize
    });
    let last = f
        .publisher
        .events()
        .iter()
        .filter_map(|e| e.ends("publish").then(|| e.number("generation")).flatten())
        .fold(0.0, f64::max) as u64;
    for m in &f.mirrors {
        f.wait_mirrored_to(&m.name, &tree, last, within);
    }

    let jobs = f.queued_jobs();
    if jobs.len() != merges as usize + 1 {
        bail!("{} build jobs for {} merges", jobs.len(), merges + 1);
    }
    let (reactor, worker, publisher, mirror) = (
        f.reactor.events(),
        f.worker.events(),
        f.publisher.events(),
        f.mirror_daemon.events(),
    );
    let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds() as f64 / 1000.0;
    let (mut less_build, mut less_wait) = (Vec::new(), Vec::new());
    // Where the rest goes: event → queued, built → published, published → on both mirrors.
    let (mut to_queue, mut to_publish, mut to_mirrors) = (Vec::new(), Vec::new(), Vec::new());
    for (job, at) in jobs[1..].iter().zip(&emitted) {
        let queued = found(&reactor, job, "queued", false)?.timestamp;
        let started = found(&worker, job, "build", false)?.timestamp;
        let built = found(&worker, job, "build", true)?.timestamp;
        let published = found(&publisher, job, "publish", true)?;
        let generation = published.number("generation").context("no generation")?;
        // Installable from both: the later of the two mirrors' first sync at or past it.
        let mut both = built;
        for m in &f.mirrors {
            let synced = mirror
                .iter()
                .find(|e| {
                    e.ends("mirror")
                        && e.str("target") == Some(m.name.as_str())
                        && e.str("tree") == Some(tree.as_str())
                        && e.number("generation").is_some_and(|g| g >= generation)
                })
                .with_context(|| format!("job {job}: never on mirror {}", m.name))?;
            both = both.max(synced.timestamp);
        }
        let total = secs(*at, both);
        to_queue.push(secs(*at, queued));
        to_publish.push(secs(built, published.timestamp));
        to_mirrors.push(secs(published.timestamp, both));
        let build = secs(started, built);
        less_build.push(total - build);
        less_wait.push(total - build - secs(queued, started));
    }
    println!("merge → installable from both mirrors, {merges} merges in one burst, one worker:");
    for (what, v) in [
        ("everything but the build", &mut less_build),
        ("… and but the wait behind earlier builds", &mut less_wait),
        ("of which: event → queued (reactor)", &mut to_queue),
        ("          built → published (publisher)", &mut to_publish),
        ("          published → on both mirrors", &mut to_mirrors),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "  {what:<44} p50 {:>7.3} s   p99 {:>7.3} s",
            percentile(v, 0.5),
            percentile(v, 0.99)
        );
    }
    Ok(())
}

/// Builds per minute of `workers` workers taking `builds` queued jobs.
async fn measure(rabbit: &Rabbit, builds: u32, workers: usize) -> anyhow::Result<f64> {
    let farm = Farm::custom(
        &rabbit.url(),
        "",
        &format!(
            "[build]\npackage_cache = \"{}\"\ntimeout_secs = 900\n",
            package_cache()
        ),
        r#"{ name = "9.0", deb = ["bookworm"] }"#,
    );
    farm.bootstrap();
    let mut repo = GitRepo::init(&farm.dir.path().join("loadpkg"));
    repo.commit(&minimal_package("loadpkg", "true"), "one");
    let broker = Broker::connect(&farm.config.broker).await?;
    let build = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    let publish = QueueName::new(Stage::Publish, &farm.customer, "9.0").to_string();
    for rebuild in 0..builds {
        let job = combined_job(
            &farm.customer,
            "loadpkg",
            &repo.url(),
            &repo.head(),
            rebuild,
        );
        broker.publish(&build, &job, &job.job_id).await?;
    }
    let started = Instant::now();
    let daemons: Vec<_> = (0..workers)
        .map(|i| farm.own_worker(&format!("worker-{i}"), &[], "", None))
        .collect();
    // A guard against a stuck farm, not a target: a minute a build.
    let deadline = started + Duration::from_secs(60 * u64::from(builds));
    loop {
        let done = broker
            .stats(&publish)
            .await
            .context("publish queue")?
            .messages;
        if done >= builds {
            break;
        }
        if Instant::now() > deadline {
            bail!("{done} of {builds} builds handed over within {builds} minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let dead = broker.stats(&format!("{build}.dead")).await?.messages;
    if dead > 0 {
        bail!("{dead} builds dead-lettered");
    }
    drop(daemons);
    broker.close().await;
    Ok(f64::from(builds) / minutes)
}

/// The event of `job` starting (or, with `end`, ending) `stage`.
fn found<'a>(events: &'a [Event], job: &str, stage: &str, end: bool) -> anyhow::Result<&'a Event> {
    if end {
        logs::ended(events, job, stage)
    } else {
        logs::started(events, job, stage)
    }
    .with_context(|| format!("job {job}: no {stage} event"))
}
