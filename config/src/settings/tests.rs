use std::path::Path;

use super::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// Writes `text` to a temporary file and loads it.
fn load_text(text: &str) -> Result<FarmConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("farm.toml");
    fs_err::write(&path, text).unwrap();
    FarmConfig::load_with_env(&path, no_env())
}

const MINIMAL: &str = include_str!("../../examples/minimal.toml");

#[test]
fn sizes() {
    assert_eq!(size_bytes("512m"), Some(512 << 20));
    assert_eq!(size_bytes("8g"), Some(8 << 30));
    assert_eq!(size_bytes("4096"), Some(4096));
    for bad in ["", "g", "1.5g", "-1m", "8 g", "8G", "99999999999999999999g"] {
        assert_eq!(size_bytes(bad), None, "{bad:?}");
    }
}

#[test]
fn every_example_loads() {
    let mut seen = 0;
    for entry in fs_err::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            FarmConfig::load_with_env(&path, no_env())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

#[test]
fn example_values_and_defaults() {
    let farm = FarmConfig::load_with_env(&examples().join("farm.toml"), no_env()).unwrap();
    assert_eq!(farm.broker.delivery_limit, 5);
    let r = farm.release("acme", "9.0").unwrap();
    assert_eq!(r.state, ReleaseState::Maintenance);
    assert_eq!(r.family_of("el9"), Some(Family::Rpm));
    assert_eq!(r.family_of("bookworm"), Some(Family::Deb));
    assert_eq!(r.family_of("trusty"), None);
    assert_eq!(
        farm.release("globex", "9.0").unwrap().state,
        ReleaseState::Development
    );
    assert_eq!(
        farm.gerrit
            .as_ref()
            .unwrap()
            .clone_url("acme/openstack/nova"),
        "ssh://perestroika@review.example.org:29418/acme/openstack/nova"
    );
    let gerrit = farm.gerrit.as_ref().unwrap();
    assert_eq!(
        (gerrit.recheck_limit, gerrit.recheck_window_secs),
        (3, 3600)
    );

    let min = load_text(MINIMAL).unwrap();
    assert_eq!(min.broker.delivery_limit, 5);
    assert_eq!(min.build.slots, 1);
    assert_eq!(min.publish.suites.len(), 5);
    assert!(min.gerrit.is_none() && min.signing.is_none());
    assert_eq!(min.release("acme", "9.0").unwrap().arches, ["amd64"]);
    assert_eq!(min.serve.max_connections, 256);
    assert_eq!(
        (
            min.build.git_deadline().limit.as_secs(),
            min.publish.command_deadline().limit.as_secs(),
            gerrit.command_deadline().limit.as_secs()
        ),
        (600, 600, 60)
    );
    assert_eq!(
        (
            farm.serve.header_timeout_secs,
            farm.serve.stall_timeout_secs
        ),
        (10, 60)
    );
}

#[test]
fn pinned_fingerprints_are_spelled_as_gpg_prints_them() {
    let lower = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(fingerprint(lower).unwrap(), lower.to_ascii_uppercase());
    assert_eq!(
        fingerprint("0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567").unwrap(),
        "0123456789ABCDEF0123456789ABCDEF01234567"
    );
    assert!(fingerprint("0123")
        .unwrap_err()
        .to_string()
        .contains("40-hex-digit"));
    assert!(fingerprint(&"g".repeat(40)).is_err());
    let farm = load_text(&format!(
        "{MINIMAL}\n[signing]\nfingerprint = \"{lower}\"\nalso_sign_with = [\"{}\"]\n",
        "F".repeat(40)
    ))
    .unwrap();
    assert_eq!(
        farm.signing.unwrap().pinned(),
        [lower.to_ascii_uppercase(), "F".repeat(40)]
    );
}

#[test]
fn a_recheck_window_must_be_one_second_to_a_year() {
    let text = std::fs::read_to_string(examples().join("farm.toml")).unwrap();
    for bad in ["0", "31536001"] {
        let changed = text.replace(
            "recheck_window_secs = 3600",
            &format!("recheck_window_secs = {bad}"),
        );
        let e = load_text(&changed).unwrap_err().to_string();
        assert!(e.contains("gerrit.recheck_window_secs"), "{e}");
    }
    let off = text.replace("recheck_limit = 3", "recheck_limit = 0");
    assert_eq!(load_text(&off).unwrap().gerrit.unwrap().recheck_limit, 0);
}

#[test]
fn a_release_in_maintenance_needs_its_proposed_suite() {
    let text = std::fs::read_to_string(examples().join("farm.toml")).unwrap();
    let dropped = text.replace(
        r#"suites = ["proposed", "updates", "security", "holdback", "hotfix"]"#,
        r#"suites = ["updates", "security"]"#,
    );
    let e = load_text(&dropped).unwrap_err().to_string();
    assert!(e.contains("publish.proposed") && e.contains("lacks"), "{e}");
    let renamed = dropped
        .replace(
            r#"suites = ["updates", "security"]"#,
            r#"suites = ["candidate", "updates"]"#,
        )
        .replace(r#"proposed = "proposed""#, r#"proposed = "candidate""#);
    let farm = load_text(&renamed).unwrap();
    let (c, r) = farm
        .releases()
        .find(|(_, r)| r.state == ReleaseState::Maintenance)
        .unwrap();
    assert_eq!(
        farm.merge_suite(&c.name, &r.name, "bookworm"),
        "bookworm-candidate"
    );
}

#[test]
fn environment_overrides_scalars() {
    let path = examples().join("minimal.toml");
    let env = [
        ("PERESTROIKA_BROKER__URL", "amqp://u:p@other:5673/%2f"),
        ("PERESTROIKA_BROKER__DELIVERY_LIMIT", "9"),
        ("PERESTROIKA_PATHS__STAGING", "/tmp/staging"),
        ("PERESTROIKA_CONFIG", "/not/a/key"),
        ("OTHER_BROKER__URL", "ignored"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let farm = FarmConfig::load_with_env(&path, env).unwrap();
    assert_eq!(farm.broker.url, "amqp://u:p@other:5673/%2f");
    assert_eq!(farm.broker.delivery_limit, 9);
    assert_eq!(farm.paths.staging, Path::new("/tmp/staging"));
}

#[test]
fn a_bad_override_names_its_key() {
    let path = examples().join("minimal.toml");
    let env = [(
        "PERESTROIKA_BROKER__DELIVERY_LIMIT".to_owned(),
        "many".to_owned(),
    )];
    let err = FarmConfig::load_with_env(&path, env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("minimal.toml"), "{err}");
    assert!(err.contains("delivery_limit"), "{err}");
}

#[test]
fn an_override_with_a_wrong_key_names_its_variable() {
    let path = examples().join("minimal.toml");
    let env = [("PERESTROIKA_BUILD__SLOT".to_owned(), "2".to_owned())];
    let err = FarmConfig::load_with_env(&path, env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "environment variable PERESTROIKA_BUILD__SLOT (key `build.slot`): unknown field `slot`"
        ),
        "{err}"
    );
    // A file that is wrong is still blamed on the file, overrides or not.
    let env = [("PERESTROIKA_BUILD__SLOTS".to_owned(), "2".to_owned())];
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("farm.toml");
    fs_err::write(&bad, MINIMAL.replace("[broker]", "[broker]\nurll = \"x\"")).unwrap();
    let err = FarmConfig::load_with_env(&bad, env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `broker`: unknown field `urll`"), "{err}");
    assert!(!err.contains("environment"), "{err}");
}

#[test]
fn a_wrong_release_state_lists_the_states_at_its_key() {
    let err = load_text(&MINIMAL.replace(
        "deb = [\"bookworm\"] }",
        "deb = [\"bookworm\"], state = \"maintainance\" }",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("key `customers[0].versions[0].state`: unknown release state \"maintainance\": expected \"development\""),
        "{err}"
    );
    assert!(err.contains("or \"maintenance\""), "{err}");
}

#[test]
fn a_directory_is_not_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let err = FarmConfig::load_with_env(dir.path(), no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a directory, not a file"), "{err}");
}

#[test]
fn the_proposed_suite_is_one_of_the_suites_in_any_state() {
    expect_invalid(
        &format!("{MINIMAL}\n[publish]\nproposed = \"staging\"\n"),
        "publish.proposed",
        "the suite \"staging\" is not among publish.suites",
    );
}

#[test]
fn kept_snapshots_hold_the_live_one_and_those_reachable_by_hash() {
    expect_invalid(
        &format!("{MINIMAL}\n[publish]\nkeep_generations = 3\nkeep_snapshots = 3\n"),
        "publish.keep_snapshots",
        "set it to 4 or more",
    );
    expect_invalid(
        &format!("{MINIMAL}\n[publish]\nkeep_generations = 0\nkeep_snapshots = 1\n"),
        "publish.keep_snapshots",
        "set it to 2 or more",
    );
    let farm = load_text(&format!("{MINIMAL}\n[publish]\nkeep_snapshots = 4\n")).unwrap();
    assert_eq!(farm.publish.keep_snapshots, 4);
    let farm = load_text(MINIMAL).unwrap();
    assert_eq!(
        farm.publish.keep_snapshots, 0,
        "every snapshot is kept by default"
    );
    assert_eq!(farm.paths.min_free_bytes, 2 << 30);
    assert_eq!(farm.build.git_cache_days, 30);
    assert!(farm.build.overlay_roots);
}

fn expect_invalid(text: &str, key: &str, words: &str) {
    let err = load_text(text).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("farm.toml"), "{msg}");
    assert!(msg.contains(key), "expected key {key} in: {msg}");
    assert!(msg.contains(words), "expected {words:?} in: {msg}");
}

#[test]
fn validation_errors_name_file_key_and_expectation() {
    expect_invalid(
        &MINIMAL.replace("amqp://guest", "http://guest"),
        "broker.url",
        "amqp://",
    );
    expect_invalid(
        &MINIMAL.replace("name = \"acme\"", "name = \"ac/me\""),
        "customers[0].name",
        "only letters",
    );
    expect_invalid(
        &MINIMAL.replace("name = \"acme\"", "name = \"ac.me\""),
        "customers[0].name",
        "only letters, digits and _ + ~ - may appear (no `.`",
    );
    for version in ["dead", "review", "9.0.dead"] {
        expect_invalid(
            &MINIMAL.replace("name = \"9.0\"", &format!("name = \"{version}\"")),
            "customers[0].versions[0].name",
            "are reserved (dead-letter queues, review trees)",
        );
    }
    expect_invalid(
        &MINIMAL.replace("deb = [\"bookworm\"]", "deb = []"),
        "customers[0].versions[0]",
        "at least one distro",
    );
    for (section, key) in [
        ("build", "git_timeout_secs"),
        ("publish", "command_timeout_secs"),
    ] {
        expect_invalid(
            &format!("{MINIMAL}\n[{section}]\n{key} = 0\n"),
            &format!("{section}.{key}"),
            "expected at least 1",
        );
    }
    expect_invalid(
        &format!("{MINIMAL}\n[signing]\nfingerprint = \"ABC\"\n"),
        "signing.fingerprint",
        "40-hex-digit",
    );
    let fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
    expect_invalid(
        &format!(
            "{MINIMAL}\n[signing]\nfingerprint = \"{fpr}\"\nreview_fingerprint = \"{}\"\n",
            fpr.to_lowercase()
        ),
        "signing.review_fingerprint",
        "must not be a key releases are signed with",
    );
    expect_invalid(
        &MINIMAL.replace(
            "name = \"acme\"",
            "name = \"acme\"\nreview_fingerprint = \"x\"",
        ),
        "customers[0].review_fingerprint",
        "needs a [signing] section",
    );
    expect_invalid(
        &format!("{MINIMAL}\n[serve]\nheader_timeout_secs = 0\n"),
        "serve.header_timeout_secs",
        "at least 1",
    );
    expect_invalid(
        &format!("{MINIMAL}\n[[mapping]]\nname = \"x\"\ncombined = \"{{customer}}/{{package}}\"\nbranch = \"main\"\n"),
        "mapping[0]",
        "{version}",
    );
    expect_invalid(
        &format!("{MINIMAL}\n[[customers]]\nname = \"acme\"\nversions = [{{ name = \"1\", deb = [\"bookworm\"] }}]\n"),
        "customers[1].name",
        "appears twice",
    );
}

#[test]
fn unknown_and_missing_keys_are_named() {
    let err = load_text(&MINIMAL.replace("[broker]", "[broker]\nurll = \"x\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("urll"), "{err}");
    let err = load_text(&MINIMAL.replace("staging = ", "#"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("staging"), "{err}");
    let err = FarmConfig::load_with_env(Path::new("/nonexistent/farm.toml"), no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/farm.toml") && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn the_public_url_is_plain_http_with_its_keys_pinned() {
    let with = |public: &str| format!("{MINIMAL}\n[public]\n{public}\n");
    for (url, words) in [
        ("https://mirror/p/", "not an http:// URL"),
        ("http://user@mirror/p/", "without user"),
        ("http://mirror:port/p/", "is not a port"),
        ("http://mirror/../p/", "`..`"),
    ] {
        expect_invalid(
            &with(&format!("url = {url:?}\nkeys = [\"/k.asc\"]")),
            "public.url",
            words,
        );
    }
    expect_invalid(
        &with("url = \"http://mirror:8080/p/\""),
        "public.url",
        "set [public] keys",
    );
    expect_invalid(
        &with("timeout_secs = 0"),
        "public.timeout_secs",
        "at least 1",
    );
    let farm = load_text(&with("url = \"http://mirror:8080/p\"\nkeys = [\"/k.asc\"]")).unwrap();
    assert_eq!(farm.public.url.as_deref(), Some("http://mirror:8080/p"));
}

#[test]
fn a_worker_serving_its_staging_needs_a_name_and_the_publisher_and_workers_are_rsync_urls() {
    let serving = format!(
        "{MINIMAL}\n[worker]\nname = \"build-1\"\nserve_staging = \"127.0.0.2:8730\"\n\
         publisher_hosts = [\"127.0.0.1\"]\n\n[fetch.workers]\nbuild-1 = \"rsync://127.0.0.2:8730/staging\"\n"
    );
    let farm = load_text(&serving).unwrap();
    assert!(farm.worker.serves_staging());
    assert_eq!(farm.fetch.worker_gone_secs, 600);
    assert!(!load_text(MINIMAL).unwrap().worker.serves_staging());
    expect_invalid(
        &serving.replace("name = \"build-1\"\n", ""),
        "worker.name",
        "serve_staging needs the name",
    );
    expect_invalid(
        &serving.replace("publisher_hosts = [\"127.0.0.1\"]", "publisher_hosts = []"),
        "worker.publisher_hosts",
        "nobody else may fetch",
    );
    expect_invalid(
        &serving.replace("[\"127.0.0.1\"]", "[\"127.0.0.1 *\"]"),
        "worker.publisher_hosts[0]",
        "expected an address",
    );
    expect_invalid(
        &serving.replace(
            "\"rsync://127.0.0.2:8730/staging\"",
            "\"http://127.0.0.2/\"",
        ),
        "fetch.workers.build-1",
        "rsync://host:port/staging",
    );
}

#[test]
fn a_pinned_base_needs_a_registry_a_digest_and_a_distro_of_the_release() {
    let digest = format!("sha256:{}", "0a".repeat(32));
    let pinned = |release: &str, images: &str| {
        MINIMAL.replace(r#"{ name = "9.0", deb = ["bookworm"] }"#, release) + images
    };
    let release = format!(
        r#"{{ name = "9.0", deb = ["bookworm"], base_digests = {{ bookworm = "{digest}" }} }}"#
    );
    let registry = "\n[images]\nregistry = \"127.0.0.1:5000\"\n";
    let farm = load_text(&pinned(&release, registry)).unwrap();
    assert_eq!(farm.images.registry.as_deref(), Some("127.0.0.1:5000"));
    assert_eq!(farm.images.resolve_secs, 30);
    assert_eq!(
        farm.releases().next().unwrap().1.base_digests["bookworm"],
        digest
    );

    let e = load_text(&pinned(&release, "")).unwrap_err().to_string();
    assert!(e.contains("set [images] registry"), "{e}");
    let e = load_text(&pinned(&release.replace(&digest, "sha256:abc"), registry))
        .unwrap_err()
        .to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    let e = load_text(&pinned(
        &release.replace("{ bookworm =", "{ trixie ="),
        registry,
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("not one of the release's distros"), "{e}");
    let e = load_text(&pinned(
        r#"{ name = "9.0", deb = ["bookworm"] }"#,
        "\n[images]\nregistry = \"http://127.0.0.1:5000\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("images.registry"), "{e}");
}
