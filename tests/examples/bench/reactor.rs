//! Reactor benchmark: events written to the Gerrit stand-in's stream travel over the real SSH
//! session through the reactor into a real RabbitMQ; a consumer on the build queue times them.
//!
//! Each event's revision carries the nanosecond time its line was written, so the latency
//! measured is line written → job delivered to a consumer: an upper bound of line → broker
//! confirm (it adds the stand-in's 2 ms poll and the delivery to the consumer).
//!
//! `.ci/bench reactor`: `--events` (BENCH_EVENTS, default 20000) events in one burst for
//! throughput, then `--paced` (BENCH_PACED, default 2000) events at `--rate` per second
//! (BENCH_RATE, default 500) for latency.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::BasicAckOptions;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{BuildJob, Message, Sources};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::gerrit::{ChangeSpec, Gerrit};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{Daemon, Farm};

use crate::measure::percentile;
use serde_json::json;

/// How many events, and how fast.
#[derive(clap::Args)]
pub struct Args {
    /// Events in the burst measured for throughput.
    #[arg(long, env = "BENCH_EVENTS", default_value_t = 20_000)]
    events: u64,
    /// Events sent one at a time for latency.
    #[arg(long, env = "BENCH_PACED", default_value_t = 2_000)]
    paced: u64,
    /// Events per second of the paced run.
    #[arg(long, env = "BENCH_RATE", default_value_t = 500)]
    rate: u64,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn line(project: &str, number: u64) -> String {
    ChangeSpec {
        project: project.to_owned(),
        branch: "9.0".into(),
        number,
        patch_set: 1,
        revision: format!("{:040x}", now_ns()),
        topic: None,
    }
    .event("change-merged", json!({}))
    .to_string()
}

/// Takes `count` jobs; returns each one's latency in ms and when the last arrived.
async fn receive(consumer: &mut lapin::Consumer, count: u64) -> (Vec<f64>, Instant) {
    let mut latencies = Vec::with_capacity(count as usize);
    let mut last = Instant::now();
    while (latencies.len() as u64) < count {
        let next = tokio::time::timeout(Duration::from_secs(60), consumer.next()).await;
        let Ok(Some(Ok(d))) = next else {
            panic!("only {} of {count} jobs arrived", latencies.len());
        };
        let arrived = now_ns();
        d.ack(BasicAckOptions::default()).await.unwrap();
        let job = BuildJob::from_bytes(&d.data).unwrap();
        let Sources::Combined { repo } = &job.sources else {
            unreachable!("combined project")
        };
        let sent = u128::from_str_radix(&repo.commit, 16).unwrap();
        latencies.push(arrived.saturating_sub(sent) as f64 / 1e6);
        last = Instant::now();
    }
    (latencies, last)
}

/// Runs the reactor benchmark on a private broker and stand-in.
pub fn run(args: &Args) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args.events, args.paced, args.rate.max(1)));
    Ok(())
}

async fn measure(burst: u64, paced: u64, rate: u64) {
    let rabbit = Rabbit::start();
    let gerrit = Gerrit::start();
    let farm = Farm::with_sections(&rabbit.url(), "", &gerrit.config_section());
    let project = format!("{}/packages/deb/bookworm/hello", farm.customer);
    let log = farm.dir.path().join("reactor.log");
    let reactor = Daemon::start(
        "perestroika-reactor",
        &["--config", farm.path.to_str().unwrap(), "run"],
        &log,
    );
    gerrit.wait_for_streams(1);

    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let queue = QueueName::new(Stage::Build, &farm.customer, "9.0").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.stats(&queue).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the reactor never declared {queue}:\n{}",
            reactor.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_channel, mut consumer) = broker.consume(&queue, 1000).await.unwrap();
    // Throughput: one burst of events appended at once.
    let lines: Vec<String> = (1..=burst).map(|n| line(&project, n)).collect();
    let start = Instant::now();
    gerrit.emit_raw(&lines);
    let (_, last) = receive(&mut consumer, burst).await;
    let secs = last.duration_since(start).as_secs_f64();
    println!(
        "reactor burst: {burst} change-merged events in {secs:.2} s = {:.0} events/s (each a confirmed build job and a review retirement)",
        burst as f64 / secs
    );

    // The transport alone, for comparison: OpenSSH's client reading the same burst.
    let mut ssh = std::process::Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            gerrit.known_hosts.display()
        ))
        .arg("-i")
        .arg(&gerrit.key_file)
        .args(["-p", &gerrit.port.to_string()])
        .arg(format!("{}@127.0.0.1", gerrit.user))
        .args(["gerrit", "stream-events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ssh client");
    gerrit.wait_for_streams(2);
    let lines: Vec<String> = (1..=burst)
        .map(|n| line(&project, 10_000_000 + n))
        .collect();
    let start = Instant::now();
    gerrit.emit_raw(&lines);
    {
        use std::io::BufRead;
        let out = std::io::BufReader::new(ssh.stdout.take().unwrap());
        let mut seen = 0;
        for _ in out.lines() {
            seen += 1;
            if seen == burst {
                break;
            }
        }
    }
    let plain = start.elapsed().as_secs_f64();
    let _ = ssh.kill();
    let _ = ssh.wait();
    println!(
        "plain `ssh gerrit stream-events` reading the same burst: {plain:.2} s = {:.0} events/s (transport only, no jobs)",
        burst as f64 / plain
    );
    // The reactor saw that burst too: take its jobs before measuring latency.
    receive(&mut consumer, burst).await;

    // Latency: events one at a time at a steady rate.
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let writer = {
        let root = gerrit.root.clone();
        let project = project.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(root.join("events.jsonl"))
                .unwrap();
            let begin = Instant::now();
            for i in 0..paced {
                let due = begin + gap * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                writeln!(f, "{}", line(&project, burst + 1 + i)).unwrap();
            }
        })
    };
    let (mut latencies, _) = receive(&mut consumer, paced).await;
    writer.join().unwrap();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "reactor latency at {rate} events/s ({paced} events), line written -> job delivered: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    drop(reactor);
}
