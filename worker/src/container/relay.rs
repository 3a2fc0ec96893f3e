//! The only network a build container ever has. Containers are created without one (Docker's
//! `none`: a loopback interface and nothing else). While the build dependencies are installed,
//! the worker opens a listener on the container's own loopback — made from the host, in the
//! container's network namespace — and forwards each connection to the package cache. Nothing
//! in the container can reach another address, and once the relay is dropped, not even that.

use std::os::fd::AsFd;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The relay could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("package cache URL {0:?}: expected http://HOST[:PORT][/…]")]
    Url(String),
    #[error("opening the package cache relay in the build container (process {pid}): {source}; the worker must run as root")]
    Open {
        pid: i64,
        #[source]
        source: std::io::Error,
    },
}

/// Connections one relay forwards at once (apt and dnf open a few).
const MAX_CONNECTIONS: usize = 32;

/// `host:port` of an `http://` package cache URL.
pub fn cache_address(url: &str) -> Result<String, RelayError> {
    let bad = || RelayError::Url(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let has_port = match authority.rsplit_once(':') {
        // An IPv6 literal's last colon is inside its brackets.
        Some((_, port)) if !authority.ends_with(']') => {
            port.parse::<u16>().map_err(|_| bad())?;
            true
        }
        _ => false,
    };
    Ok(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// A listener on a build container's loopback forwarding to the package cache; closed (with
/// every connection through it) when dropped.
pub struct Relay {
    /// The port on the container's 127.0.0.1.
    pub port: u16,
    task: JoinHandle<()>,
}

impl Relay {
    /// Opens a relay in the network namespace of process `pid` (the container's) to `cache`
    /// (`host:port`, as this host reaches it).
    pub async fn open(pid: i64, cache: String) -> Result<Self, RelayError> {
        let err = |source| RelayError::Open { pid, source };
        // setns applies to the calling thread only: a thread of its own enters the namespace,
        // makes the socket (which stays in that namespace) and ends.
        let made = std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .join()
        .map_err(|_| err(std::io::Error::other("the relay thread panicked")))?
        .map_err(err)?;
        let port = made.local_addr().map_err(err)?.port();
        let listener = TcpListener::from_std(made).map_err(err)?;
        let task = tokio::spawn(forward(listener, cache));
        Ok(Self { port, task })
    }

    /// The proxy URL apt and dnf use inside the container.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections and pipes each to the cache; the connections live in a set the task
/// owns, so aborting the task ends them all.
async fn forward(listener: TcpListener, cache: String) {
    let mut connections = JoinSet::new();
    loop {
        let (mut inside, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "package cache relay: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            continue;
        }
        let cache = cache.clone();
        connections.spawn(async move {
            match TcpStream::connect(&cache).await {
                Ok(mut outside) => {
                    let _ = copy_bidirectional(&mut inside, &mut outside).await;
                }
                Err(e) => {
                    tracing::warn!(cache = %cache, error = %e, "package cache relay: the cache is unreachable");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_addresses() {
        let ok = |u: &str| cache_address(u).unwrap();
        assert_eq!(ok("http://127.0.0.1:3142"), "127.0.0.1:3142");
        assert_eq!(
            ok("http://cache.example.invalid:3142/"),
            "cache.example.invalid:3142"
        );
        assert_eq!(
            ok("http://cache.example.invalid"),
            "cache.example.invalid:80"
        );
        assert_eq!(ok("http://[::1]:3142/x"), "[::1]:3142");
        assert_eq!(ok("http://[::1]"), "[::1]:80");
        for bad in [
            "https://c:1",
            "c:3142",
            "http://",
            "http://u:p@c:1",
            "http://c:port",
        ] {
            assert!(cache_address(bad).is_err(), "{bad}");
        }
    }
}
