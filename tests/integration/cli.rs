//! Every binary's command line: help, configuration errors and exit codes.

use perestroika_tests::{run, Farm};

const BINARIES: [&str; 5] = [
    "perestroika-reactor",
    "perestroika-queue",
    "perestroika-worker",
    "perestroika-publisher",
    "perestroika-mirror",
];

#[test]
fn every_binary_has_help_and_a_config_option() {
    for name in BINARIES {
        let out = run(name, &["--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help failed");
        assert!(text.contains("--config <CONFIG>"), "{name}: {text}");
        assert!(text.contains(&format!("Usage: {name}")), "{name}: {text}");
    }
}

#[test]
fn a_missing_configuration_exits_2_and_names_the_file() {
    for name in BINARIES {
        let sub = if name == "perestroika-queue" {
            "queues"
        } else {
            "check"
        };
        let out = run(name, &["--config", "/nonexistent/farm.toml", sub]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("/nonexistent/farm.toml"), "{name}: {err}");
    }
}

#[test]
fn an_invalid_configuration_names_the_key() {
    let farm = Farm::new("amqp://guest:guest@127.0.0.1:1/%2f", "");
    let text = fs_err::read_to_string(&farm.path).unwrap();
    fs_err::write(
        &farm.path,
        text.replace("deb = [\"bookworm\"]", "deb = [\"book worm\"]"),
    )
    .unwrap();
    let out = run(
        "perestroika-worker",
        &["--config", farm.path.to_str().unwrap(), "check"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("customers[0].versions[0].deb"), "{err}");
}

#[test]
fn an_unreachable_broker_exits_1_with_advice() {
    // Port 1 on loopback: nothing listens there.
    let farm = Farm::new("amqp://guest:guest@127.0.0.1:1/%2f", "");
    let out = run(
        "perestroika-queue",
        &["--config", farm.path.to_str().unwrap(), "bootstrap"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach RabbitMQ at amqp://127.0.0.1:1/"),
        "{err}"
    );
    assert!(!err.contains("guest:guest"), "credentials leaked: {err}");
}

#[test]
fn check_lists_the_queues_a_part_consumes() {
    let farm = Farm::new("amqp://guest:guest@127.0.0.1:1/%2f", "");
    let cfg = farm.path.to_str().unwrap();
    for (name, queue) in [
        ("perestroika-worker", "build"),
        ("perestroika-publisher", "publish"),
        ("perestroika-mirror", "mirror"),
    ] {
        let out = run(name, &["--config", cfg, "check"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("consumes {queue}.{}.9.0", farm.customer)),
            "{text}"
        );
        if name == "perestroika-publisher" {
            // This configuration has no [signing]: the publisher cannot run and says why.
            assert_eq!(out.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&out.stderr).contains("no [signing] section"));
        } else {
            assert!(out.status.success(), "{name}");
        }
    }
}

#[test]
fn map_explains_a_project() {
    let farm = Farm::new("amqp://guest:guest@127.0.0.1:1/%2f", "");
    let cfg = farm.path.to_str().unwrap();
    let project = format!("{}/openstack-build/nova", farm.customer);
    let out = run(
        "perestroika-reactor",
        &[
            "--config",
            cfg,
            "map",
            &project,
            "refs/heads/openstack-ci/fuel-9.0/mitaka",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["role"], "packaging");
    assert_eq!(found["package"], "nova");
    assert_eq!(
        found["code_project"],
        format!("{}/openstack/nova", farm.customer)
    );

    let out = run(
        "perestroika-reactor",
        &["--config", cfg, "map", "nobody/x", "main"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no mapping rule matches"));
}
