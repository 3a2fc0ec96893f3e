//! Where published files come from: the public root on this host, or a mirror's http server.
//! Every read is of a path inside the tree (checked, never `..`), bounded in size, and over
//! http bounded in time, with redirects refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::ReadError;

/// A public tree's base: `http://host[:port]/path/` of a mirror, or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The public root on this host (`[paths] public_root`).
    Dir(PathBuf),
    /// A mirror's http server serving the public root.
    Http(BaseUrl),
}

pub use perestroika_config::settings::BaseUrl;

#[cfg(test)]
fn url_of(base: &BaseUrl, rel: &str) -> String {
    format!("{}{}", base.as_url(), encode(rel))
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Dir(d) => write!(f, "{}", d.display()),
            Source::Http(u) => write!(f, "{}", u.as_url()),
        }
    }
}

/// `rel` percent-encoded for a URL path (`/` kept).
fn encode(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refuses a path that is not plainly inside the tree: empty, absolute, `.` or `..`
/// components, control characters or backslashes.
pub fn check_rel(rel: &str) -> Result<(), ReadError> {
    let bad = rel.is_empty()
        || rel.starts_with('/')
        || rel.len() > 4096
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || rel.chars().any(|c| c.is_control() || c == '\\');
    if bad {
        return Err(ReadError::NotInTree(rel.to_owned()));
    }
    Ok(())
}

/// How long a connection may take to open, answer, or stall while sending.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
}

impl Source {
    /// Copies the file at `rel` (relative to the public root) into `sink`, at most `max`
    /// bytes; `Ok(false)` when the tree has no such file.
    pub async fn copy_to(
        &self,
        rel: &str,
        max: u64,
        limits: Limits,
        sink: &mut (dyn Write + Send),
    ) -> Result<bool, ReadError> {
        check_rel(rel)?;
        match self {
            Source::Dir(root) => copy_local(root, rel, max, sink),
            Source::Http(base) => copy_http(base, &encode(rel), max, limits, sink).await,
        }
    }

    /// The names in the directory at `rel` that are plain names (letters, digits, `. _ + ~ -`;
    /// no links are told from files), from the directory itself or from the mirror's listing
    /// page (at most 1 MiB); `None` when there is no such directory. Not trusted: whatever
    /// is used from it is verified by its own signature.
    pub async fn list(&self, rel: &str, limits: Limits) -> Result<Option<Vec<String>>, ReadError> {
        check_rel(rel)?;
        let plain = |n: &str| {
            !n.is_empty()
                && n != "."
                && n != ".."
                && n.len() <= 255
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
        };
        let mut names: Vec<String> = match self {
            Source::Dir(root) => {
                let root = std::fs::canonicalize(root)
                    .map_err(|e| ReadError::Io(format!("{}: {e}", root.display())))?;
                let Ok(real) = std::fs::canonicalize(root.join(rel)) else {
                    return Ok(None);
                };
                if !real.starts_with(&root) {
                    return Err(ReadError::NotInTree(rel.to_owned()));
                }
                let Ok(entries) = std::fs::read_dir(&real) else {
                    return Ok(None);
                };
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| plain(n))
                    .collect()
            }
            Source::Http(base) => {
                let mut page = Vec::new();
                let path = format!("{}/", encode(rel));
                if !copy_http(base, &path, 1 << 20, limits, &mut page).await? {
                    return Ok(None);
                }
                let page = String::from_utf8_lossy(&page);
                page.split("href=\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next())
                    .map(|href| href.trim_end_matches('/'))
                    .filter(|n| plain(n))
                    .map(str::to_owned)
                    .collect()
            }
        };
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    /// The file at `rel`, at most `max` bytes; `None` when the tree has no such file.
    pub async fn get(
        &self,
        rel: &str,
        max: u64,
        limits: Limits,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let mut out = Vec::new();
        Ok(self
            .copy_to(rel, max, limits, &mut out)
            .await?
            .then_some(out))
    }
}

/// A file below `root`: the links of the tree (the live link, the pool) are followed, but
/// the file must resolve inside the root.
fn copy_local(root: &Path, rel: &str, max: u64, sink: &mut dyn Write) -> Result<bool, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(format!("{}: {e}", root.join(rel).display()));
    let real = match std::fs::canonicalize(root.join(rel)) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    let root = std::fs::canonicalize(root).map_err(io)?;
    if !real.starts_with(&root) {
        return Err(ReadError::NotInTree(format!(
            "{rel} (leads to {}, outside the public root)",
            real.display()
        )));
    }
    if !real.is_file() {
        return Ok(false);
    }
    let mut file = std::fs::File::open(&real).map_err(io)?;
    let copied = std::io::copy(&mut (&mut file).take(max + 1), sink).map_err(io)?;
    if copied > max {
        return Err(ReadError::TooBig {
            what: real.display().to_string(),
            max,
        });
    }
    Ok(true)
}

/// `GET` of `path` (encoded, relative to the base) into `sink`.
async fn copy_http(
    base: &BaseUrl,
    path: &str,
    max: u64,
    limits: Limits,
    sink: &mut (dyn Write + Send),
) -> Result<bool, ReadError> {
    let url = format!("{}{path}", base.as_url());
    let failed = |reason: String| ReadError::Http {
        url: url.clone(),
        reason,
    };
    let timed = |what: &str| failed(format!("{what} took longer than {:?}", limits.timeout));
    let stream = tokio::time::timeout(
        limits.timeout,
        tokio::net::TcpStream::connect((base.host(), base.port())),
    )
    .await
    .map_err(|_| timed("connecting"))?
    .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let host = if base.port() == 80 {
        base.host().to_owned()
    } else {
        format!("{}:{}", base.host(), base.port())
    };
    let request = hyper::Request::get(format!("{}{path}", base.prefix()))
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "perestroika")
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let result = async {
        let response = tokio::time::timeout(limits.timeout, sender.send_request(request))
            .await
            .map_err(|_| timed("the answer"))?
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            return Err(ReadError::Redirect {
                url: url.clone(),
                to,
            });
        }
        if status == hyper::StatusCode::NOT_FOUND || status == hyper::StatusCode::GONE {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(failed(format!("answered {status}")));
        }
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ReadError::TooBig {
                what: url.clone(),
                max,
            });
        }
        let mut body = response.into_body();
        let mut total = 0u64;
        loop {
            let frame = tokio::time::timeout(limits.timeout, body.frame())
                .await
                .map_err(|_| timed("a stalled transfer"))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| failed(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                total += data.len() as u64;
                if total > max {
                    return Err(ReadError::TooBig {
                        what: url.clone(),
                        max,
                    });
                }
                sink.write_all(&data)
                    .map_err(|e| ReadError::Io(format!("writing what {url} sent: {e}")))?;
            }
        }
        Ok(true)
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("http://mirror:8080/perestroika").unwrap();
        assert_eq!(u.as_url(), "http://mirror:8080/perestroika/");
        assert_eq!(
            url_of(&u, "acme/9.0/deb/pool/main/g/greet_1%3a1.0.deb"),
            "http://mirror:8080/perestroika/acme/9.0/deb/pool/main/g/greet_1%253a1.0.deb"
        );
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1").unwrap().as_url(),
            "http://127.0.0.1:80/"
        );
        for bad in [
            "https://m/",
            "ftp://m/",
            "http://u@m/",
            "http:///x",
            "http://m/../x",
            "http://m:x/",
            "http://m/?a",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_stay_in_the_tree() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/\n", "a\\b"] {
            assert!(check_rel(bad).is_err(), "{bad:?}");
        }
        check_rel("acme/9.0/deb/dists/bookworm/InRelease").unwrap();
    }

    #[tokio::test]
    async fn local_links_may_not_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs_err::create_dir_all(root.join("acme")).unwrap();
        fs_err::write(dir.path().join("secret"), "s").unwrap();
        fs_err::write(root.join("acme/ok"), "fine").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("acme/out")).unwrap();
        let src = Source::Dir(root);
        let limits = Limits {
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            src.get("acme/ok", 10, limits).await.unwrap().as_deref(),
            Some(&b"fine"[..])
        );
        assert!(src.get("acme/missing", 10, limits).await.unwrap().is_none());
        assert!(matches!(
            src.get("acme/out", 10, limits).await,
            Err(ReadError::NotInTree(_))
        ));
        assert!(matches!(
            src.get("acme/ok", 2, limits).await,
            Err(ReadError::TooBig { .. })
        ));
    }

    /// A server on loopback answering every request with `answer`, then holding the
    /// connection open without sending more.
    async fn answering(answer: &'static str) -> BaseUrl {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(answer.as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        BaseUrl::parse(&format!("http://127.0.0.1:{port}/tree/")).unwrap()
    }

    #[tokio::test]
    async fn hostile_answers_are_bounded_and_refused() {
        let limits = Limits {
            timeout: Duration::from_millis(500),
        };
        let get =
            |base: BaseUrl| async move { Source::Http(base).get("acme/9.0/x", 64, limits).await };
        // A transfer that stalls halfway: cut off at the timeout.
        let stalled = answering("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nten bytes.").await;
        let started = std::time::Instant::now();
        let err = get(stalled).await.unwrap_err();
        assert!(err.to_string().contains("stalled transfer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // No answer at all.
        let silent = answering("").await;
        let err = get(silent).await.unwrap_err();
        assert!(err.to_string().contains("took longer"), "{err}");
        // More than the bound, announced: refused before reading it.
        let big = answering("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n").await;
        assert!(matches!(get(big).await, Err(ReadError::TooBig { .. })));
        // A redirect elsewhere is not followed.
        let away = answering(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2/x\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(matches!(get(away).await, Err(ReadError::Redirect { .. })));
        // Not there: none, not an error.
        let gone = answering("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
        assert!(get(gone).await.unwrap().is_none());
    }
}
