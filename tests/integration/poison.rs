//! A poison job: one whose build takes its worker down every time (as a build that exhausts its
//! host would; here the test kills the worker whenever it builds that job). After
//! `broker.delivery_limit` deliveries the next worker dead-letters it, with its reason, without
//! building it; the job queued behind it is built and handed over once.

use std::time::Duration;

use perestroika_protocol::broker::{dead_reason, Broker};
use perestroika_protocol::messages::{BuildJob, BuildOutcome, Message};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::debian::{base_image, minimal_package, GitRepo};
use perestroika_tests::{combined_job, shared_amqp_url};

use crate::outages::{
    builds_started, containers_of, depth, farm_on, publish_jobs, queue, wait_until, worker,
};

#[tokio::test]
async fn a_job_that_kills_its_worker_is_dead_lettered_and_the_next_is_built() {
    base_image("bookworm");
    let farm = farm_on(&shared_amqp_url(), "delivery_limit = 3\n");
    let job_of = |name: &str, build: &str| {
        let mut repo = GitRepo::init(&farm.dir.path().join(name));
        repo.commit(&minimal_package(name, build), "one");
        combined_job(&farm.customer, name, &repo.url(), &repo.head(), 0)
    };
    let poison = job_of("poisonpkg", "sleep 600");
    let good = job_of("goodpkg", "true");
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let build = queue(&farm, Stage::Build);
    for job in [&poison, &good] {
        broker.publish(&build, job, &job.job_id).await.unwrap();
    }
    let dead = QueueName::parse(&build).unwrap().dead_letter();

    // The same worker (its state, so its leftovers) restarted after each kill.
    let mut kills = 0;
    let mut w = worker(&farm, "worker", &[]);
    loop {
        // Killed once its build container runs, so that the next start has one to clean.
        let poisoned_now =
            || builds_started(&[&w], &poison.job_id) > 0 && containers_of(&poison.job_id) == 1;
        wait_until(
            "the worker builds the poison job or dead-letters it",
            Duration::from_secs(180),
            || poisoned_now() || w.output().contains("delivered 4 times"),
            || w.output(),
        );
        if !poisoned_now() {
            break;
        }
        w.kill();
        kills += 1;
        assert!(kills <= 3, "built past the delivery limit:\n{}", w.output());
        w = worker(&farm, "worker", &[]);
    }
    assert_eq!(kills, 3, "one kill per delivery the limit allows");
    assert_eq!(containers_of(&poison.job_id), 0, "{}", w.output());
    assert!(
        w.output()
            .contains("removed leftover build containers of an earlier run"),
        "the killed worker's container was not cleaned when it came back:\n{}",
        w.output()
    );

    let published = publish_jobs(&broker, &farm, 1, Duration::from_secs(300)).await;
    assert_eq!(
        published.len(),
        1,
        "the good job was not handed over:\n{}",
        w.output()
    );
    assert_eq!(published[0].job_id, good.job_id);
    assert_eq!(published[0].outcome, BuildOutcome::Succeeded);
    assert!(publish_jobs(&broker, &farm, 1, Duration::from_secs(10))
        .await
        .is_empty());

    assert_eq!(depth(&broker, &dead).await, 1, "{}", w.output());
    let letter = broker.get(&dead).await.unwrap().unwrap();
    assert_eq!(
        BuildJob::from_bytes(&letter.data).unwrap().job_id,
        poison.job_id
    );
    let reason = dead_reason(&letter);
    assert!(
        reason.contains("delivered 4 times without being settled (broker.delivery_limit is 3)"),
        "{reason}"
    );
    broker.close().await;
}
