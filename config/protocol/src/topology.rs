//! Declaring the farm's queues from its configuration and reporting on them.

use perestroika_config::FarmConfig;
use perestroika_protocol::broker::{Broker, BrokerError, QueueStats};
use perestroika_protocol::queues::all_queues;
use serde::Serialize;

/// One queue's state as the broker sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    pub queue: String,
    /// `None` when the queue does not exist.
    pub stats: Option<QueueStats>,
    /// Messages delivered and not yet acknowledged (jobs being worked on), when the broker's
    /// management API is configured (`[broker] management_url`).
    pub in_progress: Option<u64>,
}

/// The queues could not be reported on.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Management(#[from] ManagementError),
}

/// Reading RabbitMQ's management API failed.
#[derive(Debug, thiserror::Error)]
#[error("RabbitMQ's management API at {url}: {detail}; is the rabbitmq_management plugin enabled, and may the broker's user read it (tag `monitoring`)?")]
pub struct ManagementError {
    pub url: String,
    pub detail: String,
}

/// Messages in progress (delivered, not acknowledged) of every queue of the broker URL's
/// virtual host, from the management API at `api` (`http://host:port`).
pub async fn in_progress(
    api: &str,
    broker_url: &str,
) -> Result<std::collections::HashMap<String, u64>, ManagementError> {
    use base64::Engine;
    use http_body_util::BodyExt;
    let fail = |detail: String| ManagementError {
        url: api.to_owned(),
        detail,
    };
    let authority = api
        .strip_prefix("http://")
        .ok_or_else(|| fail("expected an http:// URL".into()))?
        .trim_end_matches('/');
    let credentials = perestroika_protocol::broker::credentials_of(broker_url);
    let vhost = perestroika_protocol::broker::vhost_of(broker_url).replace('/', "%2F");
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(conn);
    let request = hyper::Request::get(format!(
        "/api/queues/{vhost}?columns=name,messages_unacknowledged"
    ))
    .header("host", authority)
    .header(
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ),
    )
    .body(http_body_util::Empty::<hyper::body::Bytes>::new())
    .map_err(|e| fail(e.to_string()))?;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sender.send_request(request),
    )
    .await
    .map_err(|_| fail("no answer within 10 s".into()))?
    .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(fail(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    #[derive(serde::Deserialize)]
    struct Queue {
        name: String,
        #[serde(default)]
        messages_unacknowledged: u64,
    }
    let queues: Vec<Queue> = serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))?;
    Ok(queues
        .into_iter()
        .map(|q| (q.name, q.messages_unacknowledged))
        .collect())
}

/// Declares every work queue, waiting room and dead-letter queue of the configuration; returns
/// their names (each work queue followed by its waiting room and its dead-letter queue).
pub async fn bootstrap(broker: &Broker, farm: &FarmConfig) -> Result<Vec<String>, BrokerError> {
    let queues = broker.declare_all(farm, true).await?;
    Ok(queues
        .iter()
        .flat_map(|q| [q.to_string(), q.later(), q.dead_letter()])
        .collect())
}

/// Depth and consumers of every queue the configuration calls for, and the messages in
/// progress when the management API is configured.
pub async fn report(broker: &Broker, farm: &FarmConfig) -> Result<Vec<QueueReport>, ReportError> {
    let progress = match &farm.broker.management_url {
        Some(api) => Some(in_progress(api, &farm.broker.url).await?),
        None => None,
    };
    let mut out = Vec::new();
    for q in all_queues(farm) {
        for name in [q.to_string(), q.later(), q.dead_letter()] {
            let stats = match broker.stats(&name).await {
                Ok(s) => Some(s),
                Err(BrokerError::Queue { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let in_progress = progress
                .as_ref()
                .map(|p| p.get(&name).copied().unwrap_or(0));
            out.push(QueueReport {
                queue: name,
                stats,
                in_progress,
            });
        }
    }
    Ok(out)
}
