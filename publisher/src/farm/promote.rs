//! Promotions: done, announced to the mirrors, and answered to the asker.

use std::sync::Arc;
use std::time::Duration;

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{Broker, Disposition};
use perestroika_protocol::messages::{Promotion, PromotionResult, SCHEMA_VERSION};
use perestroika_protocol::validate;
use perestroika_protocol::QueueName;
use tracing::{error, info, warn};

use super::announce::announce;
use super::records::refused;
use crate::error::PublishError;
use crate::publisher::Publisher;
use crate::signing::Signer;

/// Promotes a package between suites, announces the new state and answers the asker.
pub(super) async fn promote(
    farm: Arc<FarmConfig>,
    signer: Arc<Signer>,
    queue: &QueueName,
    promotion: Promotion,
) -> Disposition {
    if let Err(e) = validate::promotion(&farm, queue, &promotion) {
        return refused(&promotion.job_id, e);
    }
    let (f2, s2, p2) = (farm.clone(), signer.clone(), promotion.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Publisher {
            farm: &f2,
            signer: &s2,
        }
        .promote(&p2)
    })
    .await
    .expect("promote task");
    let mut result = PromotionResult {
        schema_version: SCHEMA_VERSION,
        job_id: promotion.job_id.clone(),
        promoted: false,
        copied: Vec::new(),
        missing: Vec::new(),
        error: None,
        generation: None,
    };
    // A refusal is the asker's answer, not the farm's failure: it goes to the asking CLI and
    // the promotion is acknowledged. Only a refusal nobody hears (queued with --no-wait, or
    // the asker has gone) is dead-lettered, so that it is not lost.
    let refusal = match outcome {
        Ok(done) => {
            result.missing = done.missing;
            result.copied = done.copied;
            match done.published {
                Some(published) => {
                    result.promoted = true;
                    result.generation = Some(published.generation);
                    let sent = announce(
                        &farm,
                        &promotion.customer,
                        &promotion.version,
                        &published.tree,
                        published.generation,
                    )
                    .await;
                    if let Err(e) = sent {
                        error!(error = %e, "could not announce the promotion; it will be redone");
                        return Disposition::Later(e.to_string());
                    }
                    info!(package = %promotion.package, from = %promotion.from, to = %promotion.to, generation = published.generation, "promoted");
                    None
                }
                None => {
                    warn!(package = %promotion.package, to = %promotion.to, missing = %result.missing.join("; "), "promotion refused: unsatisfiable dependencies");
                    Some(format!(
                        "promotion refused; unsatisfied in the target suite: {}",
                        result.missing.join("; ")
                    ))
                }
            }
        }
        // A tool out of time says nothing about the request: the transient path below.
        Err(e)
            if !e.is_timeout()
                && (e.is_refusal() || matches!(e, PublishError::Deb(_) | PublishError::Rpm(_))) =>
        {
            warn!(package = %promotion.package, error = %e, "promotion refused");
            result.error = Some(e.to_string());
            Some(format!("promotion refused: {e}"))
        }
        Err(e) if e.is_timeout() => {
            error!(error = %e, "promotion timed out; the job waits");
            return Disposition::Later(e.to_string());
        }
        Err(e) => {
            error!(error = %e, "promotion failed; returning the job");
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Disposition::Retry;
        }
    };
    let answered = match &promotion.reply_to {
        Some(reply_to) => {
            match Broker::publish_once(&farm.broker, reply_to, &result, &result.job_id).await {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "could not answer the promotion's asker (it may have gone)");
                    false
                }
            }
        }
        None => false,
    };
    match refusal {
        Some(reason) if !answered => {
            Disposition::DeadLetter(format!("{reason} (nobody waited for the answer)"))
        }
        _ => Disposition::Ack,
    }
}
