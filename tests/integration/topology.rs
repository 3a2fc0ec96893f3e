//! The queue topology on a real RabbitMQ: declaration, confirms, restarts, dead letters.

use std::time::Duration;

use perestroika_protocol::broker::{dead_reason, run_consumer, Broker, BrokerError, Disposition};
use perestroika_protocol::messages::{BuildJob, Message};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{assert_success, combined_job, run, shared_amqp_url, Farm};

fn job(customer: &str, n: u32) -> BuildJob {
    combined_job(
        customer,
        "hello",
        "file:///dev/null",
        "0123456789abcdef0123456789abcdef01234567",
        n,
    )
}

fn build_queue(farm: &Farm) -> QueueName {
    QueueName::new(Stage::Build, &farm.customer, "9.0")
}

/// A farm (with `extra` in its `[broker]`), its build queue declared and one job in it: the
/// farm, the queue and its name, a connection, the job.
async fn one_queued(extra: &str) -> (Farm, QueueName, String, Broker, BuildJob) {
    let farm = Farm::new(&shared_amqp_url(), extra);
    let queue = build_queue(&farm);
    let name = queue.to_string();
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    broker.declare(&queue).await.unwrap();
    let job = job(&farm.customer, 0);
    broker.publish(&name, &job, &job.job_id).await.unwrap();
    (farm, queue, name, broker, job)
}

async fn wait_for_depth(broker: &Broker, queue: &str, depth: u32) {
    for _ in 0..100 {
        if broker.stats(queue).await.unwrap().messages == depth {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "queue {queue} never reached depth {depth}: {:?}",
        broker.stats(queue).await
    );
}

#[tokio::test]
async fn declaring_the_topology_twice_is_harmless() {
    let farm = Farm::new(&shared_amqp_url(), "");
    let cfg = farm.path.to_str().unwrap();
    let out = run("perestroika-queue", &["--config", cfg, "bootstrap"]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("12 queues ready"));

    // A message waiting in a queue survives a second declaration.
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let queue = build_queue(&farm).to_string();
    let j = job(&farm.customer, 0);
    broker.publish(&queue, &j, &j.job_id).await.unwrap();

    let out = run("perestroika-queue", &["--config", cfg, "bootstrap"]);
    assert_success(&out);

    let out = run("perestroika-queue", &["--config", cfg, "--json", "queues"]);
    assert!(out.status.success());
    let report: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.len(), 12);
    let depth = |name: &str| {
        report
            .iter()
            .find(|r| r["queue"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {report:?}"))["stats"]["messages"]
            .as_u64()
    };
    assert_eq!(depth(&queue), Some(1));
    assert_eq!(depth(&format!("{queue}.dead")), Some(0));
    assert_eq!(depth(&format!("later.{queue}")), Some(0));
    broker.close().await;
}

#[tokio::test]
async fn publishing_to_an_undeclared_queue_fails_clearly() {
    let farm = Farm::new(&shared_amqp_url(), "");
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let j = job(&farm.customer, 0);
    let err = broker
        .publish(&build_queue(&farm).to_string(), &j, &j.job_id)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("perestroika-queue bootstrap"),
        "{err}"
    );
    broker.close().await;
}

#[tokio::test]
async fn a_confirmed_message_survives_a_broker_restart() {
    let rabbit = Rabbit::start();
    let farm = Farm::new(&rabbit.url(), "");
    let queue = build_queue(&farm);
    let j = job(&farm.customer, 0);
    {
        let broker = Broker::connect(&farm.config.broker).await.unwrap();
        broker.declare(&queue).await.unwrap();
        broker
            .publish(&queue.to_string(), &j, &j.job_id)
            .await
            .unwrap();
        broker.close().await;
    }
    rabbit.restart();
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let delivery = broker
        .get(&queue.to_string())
        .await
        .unwrap()
        .expect("the message is still there after the restart");
    assert_eq!(BuildJob::from_bytes(&delivery.data).unwrap(), j);
    assert_eq!(
        delivery.properties.message_id().as_ref().unwrap().as_str(),
        j.job_id
    );
    broker.close().await;
}

#[tokio::test]
async fn a_message_rejected_past_the_delivery_limit_is_dead_lettered() {
    let (farm, queue, name, broker, j) = one_queued("delivery_limit = 2\n").await;

    // A consumer that fails the message every time, for a reason it cannot tell: returned and
    // counted, and dead-lettered by the consumer on the delivery the limit allows last.
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let settings = farm.config.broker.clone();
    let seen = handled.clone();
    let consumer = tokio::spawn(async move {
        run_consumer(&settings, &queue, 1, |d| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { (d, Disposition::Retry) }
        })
        .await
    });
    let queue = build_queue(&farm);
    wait_for_depth(&broker, &queue.dead_letter(), 1).await;
    consumer.abort();
    assert_eq!(
        handled.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "handled on the first delivery and once more; the third is dead-lettered unhandled"
    );
    let dead = broker.get(&queue.dead_letter()).await.unwrap().unwrap();
    assert_eq!(BuildJob::from_bytes(&dead.data).unwrap().job_id, j.job_id);
    let reason = dead_reason(&dead);
    assert!(reason.contains("broker.delivery_limit is 2"), "{reason}");
    assert_eq!(broker.stats(&name).await.unwrap().messages, 0);
    assert_eq!(broker.stats(&queue.later()).await.unwrap().messages, 0);
    broker.close().await;
}

/// What a consumer cannot handle now is rejected into the waiting room and comes back to its
/// queue after the delay, as it was, without a delivery counted: more rejections than the
/// delivery limit allows never dead-letter it.
#[tokio::test]
async fn a_message_that_waits_comes_back_uncounted() {
    let (_farm, queue, name, broker, j) = one_queued("delivery_limit = 1\n").await;
    for round in 0..3 {
        let d = loop {
            if let Some(d) = broker.get(&name).await.unwrap() {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(BuildJob::from_bytes(&d.data).unwrap().job_id, j.job_id);
        assert!(
            !perestroika_protocol::broker::over_delivery_limit(&d),
            "round {round}"
        );
        broker
            .settle(&name, &d, &Disposition::Later("Docker is away".into()))
            .await
            .unwrap();
        assert_eq!(broker.stats(&name).await.unwrap().messages, 0);
    }
    assert_eq!(
        broker.stats(&queue.dead_letter()).await.unwrap().messages,
        0
    );
    broker.close().await;
}

#[tokio::test]
async fn the_consumer_dead_letters_with_a_reason_and_survives_a_broker_restart() {
    let rabbit = Rabbit::start();
    let farm = Farm::new(&rabbit.url(), "");
    let queue = build_queue(&farm);
    let name = queue.to_string();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();

    let settings = farm.config.broker.clone();
    let consumer_queue = queue.clone();
    let consumer = tokio::spawn(async move {
        run_consumer(&settings, &consumer_queue, 1, move |delivery| {
            let seen = seen_tx.clone();
            async move {
                let job = BuildJob::from_bytes(&delivery.data).unwrap();
                seen.send(job.rebuild).unwrap();
                let disposition = if job.rebuild == 0 {
                    Disposition::DeadLetter("artifact checksum differs from the manifest".into())
                } else {
                    Disposition::Ack
                };
                (delivery, disposition)
            }
        })
        .await
    });

    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    // The consumer declares its queue itself; wait until it has.
    for _ in 0..100 {
        if broker.stats(&name).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = job(&farm.customer, 0);
    broker.publish(&name, &first, &first.job_id).await.unwrap();
    assert_eq!(recv(&mut seen_rx).await, 0);
    wait_for_depth(&broker, &queue.dead_letter(), 1).await;
    let dead = broker.get(&queue.dead_letter()).await.unwrap().unwrap();
    assert_eq!(
        dead_reason(&dead),
        "artifact checksum differs from the manifest"
    );
    broker.close().await;

    // The broker goes away and comes back; the consumer reconnects by itself.
    rabbit.restart();
    let broker = Broker::connect(&farm.config.broker).await.unwrap();
    let second = job(&farm.customer, 1);
    // A quorum queue takes a moment after the node's start before it routes again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match broker.publish(&name, &second, &second.job_id).await {
            Ok(()) => break,
            Err(BrokerError::Unroutable { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("publishing after the restart: {e}"),
        }
    }
    assert_eq!(recv(&mut seen_rx).await, 1);
    wait_for_depth(&broker, &name, 0).await;
    consumer.abort();
    broker.close().await;
}

async fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<u32>) -> u32 {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the consumer handled the message within 60 s")
        .expect("consumer alive")
}

/// A reason of 1 MiB (more than an AMQP frame) would make the broker close the connection
/// rather than take the dead letter; it arrives cut to `MAX_HEADER_TEXT` with a marker.
#[tokio::test]
async fn a_reason_longer_than_a_frame_is_cut_and_the_message_still_dead_lettered() {
    use perestroika_protocol::broker::{MAX_HEADER_TEXT, REASON_HEADER};
    let (_farm, queue, name, broker, sent) = one_queued("").await;
    wait_for_depth(&broker, &name, 1).await;
    let delivery = broker.get(&name).await.unwrap().unwrap();
    // Mostly two-byte chars, so the cut has to find a char boundary.
    let reason = format!("x{}", "ü".repeat(512 * 1024));
    assert!(reason.len() > 1024 * 1024);
    broker.dead_letter(&name, &delivery, &reason).await.unwrap();

    wait_for_depth(&broker, &queue.dead_letter(), 1).await;
    assert_eq!(broker.stats(&name).await.unwrap().messages, 0);
    let dead = broker.get(&queue.dead_letter()).await.unwrap().unwrap();
    assert_eq!(
        BuildJob::from_bytes(&dead.data).unwrap().job_id,
        sent.job_id
    );
    let header = match dead
        .properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .get(REASON_HEADER)
    {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            String::from_utf8(s.as_bytes().to_vec()).expect("the cut keeps UTF-8 whole")
        }
        other => panic!("no reason header: {other:?}"),
    };
    assert!(header.len() <= MAX_HEADER_TEXT && header.len() > MAX_HEADER_TEXT - 16);
    assert!(
        header.ends_with(" … [cut]"),
        "{}",
        &header[header.len() - 40..]
    );
    assert!(reason.starts_with(header.strip_suffix(" … [cut]").unwrap()));
    assert_eq!(dead_reason(&dead), header);
    // The connection survived: it still publishes.
    broker.publish(&name, &sent, &sent.job_id).await.unwrap();
    broker.close().await;
}
