use super::*;
use bollard::Docker;
use perestroika_config::settings::BuildSettings;
use perestroika_protocol::messages::{GitSource, Sources};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::source::git::GitCache;
use crate::source::SourceInput;

/// A git server that accepts connections and never answers costs one
/// `build.git_timeout_secs`, without holding up the runtime meanwhile, and comes back as the
/// farm's error (the job is returned and tried again), not as a build failed at `source`.
#[tokio::test(flavor = "current_thread")]
async fn a_git_server_that_never_answers_is_retried_not_failed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = BuildSettings {
        git_timeout_secs: 2,
        ..BuildSettings::default()
    };
    let env = BuildEnv {
        docker: Docker::connect_with_local_defaults().unwrap(),
        git: GitCache::new(&dir.path().join("git"), settings.git_deadline()),
        scratch: dir.path().join("scratch"),
        roots: dir.path().join("roots"),
        owner: "test".into(),
        worker_name: "test".into(),
        timeout: Duration::from_secs(60),
        settings,
        package_cache: None,
        registry: None,
    };
    let repo = GitSource {
        project: "acme/packages/deb/bookworm/greet".into(),
        url: format!("http://127.0.0.1:{port}/acme/packages/deb/bookworm/greet"),
        branch: "9.0".into(),
        commit: "1".repeat(40),
        fetch_ref: None,
    };
    let req = BuildRequest {
        job_id: "hung-git".into(),
        input: SourceInput::Git {
            sources: Box::new(Sources::Combined { repo }),
            rebuild: 0,
            review: false,
        },
        distro: "bookworm".into(),
        family: None,
        dep_repos: Vec::new(),
        base_digest: None,
        out_dir: dir.path().join("out"),
        echo: false,
    };
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let started = Instant::now();
    let work = env.scratch.join(&req.job_id);
    let outcome = prepare_sources(&env, &req, Family::Deb, &work).await;
    let took = started.elapsed();
    ticker.abort();
    let err = match outcome {
        Err(e @ InfraError::Source(_)) => e,
        Err(e) => panic!("another farm error: {e}"),
        Ok(Err(e)) => panic!("a git timeout failed the build at step source: {e}"),
        Ok(Ok(_)) => panic!("a server that never answers gave sources"),
    };
    let text = err.to_string();
    assert!(
        text.contains("build.git_timeout_secs") && text.contains("git clone"),
        "{text}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    // The runtime went on while git waited (a blocked runtime would not have ticked).
    assert!(ticks.load(Ordering::Relaxed) >= 10, "{ticks:?}");
    // The abandoned clone left nothing behind but the mirror's lock and use stamp.
    let left: Vec<_> = fs_err::read_dir(dir.path().join("git"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| {
            let n = n.to_string_lossy();
            !n.ends_with(".lock") && !n.ends_with(".used")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
