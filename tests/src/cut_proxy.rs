//! A connection a test cuts and restores: a proxy in front of a real service (the Docker
//! engine's unix socket, a broker's TCP port) that a test stops — every open connection cut,
//! nothing accepted — and starts again, as a client sees an engine restarted by an upgrade or
//! a network that goes away.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The real Docker engine's socket.
const ENGINE: &str = "/var/run/docker.sock";

/// One end of a proxied connection.
#[derive(Debug, Clone)]
enum End {
    Unix(PathBuf),
    Tcp(String),
}

/// A byte stream the proxy copies in both directions.
trait Duplex: Read + Write + Send {
    fn another(&self) -> std::io::Result<Box<dyn Duplex>>;
    fn cut(&self);
    fn close_write(&self);
}

impl Duplex for UnixStream {
    fn another(&self) -> std::io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn cut(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Duplex for TcpStream {
    fn another(&self) -> std::io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn cut(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl End {
    fn connect(&self) -> std::io::Result<Box<dyn Duplex>> {
        Ok(match self {
            End::Unix(p) => Box::new(UnixStream::connect(p)?),
            End::Tcp(a) => Box::new(TcpStream::connect(a)?),
        })
    }
}

/// A proxy in front of a service, up or down at the test's word.
pub struct CutProxy {
    listen: End,
    target: End,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<Box<dyn Duplex>>>>,
}

impl CutProxy {
    /// Listens on `socket` (in a directory of the test's) and forwards to the Docker engine.
    pub fn docker(socket: &Path) -> Self {
        Self::start(
            End::Unix(socket.to_owned()),
            End::Unix(PathBuf::from(ENGINE)),
        )
    }

    /// Listens on a free port of 127.0.0.1 and forwards to `target` (`host:port`).
    pub fn tcp(target: &str) -> Self {
        let listen = format!("127.0.0.1:{}", crate::free_port());
        Self::start(End::Tcp(listen), End::Tcp(target.to_owned()))
    }

    fn start(listen: End, target: End) -> Self {
        let proxy = Self {
            listen,
            target,
            up: Arc::new(AtomicBool::new(false)),
            open: Arc::default(),
        };
        proxy.start_again();
        proxy
    }

    /// What a client names to reach the service through the proxy: `unix://<socket>` (a
    /// worker's `DOCKER_HOST`) or `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        match &self.listen {
            End::Unix(p) => format!("unix://{}", p.display()),
            End::Tcp(a) => a.clone(),
        }
    }

    /// Cuts every open connection and stops listening: the service is gone.
    pub fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        // Wakes the accepting thread so that it ends (and drops its listener).
        let _ = self.listen.connect();
        if let End::Unix(p) = &self.listen {
            let _ = fs_err::remove_file(p);
        }
        for s in self.open.lock().unwrap().drain(..) {
            s.cut();
        }
    }

    /// Listens again: the service is back.
    pub fn start_again(&self) {
        let accept: Box<dyn FnMut() -> Option<Box<dyn Duplex>> + Send> = match &self.listen {
            End::Unix(p) => {
                let _ = fs_err::remove_file(p);
                let l = UnixListener::bind(p).expect("bind the proxy socket");
                Box::new(move || l.accept().ok().map(|(s, _)| Box::new(s) as Box<dyn Duplex>))
            }
            End::Tcp(a) => {
                let l = TcpListener::bind(a).expect("bind the proxy port");
                Box::new(move || l.accept().ok().map(|(s, _)| Box::new(s) as Box<dyn Duplex>))
            }
        };
        self.up.store(true, Ordering::SeqCst);
        let (up, open, target) = (self.up.clone(), self.open.clone(), self.target.clone());
        std::thread::spawn(move || {
            let mut accept = accept;
            loop {
                let client = accept();
                if !up.load(Ordering::SeqCst) {
                    break;
                }
                let Some(client) = client else { continue };
                let Ok(service) = target.connect() else {
                    continue;
                };
                let mut all = open.lock().unwrap();
                for s in [&client, &service] {
                    if let Ok(c) = s.another() {
                        all.push(c);
                    }
                }
                drop(all);
                pipe(&*client, &*service);
                pipe(&*service, &*client);
            }
        });
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies `from` to `to` on a thread of its own until either end closes.
fn pipe(from: &dyn Duplex, to: &dyn Duplex) {
    let (Ok(mut from), Ok(mut to)) = (from.another(), to.another()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        to.close_write();
    });
}
