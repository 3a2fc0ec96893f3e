//! The farm under load: `--builds` jobs of a small package queued at once and taken by one,
//! two and three workers (each its own state, as on a host of its own) until every publish
//! job is queued. Printed: builds per minute for each count, next to the ideal (that many
//! times one worker's) and the scaling ratio. On a host with fewer cores than workers the
//! workers share them: read the ratio with the core count printed beside it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use perestroika_protocol::broker::Broker;
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::debian::{base_image, minimal_package, package_cache, GitRepo};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{combined_job, Farm};

/// How many builds, across how many workers.
#[derive(clap::Args)]
pub struct Args {
    /// Builds queued at once.
    #[arg(long, env = "BENCH_BUILDS", default_value_t = 200)]
    builds: u32,
    /// The worker counts measured, in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    workers: Vec<usize>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    base_image("bookworm");
    let rabbit = Rabbit::start();
    let runtime = tokio::runtime::Runtime::new()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
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
    let deadline = started + Duration::from_secs(60 * 60);
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
            bail!("{done} of {builds} builds handed over within an hour");
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
