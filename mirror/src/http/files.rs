//! Answers to requests: files within the root, byte ranges, content types and listings.

use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{debug, warn};

use super::Body;

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
pub(super) fn resolve(root: &Path, raw: &str) -> Option<PathBuf> {
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

pub(super) async fn respond(
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
