use super::files::resolve;
use super::*;
use std::time::Instant;
use tokio::io::AsyncReadExt;

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
