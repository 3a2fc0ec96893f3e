//! The mirror daemon: announcements from every `mirror.<customer>.<version>` queue (one active
//! consumer per queue) set what each target should have; one task per target brings it there,
//! always to the newest announced state, retrying with backoff without holding up the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use perestroika_config::FarmConfig;
use perestroika_host::backoff::Backoff;
use perestroika_protocol::broker::{run_consumer, Disposition};
use perestroika_protocol::messages::{Message, MirrorAnnouncement};
use perestroika_protocol::validate;
use perestroika_protocol::{QueueName, Stage};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::rsync::Target;
use crate::status::Status;
use crate::sync::{remove, sync_tracked, Manifest};
use perestroika_tree::TreeName;

/// One target's worker and its wake-up call.
struct Worker {
    target: Target,
    wake: Arc<Notify>,
}

/// Runs until stopped.
pub async fn run(farm: Arc<FarmConfig>, targets: Vec<Target>) -> anyhow::Result<()> {
    let status = Arc::new(Status::load(&Status::path(&farm.paths.state))?);
    let workers: Vec<Worker> = targets
        .into_iter()
        .map(|target| Worker {
            target,
            wake: Arc::new(Notify::new()),
        })
        .collect();
    let names: Arc<Vec<String>> = Arc::new(workers.iter().map(|w| w.target.name.clone()).collect());
    let wakes: Arc<Vec<Arc<Notify>>> = Arc::new(workers.iter().map(|w| w.wake.clone()).collect());
    let mut tasks = Vec::new();
    for worker in workers {
        let (farm, status) = (farm.clone(), status.clone());
        tasks.push(tokio::spawn(async move {
            keep_in_sync(&farm, &status, worker).await
        }));
    }
    for (customer, release) in farm.releases() {
        let queue = QueueName::new(Stage::Mirror, &customer.name, &release.name);
        let (farm, status, names, wakes) =
            (farm.clone(), status.clone(), names.clone(), wakes.clone());
        let settings = farm.broker.clone();
        tasks.push(tokio::spawn(async move {
            run_consumer(&settings, &queue.clone(), 1, |delivery| {
                let disposition = announced(&farm, &status, &names, &wakes, &queue, &delivery.data);
                async move { (delivery, disposition) }
            })
            .await;
        }));
    }
    futures_util::future::join_all(tasks).await;
    Ok(())
}

/// Records an announcement for every target, durably, before it is acknowledged.
fn announced(
    farm: &FarmConfig,
    status: &Status,
    names: &[String],
    wakes: &[Arc<Notify>],
    queue: &QueueName,
    data: &[u8],
) -> Disposition {
    let ann = match MirrorAnnouncement::from_bytes(data) {
        Ok(a) => a,
        Err(e) => return Disposition::DeadLetter(format!("not a valid mirror announcement: {e}")),
    };
    if let Err(e) = validate::announcement(farm, queue, &ann) {
        warn!(tree = %ann.tree, generation = ann.generation, reason = %e, "refusing an announcement");
        return Disposition::DeadLetter(e.to_string());
    }
    // The publisher takes a tree down (link first) before it announces generation 0: a tree
    // still live here was not retired, whatever the message says.
    let live = farm.paths.public_root.join(&ann.tree);
    if ann.generation == 0 && fs_err::symlink_metadata(&live).is_ok() {
        let reason = format!(
            "mirror announcement refused: generation 0 for {}, which is still live in {}",
            ann.tree,
            farm.paths.public_root.display()
        );
        warn!(tree = %ann.tree, %reason, "refusing an announcement");
        return Disposition::DeadLetter(reason);
    }
    if let Err(e) = TreeName::parse(&ann.tree) {
        return Disposition::DeadLetter(e.to_string());
    }
    match status.want(names, &ann.tree, ann.generation) {
        Ok(newer) => {
            info!(tree = %ann.tree, generation = ann.generation, newer, "announcement");
            for wake in wakes {
                wake.notify_one();
            }
            Disposition::Ack
        }
        Err(e) => {
            error!(error = %e, "cannot record the announcement; returning it");
            Disposition::Later(e.to_string())
        }
    }
}

/// Brings one target to what the status wants, for ever.
async fn keep_in_sync(farm: &FarmConfig, status: &Status, worker: Worker) {
    let name = worker.target.name.clone();
    let scratch = scratch_dir(farm, &name);
    // Each failing tree waits for its own retry; the others go on meanwhile.
    let mut retries: HashMap<String, (tokio::time::Instant, Backoff)> = HashMap::new();
    loop {
        let now = tokio::time::Instant::now();
        let waiting = |tree: &str| retries.get(tree).is_some_and(|(at, _)| *at > now);
        let Some((tree, generation)) = status.next_for_except(&name, waiting) else {
            // Nothing due: wait for an announcement, or the next retry.
            match retries
                .values()
                .map(|(at, _)| *at)
                .filter(|at| *at > now)
                .min()
            {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = worker.wake.notified() => {}
                    }
                }
                None => worker.wake.notified().await,
            }
            continue;
        };
        let Ok(tree_ref) = TreeName::parse(&tree) else {
            continue;
        };
        info!(target = %name, %tree, generation, "syncing");
        let started = std::time::Instant::now();
        let outcome = if generation == 0 {
            let removed = remove(&tree_ref, &worker.target, &scratch).await;
            if removed.is_ok() {
                let _ = fs_err::remove_file(Manifest::path(&farm.paths.state, &name, &tree_ref));
            }
            removed
        } else {
            let (root, state) = (&farm.paths.public_root, &farm.paths.state);
            sync_tracked(
                root,
                state,
                &tree_ref,
                generation,
                &worker.target,
                &scratch,
                false,
            )
            .await
        };
        match outcome {
            Ok(moved) => {
                info!(target = %name, %tree, generation, stage = "mirror", files = moved.files, bytes_sent = moved.bytes_sent, secs = started.elapsed().as_secs_f64(), "in sync");
                if let Err(e) = status.synced(&name, &tree, generation, moved) {
                    error!(error = %e, "cannot record the sync");
                }
                retries.remove(&tree);
            }
            Err(e) => {
                let (at, backoff) = retries.entry(tree.clone()).or_insert_with(|| {
                    (
                        now,
                        Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
                    )
                });
                let delay = backoff.next_delay();
                *at = tokio::time::Instant::now() + delay;
                warn!(target = %name, %tree, generation, error = %e, retry_in_secs = delay.as_secs_f64(), "sync failed; the other trees go on meanwhile");
                let _ = status.failed(&name, &tree, &e.to_string());
            }
        }
    }
}

/// A private scratch directory per target.
pub fn scratch_dir(farm: &FarmConfig, target: &str) -> PathBuf {
    farm.paths.state.join("mirror").join("scratch").join(target)
}
