//! Running rsync against one mirror target: an rsync daemon module (`rsync://host:port/module/`),
//! a host reached over SSH (`[user@]host:/path/`), or a local directory (`/path/`).
//!
//! Arguments are passed as a vector, never through a shell; the only string rsync itself
//! splits is the SSH command, whose parts are checked to hold no blanks.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use perestroika_config::settings::MirrorTarget;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    #[error("mirror {name}: {why}")]
    Target { name: String, why: String },
    #[error("cannot run rsync: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("rsync to mirror {name} ({stage}) failed with {status}: {stderr}")]
    Failed {
        name: String,
        stage: &'static str,
        status: String,
        stderr: String,
    },
}

/// A configured target, ready to run rsync against.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Destination prefix as rsync takes it, ending in `/`.
    dest: String,
    /// `-e` value for SSH targets.
    ssh: Option<String>,
}

/// What one rsync run moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Moved {
    pub files: u64,
    pub bytes_sent: u64,
}

impl std::ops::AddAssign for Moved {
    fn add_assign(&mut self, other: Self) {
        self.files += other.files;
        self.bytes_sent += other.bytes_sent;
    }
}

fn no_blanks(name: &str, what: &str, value: &str) -> Result<(), RsyncError> {
    if value.chars().any(char::is_whitespace) {
        return Err(RsyncError::Target {
            name: name.to_owned(),
            why: format!("{what} {value:?} must not contain blanks"),
        });
    }
    Ok(())
}

/// The target forms the mirror supports, for messages.
const FORMS: &str = "expected rsync://host[:port]/module/path, ssh://[user@]host[:port]/path, \
                     [user@]host:/path or /path";

impl Target {
    /// Whether rsync reaches this target over SSH.
    pub fn is_ssh(&self) -> bool {
        self.ssh.is_some()
    }

    /// Checks a configured target.
    pub fn new(t: &MirrorTarget) -> Result<Self, RsyncError> {
        let bad = |why: String| RsyncError::Target {
            name: t.name.clone(),
            why,
        };
        let mut dest = t.target.clone();
        if !dest.ends_with('/') {
            dest.push('/');
        }
        let mut port = None;
        if let Some(rest) = dest.strip_prefix("ssh://") {
            // ssh://[user@]host[:port]/path → [user@]host:/path, with ssh -p port
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = match authority.rsplit_once(':') {
                Some((host, p)) => {
                    port = Some(
                        p.parse::<u16>()
                            .map_err(|_| bad(format!("target {:?}: bad port {p:?}", t.target)))?,
                    );
                    host
                }
                None => authority,
            };
            dest = format!("{host}:{path}");
        }
        if let Some((scheme, _)) = dest.split_once("://") {
            if scheme != "rsync" {
                return Err(bad(format!(
                    "target {:?}: {scheme}:// is not supported; {FORMS}",
                    t.target
                )));
            }
        }
        let ssh = if dest.starts_with("rsync://") || dest.starts_with('/') {
            None
        } else if let Some((host, path)) = dest.split_once(':') {
            if host.is_empty() || !path.starts_with('/') {
                return Err(bad(format!("target {:?}: {FORMS}", t.target)));
            }
            let mut cmd = vec![
                "ssh".to_owned(),
                "-oBatchMode=yes".into(),
                "-oStrictHostKeyChecking=yes".into(),
            ];
            if let Some(port) = port {
                cmd.push(format!("-p{port}"));
            }
            if let Some(key) = &t.ssh_key {
                no_blanks(&t.name, "ssh_key", &key.display().to_string())?;
                cmd.push(format!("-i{}", key.display()));
            }
            if let Some(kh) = &t.known_hosts {
                no_blanks(&t.name, "known_hosts", &kh.display().to_string())?;
                cmd.push(format!("-oUserKnownHostsFile={}", kh.display()));
            }
            Some(cmd.join(" "))
        } else {
            return Err(bad(format!(
                "target {:?} is not an rsync destination; {FORMS}",
                t.target
            )));
        };
        Ok(Self {
            name: t.name.clone(),
            dest,
            ssh,
        })
    }

    /// Runs rsync with `args`, then the sources, then this target's destination (plus
    /// `sub`). Returns what it moved.
    pub async fn run(
        &self,
        stage: &'static str,
        args: &[&str],
        sources: &[PathBuf],
        sub: &str,
    ) -> Result<Moved, RsyncError> {
        let mut all = vec!["--stats"];
        all.extend_from_slice(args);
        Ok(parse_stats(&self.rsync(stage, &all, sources, sub).await?))
    }

    /// Runs rsync (normally with `--dry-run --itemize-changes`) and returns what it printed.
    pub async fn itemize(
        &self,
        stage: &'static str,
        args: &[&str],
        sources: &[PathBuf],
    ) -> Result<String, RsyncError> {
        self.rsync(stage, args, sources, "").await
    }

    async fn rsync(
        &self,
        stage: &'static str,
        args: &[&str],
        sources: &[PathBuf],
        sub: &str,
    ) -> Result<String, RsyncError> {
        let mut cmd = Command::new("rsync");
        cmd.arg("--timeout=60");
        if self.dest.starts_with("rsync://") {
            // Small protocol messages otherwise wait on delayed ACKs (~40 ms each).
            cmd.args(["--contimeout=20", "--sockopts=TCP_NODELAY"]);
        }
        if let Some(ssh) = &self.ssh {
            cmd.arg("-e").arg(ssh);
        }
        cmd.args(args)
            .args(sources)
            .arg(format!("{}{sub}", self.dest))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let out = cmd.output().await.map_err(RsyncError::Spawn)?;
        tracing::debug!(target = %self.name, stage, secs = started.elapsed().as_secs_f64(), "rsync done");
        if !out.status.success() {
            return Err(RsyncError::Failed {
                name: self.name.clone(),
                stage,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The directory of a local target (`/path/`), which this host can fsync itself.
    pub fn local_dir(&self) -> Option<&Path> {
        self.dest.starts_with('/').then(|| Path::new(&self.dest))
    }

    /// The destination as configured (for messages).
    pub fn dest(&self) -> &str {
        &self.dest
    }
}

/// Reads `--stats` output: files transferred and bytes sent.
pub fn parse_stats(stdout: &str) -> Moved {
    let number = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or("0")
                    .replace(',', "")
                    .parse()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    Moved {
        files: number("Number of regular files transferred:"),
        bytes_sent: number("Total bytes sent:"),
    }
}

/// `root/./rel` for rsync's `--relative`: the part after `./` is recreated on the target.
pub fn relative(root: &Path, rel: &str) -> PathBuf {
    root.join(".").join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: &str) -> Result<Target, RsyncError> {
        Target::new(&MirrorTarget {
            name: "m".into(),
            target: t.into(),
            http_url: None,
            ssh_key: Some("/etc/k".into()),
            known_hosts: Some("/etc/kh".into()),
        })
    }

    #[test]
    fn target_forms() {
        let daemon = target("rsync://127.0.0.1:8873/perestroika").unwrap();
        assert_eq!(daemon.dest(), "rsync://127.0.0.1:8873/perestroika/");
        assert!(daemon.ssh.is_none());
        let ssh = target("mirror@host:/srv/www/").unwrap();
        assert_eq!(
            ssh.ssh.as_deref(),
            Some("ssh -oBatchMode=yes -oStrictHostKeyChecking=yes -i/etc/k -oUserKnownHostsFile=/etc/kh")
        );
        assert!(target("/srv/local").unwrap().ssh.is_none());
        let url = target("ssh://mirror@127.0.0.1:2222/srv/www").unwrap();
        assert_eq!(url.dest(), "mirror@127.0.0.1:/srv/www/");
        assert!(
            url.ssh.as_deref().unwrap().contains(" -p2222 "),
            "{:?}",
            url.ssh
        );
        assert!(target("host:relative").is_err());
        assert!(target("just-a-name").is_err());
        let ftp = target("ftp://x/y").unwrap_err().to_string();
        assert!(ftp.contains("ftp:// is not supported"), "{ftp}");
        assert!(target("http://x/y").is_err());
    }

    #[test]
    fn stats() {
        let out = "Number of files: 12 (reg: 10, dir: 2)\nNumber of regular files transferred: 3\nTotal bytes sent: 1,234,567\n";
        assert_eq!(
            parse_stats(out),
            Moved {
                files: 3,
                bytes_sent: 1_234_567
            }
        );
    }
}
