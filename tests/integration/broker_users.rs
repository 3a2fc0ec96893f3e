//! Each part talks to the broker as a user of its own, allowed only its queues: a compromised
//! worker's credentials cannot announce to the mirrors, read the publisher's queue or queue
//! builds; the farm still works with those users. Real RabbitMQ, its own permissions.

use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{MirrorAnnouncement, SCHEMA_VERSION};
use perestroika_protocol::{QueueName, Stage};
use perestroika_tests::apt::{make_deb, signed_farm, OperatorKey};
use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{assert_success, combined_job, run, Daemon};

/// `rabbitmqctl` made each part's user as `perestroika-queue broker-users` says; returns
/// (part, AMQP URL of its user).
fn make_users(rabbit: &Rabbit, config: &str) -> Vec<(String, String)> {
    let out = run(
        "perestroika-queue",
        &["--config", config, "--json", "broker-users"],
    );
    assert_success(&out);
    let users: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.len(), 4);
    users
        .iter()
        .map(|u| {
            let field = |k: &str| u[k].as_str().unwrap().to_owned();
            let (user, password) = (field("user"), format!("pw-{}", field("part")));
            rabbit.rabbitmqctl(&["add_user", &user, &password]);
            rabbit.rabbitmqctl(&[
                "set_permissions",
                "-p",
                &field("vhost"),
                &user,
                &field("configure"),
                &field("write"),
                &field("read"),
            ]);
            (
                field("part"),
                format!("amqp://{user}:{password}@127.0.0.1:{}/%2f", rabbit.port),
            )
        })
        .collect()
}

fn as_user(farm: &FarmConfig, url: &str) -> perestroika_config::settings::BrokerSettings {
    let mut settings = farm.broker.clone();
    settings.url = url.to_owned();
    settings
}

fn refused(result: Result<impl std::fmt::Debug, perestroika_protocol::broker::BrokerError>) {
    let e = result.expect_err("the broker let it through");
    let text = format!("{e:?}");
    assert!(
        text.contains("ACCESS_REFUSED")
            || text.contains("AccessRefused")
            || text.contains("ACCESSREFUSED"),
        "{text}"
    );
}

/// Publishing as `url`'s user through `exchange` with `routing_key` is refused (a refused
/// publish closes the channel: the confirm or the next operation on it fails).
async fn refused_raw(url: &str, exchange: &str, routing_key: &str) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let sent = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions::default(),
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await;
    let settled = match sent {
        Ok(confirm) => confirm.await.map(drop),
        Err(e) => Err(e),
    };
    let after = channel
        .exchange_declare(
            "perestroika.build".into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(
        settled.is_err() || after.is_err(),
        "{exchange:?} took a message for {routing_key}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_part_has_a_broker_user_allowed_only_its_queues() {
    let rabbit = Rabbit::start();
    let key = OperatorKey::new();
    let farm = signed_farm(
        &rabbit.url(),
        &[&key],
        "\n[publish]\nvalid_for_secs = 40\n",
        perestroika_tests::apt::BOOKWORM_RELEASE,
    );
    let config = farm.path.to_str().unwrap().to_owned();
    farm.bootstrap();
    let users = make_users(&rabbit, &config);
    let url = |part: &str| users.iter().find(|(p, _)| p == part).unwrap().1.clone();
    let cfg = &farm.config;
    let queue = |stage| QueueName::new(stage, &farm.customer, "9.0").to_string();

    // The worker's credentials, as a compromised worker holds them.
    let worker = Broker::connect(&as_user(cfg, &url("worker")))
        .await
        .unwrap();
    let forged = MirrorAnnouncement {
        schema_version: SCHEMA_VERSION,
        customer: farm.customer.clone(),
        version: "9.0".into(),
        snapshot: "retired".into(),
        generation: 0,
        tree: format!("{}/9.0", farm.customer),
        published_at: chrono::Utc::now(),
    };
    refused(
        worker
            .publish(&queue(Stage::Mirror), &forged, "forged")
            .await,
    );
    let worker = Broker::connect(&as_user(cfg, &url("worker")))
        .await
        .unwrap();
    refused(
        worker
            .take(&queue(Stage::Publish), Duration::from_secs(1))
            .await,
    );
    let worker = Broker::connect(&as_user(cfg, &url("worker")))
        .await
        .unwrap();
    let job = combined_job(
        &farm.customer,
        "greet",
        "file:///nowhere",
        &"a".repeat(40),
        0,
    );
    refused(
        worker
            .publish(&queue(Stage::Build), &job, &job.job_id)
            .await,
    );
    // Nor through the default exchange, straight to the mirrors' queue, nor into a build
    // queue's waiting room, whence messages return to the build queue.
    refused_raw(&url("worker"), "", &queue(Stage::Mirror)).await;
    refused_raw(
        &url("worker"),
        "perestroika.later",
        &format!("later.{}", queue(Stage::Build)),
    )
    .await;

    // What each part does is allowed: the reactor queues a build, the worker takes it.
    let reactor = Broker::connect(&as_user(cfg, &url("reactor")))
        .await
        .unwrap();
    reactor
        .publish(&queue(Stage::Build), &job, &job.job_id)
        .await
        .expect("the reactor queues builds");
    let worker = Broker::connect(&as_user(cfg, &url("worker")))
        .await
        .unwrap();
    let taken = worker
        .take(&queue(Stage::Build), Duration::from_secs(10))
        .await
        .expect("the worker takes builds");
    assert!(taken.is_some());

    // The publisher, as its own user, signs the release again on its timer (its own queue),
    // and announces it to the mirrors, whose user reads the announcement.
    let dir = farm.dir.path();
    farm.publish("bookworm", &[make_deb(dir, "greet", "1.0", false, "one")]);
    let log = dir.join("publisher.log");
    let publisher_url = url("publisher");
    let _publisher = Daemon::start_with_env(
        "perestroika-publisher",
        &["--config", &config, "run"],
        &[("PERESTROIKA_BROKER__URL", publisher_url.as_str())],
        &log,
    );
    let mirror = Broker::connect(&as_user(cfg, &url("mirror")))
        .await
        .unwrap();
    let got = mirror
        .take(&queue(Stage::Mirror), Duration::from_secs(45))
        .await
        .expect("the mirror reads its queue");
    let delivery = got.unwrap_or_else(|| {
        panic!(
            "no announcement:\n{}",
            fs_err::read_to_string(&log).unwrap_or_default()
        )
    });
    let announced: MirrorAnnouncement = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(announced.tree, format!("{}/9.0", farm.customer));
    assert_eq!(announced.generation, 2);
    let said = fs_err::read_to_string(&log).unwrap();
    assert!(!said.contains("ACCESS_REFUSED"), "{said}");
}
