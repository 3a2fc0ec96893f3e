//! The broker as operators deploy it, on real nodes of their own: TLS (the broker's certificate
//! verified against `[broker] ca_file`, refused when it cannot be; a client certificate where
//! the broker asks for one), and the jobs in progress read from the management API.

use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{assert_success, run, Farm};

/// `perestroika-queue bootstrap` against `url` with `broker` lines added to `[broker]`;
/// returns its exit code and what it said.
fn bootstrap(url: &str, broker: &str) -> (Option<i32>, String) {
    let farm = Farm::new(url, broker);
    let out = run(
        "perestroika-queue",
        &["--config", farm.path.to_str().unwrap(), "bootstrap"],
    );
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_tls_broker_is_verified_against_the_configured_authority() {
    let rabbit = Rabbit::start_tls(false);
    let url = format!("amqps://guest:guest@localhost:{}/%2f", rabbit.tls_port());
    let ca = format!("ca_file = \"{}\"\n", rabbit.tls_file("ca.pem").display());

    let (code, said) = bootstrap(&url, &ca);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("queues ready"), "{said}");

    // Without the authority, the broker's certificate is not trusted.
    let (code, said) = bootstrap(&url, "");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("TLS with RabbitMQ") && said.contains("ca_file"),
        "{said}"
    );
}

#[test]
fn a_broker_asking_for_a_client_certificate_gets_the_configured_one() {
    let rabbit = Rabbit::start_tls(true);
    let url = format!("amqps://guest:guest@localhost:{}/%2f", rabbit.tls_port());
    let ca = format!("ca_file = \"{}\"\n", rabbit.tls_file("ca.pem").display());
    let client = format!(
        "{ca}client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        rabbit.tls_file("client.pem").display(),
        rabbit.tls_file("client.key").display()
    );

    let (code, said) = bootstrap(&url, &ca);
    assert_eq!(code, Some(1), "without a client certificate: {said}");
    let (code, said) = bootstrap(&url, &client);
    assert_eq!(code, Some(0), "{said}");
}

/// `perestroika-queue queues` shows a job being worked on (delivered, not acknowledged) as in
/// progress, read from RabbitMQ's management API, next to those waiting.
#[tokio::test(flavor = "multi_thread")]
async fn queues_show_jobs_in_progress_next_to_those_waiting() {
    let rabbit = Rabbit::start_with_management();
    let farm = Farm::new(
        &rabbit.url(),
        &format!(
            "management_url = \"http://127.0.0.1:{}\"\n",
            rabbit.management_port()
        ),
    );
    let config = farm.path.to_str().unwrap().to_owned();
    farm.bootstrap();
    let queue = perestroika_protocol::QueueName::new(
        perestroika_protocol::Stage::Build,
        &farm.customer,
        "9.0",
    )
    .to_string();
    let broker = perestroika_protocol::broker::Broker::connect(&farm.config.broker)
        .await
        .unwrap();
    for rebuild in 0..2 {
        let job = perestroika_tests::combined_job(
            &farm.customer,
            "greet",
            "file:///nowhere",
            &"a".repeat(40),
            rebuild,
        );
        broker.publish(&queue, &job, &job.job_id).await.unwrap();
    }
    // A worker takes one and works on it (no acknowledgement yet).
    let (_channel, mut consumer) = broker.consume(&queue, 1).await.unwrap();
    let _held = futures_util::StreamExt::next(&mut consumer)
        .await
        .unwrap()
        .unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = run(
            "perestroika-queue",
            &["--config", &config, "--json", "queues"],
        );
        assert_success(&out);
        let report: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let row = report
            .iter()
            .find(|r| r["queue"] == queue.as_str())
            .unwrap();
        if row["in_progress"] == 1 && row["stats"]["messages"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{row}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let out = run("perestroika-queue", &["--config", &config, "queues"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with(&queue)).unwrap();
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns, [queue.as_str(), "1", "1", "1"], "{text}");
}
