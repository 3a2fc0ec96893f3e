//! A writable rsync daemon on loopback: a mirror host as the mirror daemon sees it.

use crate::{free_port, wait_for_listener};
use std::path::PathBuf;
use std::process::{Child, Command};

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An rsync daemon with one writable module, `mirror`, stopped when dropped.
pub struct RsyncHost {
    pub dir: tempfile::TempDir,
    /// What the module holds: the mirror's copy of the public tree.
    pub data: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl RsyncHost {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        fs_err::create_dir_all(&data).unwrap();
        let mut host = Self {
            data,
            port: free_port(),
            child: None,
            dir,
        };
        host.start_again();
        host
    }

    /// The rsync URL of the module.
    pub fn url(&self) -> String {
        format!("rsync://127.0.0.1:{}/mirror/", self.port)
    }

    /// Starts the daemon (again) and waits until it listens.
    pub fn start_again(&mut self) {
        let conf = self.dir.path().join("rsyncd.conf");
        fs_err::write(
            &conf,
            format!(
                "use chroot = no\nmunge symlinks = no\nreverse lookup = no\nuid = {}\ngid = {}\n[mirror]\npath = {}\nread only = no\n",
                id("-u"),
                id("-g"),
                self.data.display()
            ),
        )
        .unwrap();
        let log = fs_err::File::create(self.dir.path().join("rsyncd.log")).unwrap();
        let child = Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--config={}", conf.display()))
            .stderr(log.into_parts().0)
            .spawn()
            .expect("start rsync --daemon");
        self.child = Some(child);
        let log = self.dir.path().join("rsyncd.log");
        wait_for_listener(&format!("127.0.0.1:{}", self.port), "rsync daemon", || {
            fs_err::read_to_string(&log).unwrap_or_default()
        });
    }

    /// Stops the daemon: the host is down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RsyncHost {
    fn drop(&mut self) {
        self.stop();
    }
}
