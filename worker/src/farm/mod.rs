//! Farm mode: the worker consumes the build queues of the configuration. At its start it
//! removes what an earlier run left ([`retention`]); then it takes jobs only with a build slot
//! free, each under a lease ([`intake`], [`lease`]), and builds each and hands it to the
//! publisher ([`handover`]), until it is stopped. With `[worker] serve_staging` it serves its
//! staging area to the publisher ([`serve`]) and removes staged jobs after
//! `worker.staging_keep_secs` ([`retention::prune_staged`]).

pub mod handover;
pub mod intake;
pub mod lease;
pub mod retention;
pub mod serve;

use std::sync::Arc;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::hostname;

use crate::container::relay::RelayError;
use crate::container::rootfs;
use crate::container::{docker, SandboxError};
use crate::steps::{farm_state, BuildEnv};

/// Farm mode could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Docker(#[from] SandboxError),
    #[error("cleaning up after an earlier run")]
    Leftovers(#[source] SandboxError),
    #[error(transparent)]
    PackageCache(#[from] RelayError),
    #[error("creating the staging directory")]
    Staging(#[source] std::io::Error),
    #[error(
        "starting the staging area's rsync daemon ([worker] serve_staging); is rsync installed?"
    )]
    Serve(#[source] std::io::Error),
    #[error("the staging area's rsync daemon stopped ({0}); is [worker] serve_staging's address this host's and free? its messages are in this log")]
    ServeStopped(String),
}

/// Names this worker instance's containers: its host plus its state directory, so that a
/// restarted instance finds its own leftovers, and other workers on the same host keep theirs.
fn owner(farm: &FarmConfig) -> String {
    let instance = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(farm.paths.state.display().to_string().as_bytes())[..6])
    };
    format!("worker@{}:{instance}", hostname())
}

/// Runs farm mode until SIGTERM or Ctrl-C: cleans up after an earlier run, then takes and
/// builds jobs. Builds in flight when it stops are abandoned (their jobs are redelivered) and
/// their containers removed.
pub async fn run(farm: FarmConfig) -> Result<(), StartError> {
    let docker = crate::container::connect()?;
    let owner = owner(&farm);
    let removed = docker::remove_leftovers(&docker, &owner)
        .await
        .map_err(StartError::Leftovers)?;
    let state = farm_state(&farm);
    rootfs::release_leftovers(&state.join("scratch"));
    let _ = fs_err::remove_dir_all(state.join("scratch"));
    retention::at_start(&farm, &docker, &state).await;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed leftover build containers of an earlier run"
        );
    }
    let env = BuildEnv::farm(&farm, docker, owner)?;
    fs_err::create_dir_all(&farm.paths.staging).map_err(StartError::Staging)?;
    let served = serve::start(&farm, &state.join("rsyncd")).map_err(StartError::Serve)?;
    // A worker whose files the publisher cannot fetch takes no jobs: it stops with the daemon.
    let daemon = async {
        match served {
            Some(mut child) => match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            },
            None => std::future::pending().await,
        }
    };
    let (farm, env) = (Arc::new(farm), Arc::new(env));
    let prune = async {
        if farm.worker.serves_staging() {
            retention::prune_staged(farm.clone()).await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = intake::run(farm.clone(), env.clone()) => Ok(()),
        _ = prune => Ok(()),
        stopped = daemon => {
            let removed = docker::remove_leftovers(&env.docker, &env.owner).await.unwrap_or(0);
            tracing::info!(removed, "stopping; unfinished jobs go back to the queue");
            Err(StartError::ServeStopped(stopped))
        }
        _ = shutdown_signal() => {
            // Builds in flight are abandoned; their jobs are redelivered. Remove their containers.
            let removed = docker::remove_leftovers(&env.docker, &env.owner).await.unwrap_or(0);
            tracing::info!(removed, "stopped; unfinished jobs go back to the queue");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
