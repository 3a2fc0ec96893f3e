//! A farm whose worker and CLI hosts have no public tree: the worker daemon takes build
//! dependencies from the mirror's http server, `retrigger` numbers rebuilds from it and
//! `rebuild-release` rebuilds a snapshot copied from it — all verified against the pinned
//! key — and a forged tree on the mirror is refused by each.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use perestroika_protocol::messages::BuildJob;
use perestroika_tests::apt::OperatorKey;
use perestroika_tests::debian::dh_package;
use perestroika_tests::whole::{change, push_greet, WholeFarm, SPLIT_BRANCH};
use perestroika_tests::{run, sh, Daemon};

const BUILD_TIME: Duration = Duration::from_secs(600);

fn retrigger(cfg: &Path, code: &str, dry_run: bool) -> Output {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "retrigger",
        code,
        SPLIT_BRANCH,
    ];
    if dry_run {
        args.push("--dry-run");
    }
    run("perestroika-queue", &args)
}

fn rebuild_numbers(out: &Output) -> Vec<u32> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs: Vec<BuildJob> = serde_json::from_slice(&out.stdout).unwrap();
    jobs.iter().map(|j| j.rebuild).collect()
}

fn rebuild_release(cfg: &Path, customer: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "rebuild-release",
        customer,
        "9.0",
    ];
    args.extend_from_slice(extra);
    run("perestroika-queue", &args)
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Fails unless `out` failed saying `words`.
fn assert_refused(out: &Output, what: &str, words: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: not refused\n{stderr}");
    assert!(
        stderr.contains(words),
        "{what}: expected {words:?} in\n{stderr}"
    );
}

#[test]
fn a_farm_without_the_public_tree_builds_numbers_and_rebuilds_from_the_mirror() {
    let mut f = WholeFarm::start();
    let c = f.farm.customer.clone();
    let release = f.tree("9.0");

    // greet, built by the farm's usual worker, published and mirrored.
    let (code, packaging, pkg_head) = push_greet(&f, "Hello through the mirror");
    f.event(
        &change(&packaging, SPLIT_BRANCH, 401, 1, &pkg_head),
        "change-merged",
    );
    let first = f.wait_mirrored(&release, 1, BUILD_TIME);

    // The worker daemon moves to a host without the public tree: [public] url is the mirror.
    let (remote, empty_root) = f.config_without_tree("remote", None);
    f.worker.kill();
    f.worker = Daemon::start(
        "perestroika-worker",
        &["--config", remote.to_str().unwrap(), "run"],
        &f.farm.dir.path().join("remote-worker.log"),
    );

    // greet-user's build runs greet: greet can only come from the mirror.
    let files = dh_package("greet-user", "greet", "greet");
    let user_project = format!("{c}/packages/deb/bookworm/greet-user");
    let user_head = f.gerrit.push(&user_project, "9.0", &files, "greet-user");
    f.event(
        &change(&user_project, "9.0", 402, 1, &user_head),
        "change-merged",
    );
    let second = f.wait_mirrored(&release, first + 1, BUILD_TIME);
    assert_eq!(f.mirrored_versions("9.0", "greet-user"), ["1.0+p1.0"]);
    let said = f.apt_install_from_mirror(&["greet-user"], "cat /usr/share/greet-user/output");
    assert_eq!(said.trim(), "Hello through the mirror");
    assert_eq!(
        fs_err::read_dir(&empty_root).unwrap().count(),
        0,
        "the remote worker's public root must stay empty"
    );

    // retrigger from the host without the tree: nothing rebuilt yet, so rebuild 1; once
    // that is built (by the remote worker) and mirrored, the next is 2 — read over http.
    assert_eq!(rebuild_numbers(&retrigger(&remote, &code, true)), [1]);
    assert_eq!(rebuild_numbers(&retrigger(&remote, &code, false)), [1]);
    f.wait_mirrored(&release, second + 1, BUILD_TIME);
    let mut greet = f.mirrored_versions("9.0", "greet");
    greet.sort();
    assert_eq!(greet, ["1.0+git1-1+p1.0", "1.0+git1-1+p1.1"]);
    assert_eq!(rebuild_numbers(&retrigger(&remote, &code, true)), [2]);
    // The host with the tree reads the same number through the same reader.
    assert_eq!(rebuild_numbers(&retrigger(&f.farm.path, &code, true)), [2]);

    // rebuild-release over http: the live snapshot, copied and verified, rebuilds identically.
    let out = rebuild_release(&remote, &c, &[]);
    let reports = perestroika_tests::rebuild_reports(&out);
    perestroika_tests::assert_rebuilt_identically(&out, &reports, &["greet", "greet-user"]);
    // A snapshot the mirror does not have is refused, by number.
    let out = rebuild_release(&remote, &c, &["--snapshot", "999"]);
    assert_refused(&out, "snapshot 999", "snapshot 999 does not exist");
    // The mirror's listing is read, and each snapshot in it kept only once its own InRelease
    // verifies: the three generations so far.
    assert_refused(&out, "snapshot 999", "whose signature holds: 1, 2, 3");

    // Forged mirrors: a copy of the mirrored tree, changed, served at another URL.
    let forged = |name: &str, change: &dyn Fn(&Path)| -> PathBuf {
        let copy = f.farm.dir.path().join(name);
        sh(std::process::Command::new("cp")
            .arg("-a")
            .arg(&f.mirror)
            .arg(&copy));
        change(&copy.join(&release));
        copy
    };
    let against = |root: &Path, name: &str| -> (Daemon, PathBuf) {
        let (daemon, url) = f.farm.serve_mirror(root);
        let (cfg, _) = f.config_without_tree(name, Some(&url));
        (daemon, cfg)
    };

    // The source index (by name and by hash) claims nothing was rebuilt: refused by its
    // sha256, the rebuild number is not guessed.
    let sources = forged("forged-sources", &|tree| {
        let dir = tree.join("deb/dists/bookworm/main/source");
        let mut changed = 0;
        for file in files_below(&dir) {
            let _ = fs_err::remove_file(&file);
            fs_err::write(&file, b"Package: greet\nVersion: 1.0+git1-1+p1.0\n").unwrap();
            changed += 1;
        }
        assert!(changed > 0, "no Sources index below {}", dir.display());
    });
    let (_serve_sources, cfg) = against(&sources, "forged-sources-cfg");
    assert_refused(&retrigger(&cfg, &code, true), "forged Sources", "refused");
    assert_refused(&rebuild_release(&cfg, &c, &[]), "forged Sources", "refused");

    // Another key re-signed the suite and put itself in KEY.asc: a bad signature.
    let rogue = OperatorKey::new();
    let resigned = forged("forged-inrelease", &|tree| {
        let suite = tree.join("deb/dists/bookworm");
        let text = fs_err::read_to_string(suite.join("Release")).unwrap();
        let plain = tree.join("../Release.rogue");
        fs_err::write(&plain, text).unwrap();
        let _ = fs_err::remove_file(suite.join("InRelease"));
        rogue.sign(&plain, &suite.join("InRelease"), true);
        let _ = fs_err::remove_file(tree.join("KEY.asc"));
        fs_err::copy(rogue.public_file(), tree.join("KEY.asc")).unwrap();
    });
    let (_serve_resigned, cfg) = against(&resigned, "forged-inrelease-cfg");
    // The re-signed live snapshot drops out of the list; the others still verify.
    let out = rebuild_release(&cfg, &c, &["--snapshot", "999"]);
    assert_refused(&out, "re-signed listing", "whose signature holds: 1, 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("holds: 1, 2, 3"), "{stderr}");
    assert_refused(
        &retrigger(&cfg, &code, true),
        "re-signed InRelease",
        "bad signature, refused",
    );
    assert_refused(
        &rebuild_release(&cfg, &c, &[]),
        "re-signed InRelease",
        "bad signature, refused",
    );
}
