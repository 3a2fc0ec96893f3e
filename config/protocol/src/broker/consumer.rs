//! Consuming a queue for ever: reconnecting, holding a message the farm cannot handle now, and acting on each answer.

use crate::queues::QueueName;
use futures_util::StreamExt;
use lapin::message::Delivery;
use perestroika_config::settings::{BrokerSettings, FarmConfig};
use perestroika_host::backoff::Backoff;
use std::future::Future;
use std::time::Duration;
use tracing::{info, warn};

use super::*;

/// Consumes `queue` for ever: connects with backoff, declares the queue, hands each message to
/// `handle`, and acts on its [`Disposition`]. A lost connection is re-established; messages
/// that were not acknowledged are redelivered by the broker.
pub async fn run_consumer<F, Fut>(
    settings: &BrokerSettings,
    queue: &QueueName,
    prefetch: u16,
    mut handle: F,
) -> !
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = (Delivery, Disposition)>,
{
    let name = queue.to_string();
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(settings.reconnect_max_secs.max(1)),
    );
    loop {
        let broker = Broker::connect_with_backoff(settings).await;
        let consumer = match broker.declare(queue).await {
            Ok(()) => broker.consume(&name, prefetch).await,
            Err(e) => Err(e),
        };
        let (_channel, mut consumer) = match consumer {
            Ok(c) => c,
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(queue = %name, error = %e, retry_in = ?delay, "cannot consume");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        info!(queue = %name, "consuming");
        backoff.reset();
        while let Some(next) = consumer.next().await {
            let delivery = match next {
                Ok(d) => d,
                Err(e) => {
                    warn!(queue = %name, error = %e, "consumer stopped");
                    break;
                }
            };
            let (delivery, disposition) = if let Some(why) = poisoned(&delivery, settings) {
                (delivery, Disposition::DeadLetter(why))
            } else {
                handle_holding(&name, delivery, &mut handle).await
            };
            let done = broker.settle(&name, &delivery, &disposition).await;
            if let Err(e) = done {
                warn!(queue = %name, error = %e, "could not settle message; it will be redelivered");
                break;
            }
        }
        let delay = backoff.next_delay();
        warn!(queue = %name, retry_in = ?delay, "lost the broker; reconnecting");
        tokio::time::sleep(delay).await;
    }
}

/// Hands a delivery to `handle`, and again after a backoff for as long as the answer is
/// [`Disposition::Later`], up to [`HOLD_LIMIT`]; returns the last answer.
pub(super) async fn handle_holding<F, Fut>(
    queue: &str,
    delivery: Delivery,
    handle: &mut F,
) -> (Delivery, Disposition)
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = (Delivery, Disposition)>,
{
    let since = std::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_secs(2), LATER_MAX_DELAY);
    let (mut delivery, mut disposition) = handle(delivery).await;
    while let Disposition::Later(reason) = &disposition {
        let delay = backoff.next_delay();
        if since.elapsed() + delay > HOLD_LIMIT {
            break;
        }
        warn!(%queue, %reason, retry_in = ?delay, "cannot handle the message now; trying again");
        tokio::time::sleep(delay).await;
        (delivery, disposition) = handle(delivery).await;
    }
    (delivery, disposition)
}

/// The `x-consumer-timeout` of `queue`: a build holds its job for up to `build.timeout_secs`
/// plus [`BUILD_CONSUMER_MARGIN`]; other queues keep the broker's.
pub fn consumer_timeout(farm: &FarmConfig, queue: &QueueName) -> Option<Duration> {
    (queue.stage == crate::queues::Stage::Build)
        .then(|| Duration::from_secs(farm.build.timeout_secs) + BUILD_CONSUMER_MARGIN)
}

/// This host's name, for connection names and consumer tags.
pub fn hostname() -> String {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
