//! The farm reaches a RabbitMQ that speaks TLS: it verifies the broker's certificate against
//! `[broker] ca_file` (and refuses one it cannot verify), and presents a client certificate
//! where the broker asks for one. A real node with its own certificate authority.

use perestroika_tests::rabbit::Rabbit;
use perestroika_tests::{run, Farm};

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
