//! Every binary's command line: help, configuration errors and exit codes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use perestroika_tests::{assert_success, bin, run, Farm, NO_BROKER};

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
    let farm = Farm::new(NO_BROKER, "");
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
    let farm = Farm::new(NO_BROKER, "");
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
    let farm = Farm::new(NO_BROKER, "");
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
        let err = String::from_utf8_lossy(&out.stderr);
        match name {
            // This configuration has no [signing] and no [[mirrors]]: the publisher and the
            // mirror cannot run and say why.
            "perestroika-publisher" => {
                assert_eq!(out.status.code(), Some(2), "{err}");
                assert!(err.contains("no [signing] section"), "{err}");
            }
            "perestroika-mirror" => {
                assert_eq!(out.status.code(), Some(2), "{err}");
                assert!(
                    err.contains("key `mirrors`: no [[mirrors]] targets"),
                    "{err}"
                );
            }
            _ => assert!(out.status.success(), "{name}: {err}"),
        }
    }
}

#[test]
fn map_explains_a_project() {
    let farm = Farm::new(NO_BROKER, "");
    let cfg = farm.path.to_str().unwrap();
    let project = format!("{}/openstack-build/nova", farm.customer);
    let out = run(
        "perestroika-reactor",
        &[
            "--config",
            cfg,
            "--json",
            "map",
            &project,
            "refs/heads/openstack-ci/fuel-9.0/mitaka",
        ],
    );
    assert_success(&out);
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

#[test]
fn map_prints_text_for_people() {
    let farm = Farm::new(NO_BROKER, "");
    let project = format!("{}/packages/deb/bookworm/hello", farm.customer);
    let out = run(
        "perestroika-reactor",
        &[
            "--config",
            farm.path.to_str().unwrap(),
            "map",
            &project,
            "9.0",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains('{'), "{text}");
    assert!(
        text.contains("role:      combined code and packaging"),
        "{text}"
    );
    assert!(text.contains("distro:    bookworm (deb)"), "{text}");
}

/// Runs a binary, killing it after `limit`: a `run` that got past its checks would connect
/// and wait for the broker for a long time.
fn run_within(name: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(bin(name))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{name} {args:?} still ran after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    fs_err::write(path, text).unwrap();
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A farm with a `[gerrit]` section whose key and known_hosts live in its directory, not yet
/// written.
fn gerrit_farm() -> (Farm, PathBuf, PathBuf) {
    let farm = Farm::new(NO_BROKER, "");
    let dir = farm.dir.path();
    let (key, hosts) = (dir.join("gerrit_ed25519"), dir.join("known_hosts"));
    let text = fs_err::read_to_string(&farm.path).unwrap();
    fs_err::write(
        &farm.path,
        format!(
            "{text}\n[gerrit]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"farm\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"\n",
            key.display(),
            hosts.display()
        ),
    )
    .unwrap();
    (farm, key, hosts)
}

#[test]
fn reactor_check_and_run_demand_the_gerrit_key_and_known_hosts() {
    let (farm, key, hosts) = gerrit_farm();
    let cfg = farm.path.to_str().unwrap();
    for sub in ["check", "run"] {
        let out = run_within(
            "perestroika-reactor",
            &["--config", cfg, sub],
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {err}");
        assert!(err.contains("the reactor cannot run"), "{err}");
        assert!(
            err.contains(&format!(
                "key `gerrit.key_file`: {}: no such file",
                key.display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "key `gerrit.known_hosts`: {}: no such file",
                hosts.display()
            )),
            "{err}"
        );
        assert!(!err.contains("broker"), "it connected first: {err}");
    }

    // A key others may read is refused as ssh refuses it.
    write_mode(&key, "not really a key\n", 0o644);
    write_mode(&hosts, "", 0o644);
    let out = run("perestroika-reactor", &["--config", cfg, "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("has mode 0644, so others may read this secret; `chmod 600"),
        "{err}"
    );
    assert!(!err.contains("gerrit.known_hosts"), "{err}");

    fs_err::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run("perestroika-reactor", &["--config", cfg, "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(text.contains("is valid for the reactor"), "{text}");
    assert!(text.contains("gerrit: farm@127.0.0.1:1"), "{text}");

    // The same report for scripts.
    let out = run("perestroika-reactor", &["--config", cfg, "--json", "check"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["part"], "reactor");
}

fn mirror_check(section: &str) -> (Output, String) {
    let farm = Farm::with_sections(NO_BROKER, "", section);
    let out = run(
        "perestroika-mirror",
        &["--config", farm.path.to_str().unwrap(), "check"],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

#[test]
fn mirror_check_refuses_unsupported_targets_and_missing_ssh_keys() {
    let (out, err) = mirror_check("[[mirrors]]\nname = \"m\"\ntarget = \"ftp://x/y\"\n");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `mirrors[0].target`: mirror m: target \"ftp://x/y\": ftp:// is not supported; expected rsync://"),
        "{err}"
    );

    let (out, err) =
        mirror_check("[[mirrors]]\nname = \"m\"\ntarget = \"ssh://mirror@127.0.0.1/srv\"\n");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `mirrors[0].ssh_key`: mirror m is reached over SSH and needs `ssh_key`"),
        "{err}"
    );

    let (out, err) = mirror_check(
        "[[mirrors]]\nname = \"m\"\ntarget = \"mirror@127.0.0.1:/srv\"\nssh_key = \"/nonexistent/id\"\nknown_hosts = \"/nonexistent/kh\"\n",
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `mirrors[0].ssh_key`: /nonexistent/id: no such file"),
        "{err}"
    );
    assert!(
        err.contains("key `mirrors[0].known_hosts`: /nonexistent/kh: no such file"),
        "{err}"
    );

    let (out, err) = mirror_check(
        "[[mirrors]]\nname = \"m\"\ntarget = \"rsync://127.0.0.1/perestroika/\"\nhttp_url = \"ftp://x/\"\n",
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `mirrors[0].http_url`: expected a http:// or https:// URL"),
        "{err}"
    );

    let (out, err) =
        mirror_check("[[mirrors]]\nname = \"m\"\ntarget = \"rsync://127.0.0.1/perestroika/\"\n");
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("mirror m copies to rsync://127.0.0.1/perestroika/"));
}

#[test]
fn a_proposed_suite_outside_the_suites_is_refused() {
    let farm = Farm::new(NO_BROKER, "");
    let text = fs_err::read_to_string(&farm.path).unwrap();
    fs_err::write(
        &farm.path,
        format!("{text}\n[publish]\nproposed = \"staging\"\n"),
    )
    .unwrap();
    for name in BINARIES {
        let sub = if name == "perestroika-queue" {
            "queues"
        } else {
            "check"
        };
        let out = run(name, &["--config", farm.path.to_str().unwrap(), sub]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("key `publish.proposed`: the suite \"staging\" is not among publish.suites (proposed, updates, security, holdback, hotfix)"),
            "{name}: {err}"
        );
    }
}

#[test]
fn worker_check_warns_of_a_distro_without_an_image() {
    let farm = Farm::custom(NO_BROKER, "", "", r#"{ name = "9.0", deb = ["bookwrom"] }"#);
    let out = run(
        "perestroika-worker",
        &["--config", farm.path.to_str().unwrap(), "check"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // A missing image can be made later: a warning, not an error.
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "warning: configuration {}: no base image for deb distro bookwrom (of {} 9.0): its builds fail until `perestroika-worker image build --distro bookwrom` makes one",
            farm.path.display(),
            farm.customer
        )),
        "{err}"
    );
    let out = run(
        "perestroika-worker",
        &["--config", farm.path.to_str().unwrap(), "--json", "check"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["findings"][0]["severity"], "warning");
}

#[test]
fn check_of_the_examples_passes_or_names_what_is_missing() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    let farm = examples.join("farm.toml");
    let minimal = examples.join("minimal.toml");
    let check = |name: &str, path: &Path| {
        let out = run(name, &["--config", path.to_str().unwrap(), "check"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
    };
    // Neither example's base images need exist: at most warnings.
    for example in [&farm, &minimal] {
        let (code, err) = check("perestroika-worker", example);
        assert_eq!(code, Some(0), "{err}");
    }
    let (code, err) = check("perestroika-mirror", &farm);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check("perestroika-mirror", &minimal);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no [[mirrors]] targets"), "{err}");
    // The reactor's key files of farm.toml are an operator's own.
    let (code, err) = check("perestroika-reactor", &farm);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("key `gerrit.key_file`: /etc/perestroika/gerrit_ed25519: no such file"),
        "{err}"
    );
    let (code, err) = check("perestroika-reactor", &minimal);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no [gerrit] section"), "{err}");
    let (code, err) = check("perestroika-publisher", &farm);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("key `signing.fingerprint`"), "{err}");
}

#[test]
fn configuration_errors_say_file_key_and_fix() {
    let farm = Farm::new(NO_BROKER, "");
    let text = fs_err::read_to_string(&farm.path).unwrap();
    fs_err::write(
        &farm.path,
        text.replace(
            r#"deb = ["bookworm"] }"#,
            r#"deb = ["bookworm"], state = "maintainance" }"#,
        ),
    )
    .unwrap();
    let cfg = farm.path.to_str().unwrap();
    let out = run("perestroika-worker", &["--config", cfg, "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("configuration {cfg}: key `customers[0].versions[0].state`: unknown release state \"maintainance\": expected \"development\"")),
        "{err}"
    );
    assert!(err.contains("or \"maintenance\""), "{err}");
    assert!(!err.contains("variant constructor"), "{err}");

    let out = run("perestroika-worker", &["--config", "/tmp", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("configuration /tmp: is a directory, not a file"),
        "{err}"
    );

    let good = Farm::new(NO_BROKER, "");
    let out = Command::new(bin("perestroika-worker"))
        .args(["--config", good.path.to_str().unwrap(), "check"])
        .env("PERESTROIKA_BUILD__SLOT", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "environment variable PERESTROIKA_BUILD__SLOT (key `build.slot`): unknown field `slot`"
        ),
        "{err}"
    );
}

#[test]
fn mirror_commands_refuse_trees_the_configuration_does_not_have() {
    let farm = Farm::new(NO_BROKER, "");
    let cfg = farm.path.to_str().unwrap();
    for tree in [
        "nosuch/9.0",
        &format!("{}/8.0", farm.customer),
        "nosuch/review/5",
    ] {
        let out = run("perestroika-mirror", &["--config", cfg, "sync", tree]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tree}: {err}");
        assert!(
            err.contains(&format!(
                "has no tree {tree}; its releases are {}/9.0",
                farm.customer
            )),
            "{err}"
        );
    }
}
