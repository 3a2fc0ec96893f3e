//! The farm on a three-node RabbitMQ cluster with quorum queues (`[broker] urls`): one node
//! stopped with work in flight and brought back, later another. The farm goes on with the two
//! others each time; no merge is lost, none built or published twice.

use std::time::{Duration, Instant};

use perestroika_tests::apt::BOOKWORM_RELEASE;
use perestroika_tests::debian::greet_code;
use perestroika_tests::rabbit::Cluster;
use perestroika_tests::whole::{change, push_greet, WholeFarm, SPLIT_BRANCH};

const WITHIN: Duration = Duration::from_secs(600);

/// How many distinct versions of greet the mirror holds, asserting that none is there twice.
fn greet_versions(f: &WholeFarm) -> usize {
    let mut versions = f.mirrored_versions("9.0", "greet");
    let all = versions.len();
    versions.sort();
    versions.dedup();
    assert_eq!(
        versions.len(),
        all,
        "a version published twice: {versions:?}"
    );
    all
}

#[test]
fn the_farm_goes_on_while_one_broker_node_and_then_another_is_down() {
    let cluster = Cluster::start(3);
    let f = WholeFarm::start_on(&cluster.url(), &cluster.urls_line(), BOOKWORM_RELEASE, 1);
    let (code, packaging, head) = push_greet(&f, "Hello, 1");
    let mut merges = 0u64;
    let mut merge = |project: &str, head: &str| {
        merges += 1;
        f.event(
            &change(project, SPLIT_BRANCH, 400 + merges, 1, head),
            "change-merged",
        );
        merges
    };
    let push = |n: u64| {
        f.gerrit.push(
            &code,
            SPLIT_BRANCH,
            &greet_code(&format!("Hello, {n}")),
            &format!("code {n}"),
        )
    };

    // The node every daemon connected to stops while the first merge is being built.
    merge(&packaging, &head);
    f.wait_for("the first build starts", WITHIN, || {
        f.worker.events().iter().any(|e| e.starts("build"))
    });
    cluster.nodes[0].stop();
    let stopped = Instant::now();
    // The release's first generation is published (with the first node down) before the
    // next merges, which then build against it.
    f.wait_mirrored(&f.tree("9.0"), 1, WITHIN);
    for n in 2..=3 {
        let head = push(n);
        merge(&code, &head);
    }
    f.wait_for("three versions published with node 1 down", WITHIN, || {
        greet_versions(&f) == 3
    });
    let down_one = stopped.elapsed();

    // Node 1 back; another node goes.
    cluster.nodes[0].start_again();
    cluster.nodes[1].stop();
    let stopped = Instant::now();
    let head = push(4);
    let n = merge(&code, &head);
    f.wait_for("the fourth version with node 2 down", WITHIN, || {
        greet_versions(&f) == n as usize
    });
    let down_two = stopped.elapsed();
    cluster.nodes[1].start_again();
    let head = push(5);
    let n = merge(&code, &head);
    f.wait_for("the fifth version with every node up", WITHIN, || {
        greet_versions(&f) == n as usize
    });

    let jobs = f.queued_jobs();
    let mut distinct = jobs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "five merges, five build jobs: {jobs:?}");
    let published = f.publisher.events();
    for job in &distinct {
        let times = published
            .iter()
            .filter(|e| e.job() == Some(job.as_str()) && e.ends("publish"))
            .count();
        assert_eq!(times, 1, "job {job} published {times} times");
    }
    // Each daemon did reach the others: the stopped node was the first it tried.
    for (name, daemon) in [
        ("reactor", &f.reactor),
        ("worker", &f.worker),
        ("publisher", &f.publisher),
    ] {
        assert!(
            daemon
                .events()
                .iter()
                .any(|e| e.message() == "a broker node cannot be reached"),
            "the {name} never left the first node:\n{}",
            daemon.output()
        );
    }
    eprintln!(
        "node 1 down: merges 2 and 3 published {:.1} s after it stopped; node 2 down: merge 4 published {:.1} s after it stopped",
        down_one.as_secs_f64(),
        down_two.as_secs_f64()
    );
    let said = f.apt_install_from_mirror(&["greet"], "greet");
    assert_eq!(said.trim(), "Hello, 5");
}
