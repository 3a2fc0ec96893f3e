//! A small static file server for the mirror tree: GET and HEAD, byte ranges, content types,
//! `Last-Modified`, and directory listings — what apt, dnf and a browser need. Paths are
//! resolved inside the served root only: `..` is refused and a symlink leading outside the
//! root is not followed. Idle and stalled clients cannot use the server up: connections are
//! capped, headers must arrive in time, a connection moving nothing is closed, and a failing
//! `accept` (descriptors exhausted) pauses the server instead of ending it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use perestroika_config::settings::ServeSettings;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

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

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A stream that records in [`Activity`] each read or write that moves bytes.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn full(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(text.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = full(status, format!("{text}\n"));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The file a request path names, if it lies within `root`.
fn resolve(root: &Path, raw: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let mut path = root.to_path_buf();
    for part in Path::new(decoded.as_ref()).components() {
        match part {
            Component::Normal(p) => path.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    // Symlinks may point anywhere inside the root (the tree's links do), never outside it.
    let real = path.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

/// The content type of a file, by name.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "deb" | "udeb" => "application/vnd.debian.binary-package",
        "rpm" => "application/x-rpm",
        "gz" => "application/gzip",
        "xz" => "application/x-xz",
        "bz2" => "application/x-bzip2",
        "zst" => "application/zstd",
        "xml" => "application/xml",
        "json" => "application/json",
        "asc" | "gpg" | "sig" => "application/pgp-signature",
        "html" | "htm" => "text/html; charset=utf-8",
        "dsc" | "log" | "txt" | "buildinfo" | "changes" => "text/plain; charset=utf-8",
        _ if matches!(
            name,
            "Release" | "InRelease" | "Packages" | "Sources" | "Contents" | "Index"
        ) =>
        {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

/// Parses a single `bytes=` range against a file of `len` bytes; `Err` when unsatisfiable.
pub fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: answer with the whole file, as allowed
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", "") => return None,
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, len.saturating_sub(1)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().ok()?, e.parse().ok()?);
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if len == 0 || range.0 > range.1 || range.0 >= len {
        return Some(Err(()));
    }
    Some(Ok(range))
}

async fn respond(
    root: &Path,
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let raw_path = req.uri().path().to_owned();
    let Some(path) = resolve(root, &raw_path) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    debug!(%peer, path = %raw_path, "GET");
    if meta.is_dir() {
        if !raw_path.ends_with('/') {
            let mut r = plain(StatusCode::MOVED_PERMANENTLY, "moved");
            if let Ok(v) = HeaderValue::from_str(&format!("{raw_path}/")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        return listing(&path, &raw_path, head).await;
    }
    let len = meta.len();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(Err(())) => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let body: Body = if head || count == 0 {
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed()
    } else {
        match tokio::fs::File::open(&path).await {
            Ok(mut file) => {
                if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
                    warn!(path = %path.display(), error = %e, "seek failed");
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "read error");
                }
                let stream = tokio_util::io::ReaderStream::new(file.take(count));
                StreamBody::new(stream.map_ok(Frame::data)).boxed()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return plain(StatusCode::NOT_FOUND, "not found")
            }
            // Descriptors exhausted, say: the client may retry, the file is there.
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot open");
                return plain(StatusCode::SERVICE_UNAVAILABLE, "cannot open the file now");
            }
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(modified) = meta.modified() {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn listing(dir: &Path, raw_path: &str, head: bool) -> Response<Body> {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = tokio::fs::metadata(entry.path())
                .await
                .map(|m| m.is_dir())
                .unwrap_or(false);
            names.push(if is_dir { format!("{name}/") } else { name });
        }
    }
    names.sort();
    let title = escape(raw_path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n"
    );
    for name in &names {
        let href = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            .replace("%2F", "/")
            .replace("%2E", ".")
            .replace("%2D", "-")
            .replace("%5F", "_");
        html.push_str(&format!(
            "<li><a href=\"{href}\">{}</a></li>\n",
            escape(name)
        ));
    }
    html.push_str("</ul></body></html>\n");
    let len = html.len();
    let mut resp = full(StatusCode::OK, if head { String::new() } else { html });
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs_err::create_dir_all(root.join("a/.9.gen/1")).unwrap();
        std::os::unix::fs::symlink(".9.gen/1", root.join("a/9")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/out")).unwrap();
        assert_eq!(resolve(&root, "/a/9/"), Some(root.join("a/.9.gen/1")));
        assert_eq!(
            resolve(&root, "/a/%2E9.gen/1"),
            Some(root.join("a/.9.gen/1"))
        );
        assert_eq!(resolve(&root, "/a/../../etc/passwd"), None);
        assert_eq!(resolve(&root, "/a/out/passwd"), None);
        assert_eq!(content_type("InRelease"), "text/plain; charset=utf-8");
        assert_eq!(
            content_type("x_1.0_all.deb"),
            "application/vnd.debian.binary-package"
        );
    }

    async fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
        use tokio::io::AsyncWriteExt;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        out
    }

    /// Reads until the server closes; `None` if it does not within `within`.
    async fn closed_within(c: &mut TcpStream, within: Duration) -> Option<usize> {
        let mut n = 0;
        let mut buf = vec![0; 1 << 16];
        tokio::time::timeout(within, async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        })
        .await
        .ok()
    }

    #[tokio::test]
    async fn idle_and_stalled_clients_are_closed_and_others_served_past_the_cap() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("small"), b"hello").unwrap();
        let big = vec![7u8; 32 << 20];
        fs_err::write(dir.path().join("big"), &big).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 3,
            header_timeout: Duration::from_millis(600),
            stall_timeout: Duration::from_millis(1500),
        };
        let server = tokio::spawn(serve(listener, dir.path().to_owned(), limits));

        // A reader that asks for 32 MiB and stops reading holds its slot until the stall
        // timeout, not forever.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        // Two that send nothing and two that stop halfway through their headers: more than
        // the cap.
        let mut idle = Vec::new();
        for half in [false, false, true, true] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            if half {
                c.write_all(b"GET /small HTTP/1.1\r\nHost:").await.unwrap();
            }
            idle.push(c);
        }
        let started = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(10), get(addr, "/small"))
            .await
            .expect("a client is served once the idle ones are closed");
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
        assert!(got.ends_with(b"hello"));
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        for (i, c) in idle.iter_mut().enumerate() {
            let n = closed_within(c, Duration::from_secs(3)).await;
            assert!(n.is_some(), "idle connection {i} still open");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sent = closed_within(&mut stalled, Duration::from_secs(10))
            .await
            .expect("the stalled reader is closed");
        assert!(sent < big.len(), "{sent} bytes: the whole file went out");
        assert!(!server.is_finished());
        server.abort();
    }
}
