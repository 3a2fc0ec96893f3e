//! RabbitMQ's management API: what the AMQP protocol does not tell, such as the messages each
//! queue has delivered and not yet had acknowledged.

use std::collections::HashMap;

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
) -> Result<HashMap<String, u64>, ManagementError> {
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
    let credentials = crate::broker::credentials_of(broker_url);
    let vhost = crate::broker::vhost_of(broker_url).replace('/', "%2F");
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
