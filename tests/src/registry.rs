//! A private OCI registry (Debian's `docker-registry`) on a loopback port, with its own
//! configuration and storage, for the tests of base images through a registry. Dropping it
//! stops the process and removes every name the local Docker engine holds under its address.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{free_port, sh, wait_for_listener};

/// Debian's registry binary (package `docker-registry`).
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry process of a test.
pub struct TestRegistry {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl TestRegistry {
    /// Starts a registry storing under `dir`, on a free loopback port.
    pub fn start(dir: &Path) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).is_file(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry (.ci/setup does)"
        );
        fs_err::create_dir_all(dir).unwrap();
        let mut registry = Self {
            dir: dir.to_owned(),
            port: free_port(),
            child: None,
        };
        registry.resume();
        registry
    }

    /// `127.0.0.1:<port>`, as `[images] registry` names it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the process (its storage stays), as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the registry is running already");
        let config = self.dir.join("config.yml");
        let text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {}\n",
            self.dir.join("data").display(),
            self.address()
        );
        fs_err::write(&config, text).unwrap();
        let log = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap().into_parts().0)
            .stderr(log.into_parts().0)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let log = self.dir.join("registry.log");
        wait_for_listener(&self.address(), "the registry", || {
            fs_err::read_to_string(&log).unwrap_or_default()
        });
    }

    /// Overwrites the stored manifest `digest` with other content, as a hostile or broken
    /// registry would serve it: still under the same digest.
    pub fn tamper_manifest(&self, digest: &str) {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let blob = self
            .dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&fs_err::read(&blob).unwrap()).unwrap();
        manifest["annotations"] = serde_json::json!({ "tampered": "yes" });
        fs_err::write(&blob, serde_json::to_vec(&manifest).unwrap()).unwrap();
    }

    /// Removes the local Docker engine's names of images under this registry (tags and
    /// digests); the images themselves go when nothing else names them.
    pub fn forget_local(&self) {
        let prefix = format!("{}/", self.address());
        let names = sh(Command::new("docker").args([
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ]));
        for line in names.lines().filter(|l| l.starts_with(&prefix)) {
            let mut parts = line.split(' ');
            let (repo, tag, digest) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if tag != "<none>" {
                let _ = Command::new("docker")
                    .args(["rmi", &format!("{repo}:{tag}")])
                    .output();
            }
            if digest.starts_with("sha256:") {
                let _ = Command::new("docker")
                    .args(["rmi", &format!("{repo}@{digest}")])
                    .output();
            }
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
        self.forget_local();
    }
}
