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

    /// Starts a node whose Erlang cookie is `cookie`, joining the cluster of the node on
    /// `join` when given.
    fn start_in_cluster(cookie: &str, join: Option<u16>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let rabbit = Self {
            dir,
            port: free_port(),
        };
        let join = join.map(|p| p.to_string());
        let mut env = vec![("RABBITMQ_COOKIE", cookie)];
        if let Some(port) = &join {
            env.push(("RABBITMQ_JOIN_PORT", port.as_str()));
        }
        rabbit.ctl_env("start", &env);
        rabbit
    }

    /// Starts a node that also speaks amqps on [`Rabbit::tls_port`], with a certificate
    /// authority of its own ([`Rabbit::tls_file`]: `ca.pem`, `client.pem`, `client.key`);
    /// `require_client_cert` makes it refuse clients without a certificate of that authority.
    pub fn start_tls(require_client_cert: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rabbit = Self {
            dir,
            port: free_port(),
        };
        while TcpListener::bind(("127.0.0.1", rabbit.port + 1)).is_err() {
            rabbit.port = free_port();
        }
        let tls = rabbit.dir.path().join("tls");
        fs_err::create_dir_all(&tls).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test authority",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        for (name, ext) in [
            ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            fs_err::write(tls.join(format!("{name}.ext")), format!("{ext}\n")).unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        rabbit.ctl_env(
            "start",
            &[
                ("RABBITMQ_TLS_DIR", tls.to_str().unwrap()),
                (
                    "RABBITMQ_TLS_REQUIRE_CLIENT_CERT",
                    if require_client_cert { "true" } else { "false" },
                ),
            ],
        );
        rabbit
    }

    /// Starts a node that takes back a delivery left unacknowledged for `timeout` (RabbitMQ's
    /// global `consumer_timeout`, checked on its channels' periodic tick).
    pub fn start_with_consumer_timeout(timeout: std::time::Duration) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let rabbit = Self {
            dir,
            port: free_port(),
        };
        let ms = timeout.as_millis().to_string();
        rabbit.ctl_env("start", &[("RABBITMQ_CONSUMER_TIMEOUT_MS", ms.as_str())]);
        rabbit
    }

    /// Starts a node with RabbitMQ's management API on [`Rabbit::management_port`].
    pub fn start_with_management() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rabbit = Self {
            dir,
            port: free_port(),
        };
        while TcpListener::bind(("127.0.0.1", rabbit.port + 2)).is_err() {
            rabbit.port = free_port();
        }
        let management = (rabbit.port + 2).to_string();
        rabbit.ctl_env(
            "start",
            &[("RABBITMQ_MANAGEMENT_PORT", management.as_str())],
        );
        rabbit
    }

    /// The management API's port of a node made by [`Rabbit::start_with_management`].
    pub fn management_port(&self) -> u16 {
        self.port + 2
    }

    /// The amqps port of a node made by [`Rabbit::start_tls`].
    pub fn tls_port(&self) -> u16 {
        self.port + 1
    }

    /// A file of the node's certificate authority (`ca.pem`, `client.pem`, `client.key`).
    pub fn tls_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("tls").join(name)
    }

    fn ctl(&self, action: &str) {
        self.ctl_env(action, &[]);
    }

    fn ctl_env(&self, action: &str, env: &[(&str, &str)]) {
        let out = Command::new("bash")
            .arg(script())
            .arg(action)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .envs(env.iter().copied())
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

/// Nodes of one RabbitMQ cluster, each owned by the test; its quorum queues have a replica on
/// every node.
pub struct Cluster {
    pub nodes: Vec<Rabbit>,
}

impl Cluster {
    /// Starts `n` nodes, the second and later joining the first.
    pub fn start(n: usize) -> Self {
        let cookie = crate::unique("cookie").replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let first = Rabbit::start_in_cluster(&cookie, None);
        let mut nodes = vec![];
        let join = first.port;
        nodes.push(first);
        for _ in 1..n {
            nodes.push(Rabbit::start_in_cluster(&cookie, Some(join)));
        }
        Self { nodes }
    }

    /// The first node's URL, for `[broker] url`.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The `[broker]` line naming the other nodes (`urls = [...]`).
    pub fn urls_line(&self) -> String {
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("\"{}\"", n.url()))
            .collect();
        format!("urls = [{}]\n", others.join(", "))
    }
}
