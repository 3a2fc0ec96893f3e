//! A small static file server for the mirror tree: GET and HEAD, byte ranges, content types,
//! `Last-Modified`, and directory listings — what apt, dnf and a browser need. Paths are
//! resolved inside the served root only: `..` is refused and a symlink leading outside the
//! root is not followed. Idle and stalled clients cannot use the server up: connections are
//! capped, headers must arrive in time, a connection moving nothing is closed, and a failing
//! `accept` (descriptors exhausted) pauses the server instead of ending it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::rt::{TokioIo, TokioTimer};
use perestroika_config::settings::ServeSettings;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

mod activity;
mod files;
#[cfg(test)]
mod tests;

use activity::{Activity, Tracked};
use files::respond;
pub use files::{content_type, parse_range};

type Body = BoxBody<Bytes, std::io::Error>;

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones wait in the listen backlog, unaccepted.
    pub max_connections: usize,
    /// A request's headers must arrive within this, also between requests on a kept-alive
    /// connection (hyper's `header_read_timeout`).
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed.
    pub stall_timeout: Duration,
}

impl From<&ServeSettings> for Limits {
    fn from(s: &ServeSettings) -> Self {
        Self {
            max_connections: usize::try_from(s.max_connections).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(s.header_timeout_secs),
            stall_timeout: Duration::from_secs(s.stall_timeout_secs),
        }
    }
}

/// The first pause after a failed `accept` (descriptors exhausted, say); it doubles up to
/// [`ACCEPT_PAUSE_MAX`] while accepting keeps failing.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(50);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Serves `root` on `listener` within `limits` until the task is dropped. A failing `accept`
/// is logged and retried after a pause; only an unusable `root` ends it.
pub async fn serve(listener: TcpListener, root: PathBuf, limits: Limits) -> io::Result<()> {
    let root = Arc::new(root.canonicalize()?);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut pause = ACCEPT_PAUSE_MIN;
    let mut full = false;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            unreachable!("the semaphore is never closed");
        };
        if slots.available_permits() == 0 && !full {
            warn!(
                max_connections = limits.max_connections,
                "every connection slot is taken; new connections wait"
            );
        }
        full = slots.available_permits() == 0;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                pause = ACCEPT_PAUSE_MIN;
                accepted
            }
            Err(e) => {
                warn!(error = %e, pause_ms = pause.as_millis(), "accept failed; serving on after a pause");
                drop(slot);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                continue;
            }
        };
        tokio::spawn(connection(stream, peer, root.clone(), limits, slot));
    }
}

/// Serves one connection, holding its `slot` until it ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    root: Arc<PathBuf>,
    limits: Limits,
    slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn(move |req| {
        let root = root.clone();
        async move { Ok::<_, Infallible>(respond(&root, req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let idle = activity.idle();
        if idle >= limits.stall_timeout {
            info!(%peer, idle_secs = idle.as_secs(), "closing a stalled http connection");
            break;
        }
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    debug!(%peer, error = %e, "http connection ended");
                }
                break;
            }
            () = tokio::time::sleep(limits.stall_timeout - idle) => {}
        }
    }
    drop(slot);
}
