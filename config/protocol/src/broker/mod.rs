//! All AMQP plumbing of the farm: the queue topology, publishing with confirms, consuming with
//! manual acknowledgement, dead-lettering with a reason, and reconnecting with backoff.
//!
//! Every work queue is a durable quorum queue whose rejected or over-delivered messages go to
//! `<queue>.dead` (at-least-once dead-lettering, so a dead letter is never lost either). Every
//! message goes through a named exchange ([`crate::queues::exchange_of`]).

use std::time::Duration;

use lapin::{Channel, Connection};

use perestroika_config::settings::BrokerSettings;

mod connection;
mod consumer;
mod receive;
mod send;
#[cfg(test)]
mod tests;
mod topology;
mod url;

pub use consumer::*;
pub use receive::*;
use topology::*;
pub use url::*;

/// Header that carries why the farm dead-lettered a message.
pub const REASON_HEADER: &str = "x-perestroika-reason";
/// Header that names the queue a dead letter came from.
pub const ORIGIN_HEADER: &str = "x-perestroika-queue";
/// The most bytes of free text (a dead letter's reason) the farm puts into one header: a
/// message's headers travel in one AMQP frame (128 KiB by default), and a reason as long as a
/// build log would make the broker close the connection instead of taking the dead letter.
pub const MAX_HEADER_TEXT: usize = 4096;
/// What ends a text [`header_text`] had to cut.
const CUT_MARKER: &str = " … [cut]";

/// `text` as the farm puts it into a header: whole when it fits [`MAX_HEADER_TEXT`], else cut on
/// a char boundary and ended with a marker, `MAX_HEADER_TEXT` bytes in all.
pub fn header_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_HEADER_TEXT {
        return text.into();
    }
    let mut end = MAX_HEADER_TEXT - CUT_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end]).into()
}

/// A broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach RabbitMQ at {url}: {source}; is it running? (`rabbitmqctl status`)")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ at {url} did not answer within {secs} s; is the node up and its address reachable from this host?")]
    ConnectTimeout { url: String, secs: u64 },
    #[error("RabbitMQ at {url} refused user {user} on virtual host {vhost}: check the password in [broker] url, and that the user may use the virtual host (`rabbitmqctl list_permissions -p {vhost}`)")]
    AccessRefused {
        url: String,
        user: String,
        vhost: String,
    },
    #[error("TLS with RabbitMQ at {url} failed: {source}; a broker certificate from a private authority needs [broker] ca_file, and a broker that asks for a client certificate needs client_cert_file and client_key_file")]
    Tls {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("{path}: {source} (a TLS file of [broker])")]
    TlsFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("RabbitMQ refused to make {what} ({source}), and it does not exist: run `perestroika-queue bootstrap` with the broker administrator's user, which makes the farm's exchanges and queues")]
    Topology {
        what: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ refused {what} on queue {queue}: {source}")]
    Queue {
        what: &'static str,
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "queue {queue} does not exist; declare the topology with `perestroika-queue bootstrap`"
    )]
    Unroutable { queue: String },
    #[error("RabbitMQ did not confirm the message to {queue} (negative acknowledgement)")]
    Nacked { queue: String },
    #[error("RabbitMQ connection failed: {0}")]
    Channel(#[source] lapin::Error),
    #[error("a delivery of {queue} could not be settled: its channel is gone (the broker took it back, e.g. after its consumer_timeout, and delivers it again)")]
    Unsettled { queue: String },
}

/// Depth and consumers of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

/// What a consumer decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done; its effect is durable.
    Ack,
    /// Put it back for another try (counts against the delivery limit): for failures whose
    /// cause is not known, so that a message that keeps failing ends in the dead letters.
    Retry,
    /// The farm could not do it now (a service down, a timeout, a full disk), not the message's
    /// fault: tried again after a backoff, never counted against the delivery limit, never
    /// dead-lettered. The consumer holds the message while it retries (it keeps its place
    /// in the queue) for up to [`HOLD_LIMIT`], then rejects it: the broker moves it to the
    /// queue's waiting room, whence it returns to the back of the queue after [`LATER_DELAY`].
    Later(String),
    /// It can never succeed: move it to the dead-letter queue with this reason.
    DeadLetter(String),
}

/// How long a consumer holds a message it cannot handle now before it lets it wait in its
/// queue's waiting room: well below RabbitMQ's default `consumer_timeout` (30 minutes), after
/// which the broker would take the message back and count a delivery.
pub const HOLD_LIMIT: Duration = Duration::from_secs(600);

/// The longest pause between two tries of a message the farm could not handle now.
pub const LATER_MAX_DELAY: Duration = Duration::from_secs(60);

/// What a build queue's `x-consumer-timeout` allows beyond `build.timeout_secs`: fetching the
/// sources, collecting the results and handing them over happen outside the build timeout.
pub const BUILD_CONSUMER_MARGIN: Duration = Duration::from_secs(3600);

/// A connection to RabbitMQ with a confirming channel for publishing.
pub struct Broker {
    conn: Connection,
    publish: Channel,
    settings: BrokerSettings,
}
