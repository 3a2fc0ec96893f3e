//! A private RabbitMQ node per test that needs to restart or stop its broker.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use crate::repo_root;

/// A RabbitMQ node owned by one test, stopped when dropped.
pub struct Rabbit {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn free_port() -> u16 {
    // The distribution port is port + 20000, so stay below 45535.
    for _ in 0..100 {
        let port = 20000 + (rand_u16() % 20000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 20000) {
            return port;
        }
    }
    panic!("no free port pair for a RabbitMQ node");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (nanos ^ std::process::id().wrapping_mul(2654435761)) as u16
}

fn script() -> PathBuf {
    repo_root().join(".ci/rabbitmq")
}

impl Rabbit {
    /// Starts a node and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let rabbit = Self {
            dir,
            port: free_port(),
        };
        rabbit.ctl("start");
        rabbit
    }

    fn ctl(&self, action: &str) {
        let out = Command::new("bash")
            .arg(script())
            .arg(action)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .expect("run .ci/rabbitmq");
        assert!(
            out.status.success(),
            ".ci/rabbitmq {action} failed (is rabbitmq-server installed? `.ci/setup` installs it):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `rabbitmqctl args…` against this node, asserting success.
    pub fn rabbitmqctl(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(script())
            .arg("ctl")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("run .ci/rabbitmq ctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn stop(&self) {
        self.ctl("stop");
    }

    /// Starts a stopped node again on the same data.
    pub fn start_again(&self) {
        self.ctl("start");
    }

    /// Stops the node and starts it again on the same data.
    pub fn restart(&self) {
        self.stop();
        self.ctl("start");
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output();
    }
}
