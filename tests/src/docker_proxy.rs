//! A Docker engine that goes away and comes back, as a worker sees an engine restarted by an
//! upgrade: a unix socket forwarding to the real engine's, which a test stops (every open
//! connection cut, the socket gone) and starts again.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The real engine's socket.
const ENGINE: &str = "/var/run/docker.sock";

/// A socket in front of the Docker engine, up or down at the test's word.
pub struct DockerProxy {
    socket: PathBuf,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
}

impl DockerProxy {
    /// Listens on `socket` (in a directory of the test's) and forwards to the engine.
    pub fn start(socket: &Path) -> Self {
        let proxy = Self {
            socket: socket.to_owned(),
            up: Arc::new(AtomicBool::new(false)),
            open: Arc::default(),
        };
        proxy.start_again();
        proxy
    }

    /// What a worker's `DOCKER_HOST` is set to.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Cuts every open connection and removes the socket: the engine is gone.
    pub fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = fs_err::remove_file(&self.socket);
        // Wakes the accepting thread so that it ends.
        let _ = UnixStream::connect(&self.socket);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Listens again: the engine is back.
    pub fn start_again(&self) {
        let _ = fs_err::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket).expect("bind the proxy socket");
        self.up.store(true, Ordering::SeqCst);
        let (up, open) = (self.up.clone(), self.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(engine) = UnixStream::connect(ENGINE) else {
                    continue;
                };
                let mut all = open.lock().unwrap();
                for s in [&client, &engine] {
                    if let Ok(c) = s.try_clone() {
                        all.push(c);
                    }
                }
                drop(all);
                pipe(&client, &engine);
                pipe(&engine, &client);
            }
        });
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies `from` to `to` on a thread of its own until either end closes.
fn pipe(from: &UnixStream, to: &UnixStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
