//! Signature refreshes: asked for on a timer, and done where publishes are done.

use std::sync::Arc;
use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{Broker, Disposition};
use perestroika_protocol::messages::SignatureRefresh;
use perestroika_protocol::{QueueName, Stage};
use tracing::{error, info, warn};

use super::announce::announce;
use crate::publisher::Publisher;
use crate::signing::Signer;

/// How often the publisher asks each release whether its signatures are due again: an eighth
/// of their validity, between a few seconds and an hour.
pub(super) fn refresh_interval(farm: &FarmConfig) -> Option<Duration> {
    let secs = farm.publish.valid_for_secs;
    (secs > 0).then(|| Duration::from_secs((secs / 8).clamp(5, 3600)))
}

/// Sends a [`SignatureRefresh`] to every release's publish queue on a timer, so that signed
/// indexes are signed again before their `Valid-Until` passes, with nobody publishing. The
/// refresh itself runs where publishes run (one at a time per release, by whichever publisher
/// is the queue's active consumer); one waiting in the queue is enough.
pub(super) async fn ask_for_refreshes(farm: Arc<FarmConfig>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let broker = match Broker::connect(&farm.broker).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "could not ask for signature refreshes; trying again later");
                continue;
            }
        };
        for (customer, release) in farm.releases() {
            let queue = QueueName::new(Stage::Publish, &customer.name, &release.name).to_string();
            let refresh = SignatureRefresh::new(&customer.name, &release.name);
            let waiting = broker.stats(&queue).await.is_ok_and(|q| q.messages > 0);
            // A queue with messages waiting gets its refresh with the next tick: a publish
            // there signs (and dates) anew anyway.
            if !waiting {
                if let Err(e) = broker.publish(&queue, &refresh, &refresh.job_id).await {
                    warn!(%queue, error = %e, "could not ask for a signature refresh");
                }
            }
        }
        broker.close().await;
    }
}

/// Signs a release's indexes again if they are due, and announces the new generation.
pub(super) async fn refresh(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    refresh: SignatureRefresh,
) -> Disposition {
    if refresh.customer != queue.customer || refresh.version != queue.version {
        return Disposition::DeadLetter(format!(
            "signature refresh for {} {} arrived on {queue}",
            refresh.customer, refresh.version
        ));
    }
    let (f2, s2, r2) = (farm.clone(), signer.clone(), refresh.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &f2,
            signer: &s2,
        }
        .refresh_signatures(&r2.customer, &r2.version)
    })
    .await
    .expect("refresh task");
    match outcome {
        Ok(None) => Disposition::Ack,
        Ok(Some(published)) => {
            info!(tree = %published.tree, generation = published.generation, "signatures refreshed before their Valid-Until");
            let sent = announce(
                &farm,
                &refresh.customer,
                &refresh.version,
                &published.tree,
                published.generation,
            )
            .await;
            match sent {
                Ok(()) => Disposition::Ack,
                Err(e) => {
                    error!(error = %e, "could not announce the refreshed signatures; the refresh will be redone");
                    Disposition::Later(e.to_string())
                }
            }
        }
        Err(e) => {
            error!(error = %e, "could not refresh the signatures; returning the request");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Disposition::Retry
        }
    }
}
