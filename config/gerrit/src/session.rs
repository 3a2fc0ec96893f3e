//! The SSH session with Gerrit: host key checked against a known-hosts file, public key
//! authentication, `gerrit stream-events` read line by line, commands run to completion, and
//! branch heads read from `git-upload-pack`'s ref advertisement.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use perestroika_config::settings::GerritSettings;
use perestroika_host::command::Deadline;
use russh::client::{self, Handle};
use russh::keys::{check_known_hosts_path, load_secret_key, PrivateKeyWithHashAlg};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tracing::{debug, warn};

/// An SSH failure, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach Gerrit at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: russh::Error,
    },
    /// The server's host key is not in the known-hosts file or differs from it: never retried.
    #[error("refusing Gerrit at {addr}: {problem}; check the server, then update {known_hosts} (e.g. with ssh-keyscan -p PORT HOST)")]
    HostKey {
        addr: String,
        problem: HostKeyProblem,
        known_hosts: PathBuf,
    },
    #[error("cannot read the SSH key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: russh::keys::Error,
    },
    #[error("Gerrit at {addr} refused public key authentication for user {user:?}")]
    Auth { addr: String, user: String },
    #[error("SSH session with {addr} failed: {source}")]
    Session {
        addr: String,
        #[source]
        source: russh::Error,
    },
    #[error("`{command}` exited with status {status}: {stderr}")]
    Command {
        command: String,
        status: u32,
        stderr: String,
    },
    #[error("`{command}`: the session closed before the command finished")]
    Closed { command: String },
    #[error("`{command}`: unexpected answer: {what}")]
    Protocol { command: String, what: String },
    /// Gerrit did not answer within `gerrit.command_timeout_secs`: tried again later.
    #[error("`{command}`: Gerrit did not answer within {} s; the command was abandoned (raise `{key}` if it needs longer)", limit.as_secs())]
    TimedOut {
        command: String,
        limit: Duration,
        key: &'static str,
    },
}

impl SshError {
    /// Whether the reactor should stop instead of reconnecting: the operator must act.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SshError::HostKey { .. } | SshError::Key { .. } | SshError::Auth { .. }
        )
    }
}

struct Verifier {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.problem.lock().expect("lock") = Some(HostKeyProblem::Certificate);
            return Ok(false);
        };
        let verdict = judge_host_key(&self.host, self.port, key, &self.known_hosts);
        if let Err(problem) = &verdict {
            *self.problem.lock().expect("lock") = Some(problem.clone());
        }
        Ok(verdict.is_ok())
    }
}

/// Why the server's host key was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostKeyProblem {
    #[error("the server offered a certificate; configure its plain host key")]
    Certificate,
    #[error("its host key {fingerprint} is not in {}", known_hosts.display())]
    Unknown {
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error(
        "its host key CHANGED: it offered {fingerprint}, which differs from line {line} of {}",
        known_hosts.display()
    )]
    Changed {
        fingerprint: String,
        line: usize,
        known_hosts: PathBuf,
    },
    #[error("cannot read {}: {reason}", known_hosts.display())]
    Unreadable {
        known_hosts: PathBuf,
        reason: String,
    },
}

/// Accepts a key recorded for the host in `known_hosts`; otherwise says what is wrong.
fn judge_host_key(
    host: &str,
    port: u16,
    key: &PublicKey,
    known_hosts: &std::path::Path,
) -> Result<(), HostKeyProblem> {
    let fingerprint = key.fingerprint(Default::default()).to_string();
    let known_hosts = known_hosts.to_owned();
    match check_known_hosts_path(host, port, key, &known_hosts) {
        Ok(true) => Ok(()),
        Ok(false) => Err(HostKeyProblem::Unknown {
            fingerprint,
            known_hosts,
        }),
        Err(russh::keys::Error::KeyChanged { line }) => Err(HostKeyProblem::Changed {
            fingerprint,
            line,
            known_hosts,
        }),
        Err(e) => Err(HostKeyProblem::Unreadable {
            known_hosts,
            reason: e.to_string(),
        }),
    }
}

/// A live, authenticated session with Gerrit.
pub struct GerritSession {
    handle: Handle<Verifier>,
    addr: String,
    /// How long one command may take (`gerrit.command_timeout_secs`).
    deadline: Deadline,
}

/// `work`, or [`SshError::TimedOut`] for `what` once `deadline` has passed.
async fn bounded<T>(
    deadline: Deadline,
    what: &str,
    work: impl std::future::Future<Output = Result<T, SshError>>,
) -> Result<T, SshError> {
    tokio::time::timeout(deadline.limit, work)
        .await
        .unwrap_or_else(|_| {
            Err(SshError::TimedOut {
                command: what.to_owned(),
                limit: deadline.limit,
                key: deadline.key,
            })
        })
}

impl GerritSession {
    /// Connects, checks the host key and authenticates, within `gerrit.command_timeout_secs`
    /// (a server that accepts and never answers does not hold the caller for ever).
    pub async fn connect(gerrit: &GerritSettings) -> Result<Self, SshError> {
        let what = format!("connect to {}:{}", gerrit.host, gerrit.port);
        bounded(gerrit.command_deadline(), &what, Self::connect_now(gerrit)).await
    }

    async fn connect_now(gerrit: &GerritSettings) -> Result<Self, SshError> {
        let addr = format!("{}:{}", gerrit.host, gerrit.port);
        let key = load_secret_key(&gerrit.key_file, None).map_err(|source| SshError::Key {
            path: gerrit.key_file.clone(),
            source,
        })?;
        let keepalive = Duration::from_secs(gerrit.keepalive_secs.max(1));
        let config = client::Config {
            keepalive_interval: Some(keepalive),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        let problem = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            host: gerrit.host.clone(),
            port: gerrit.port,
            known_hosts: gerrit.known_hosts.clone(),
            problem: problem.clone(),
        };
        let connected = client::connect(
            Arc::new(config),
            (gerrit.host.as_str(), gerrit.port),
            verifier,
        )
        .await;
        let mut handle = match connected {
            Ok(h) => h,
            Err(source) => {
                if let Some(problem) = problem.lock().expect("lock").take() {
                    return Err(SshError::HostKey {
                        addr,
                        problem,
                        known_hosts: gerrit.known_hosts.clone(),
                    });
                }
                return Err(SshError::Connect { addr, source });
            }
        };
        let session_err = |source| SshError::Session {
            addr: addr.clone(),
            source,
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(session_err)?
            .flatten();
        let auth = handle
            .authenticate_publickey(
                gerrit.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(session_err)?;
        if !auth.success() {
            return Err(SshError::Auth {
                addr,
                user: gerrit.user.clone(),
            });
        }
        debug!(%addr, "SSH session authenticated");
        Ok(Self {
            handle,
            addr,
            deadline: gerrit.command_deadline(),
        })
    }

    /// Starts `command` on a new channel.
    async fn start(&self, command: &str) -> Result<russh::Channel<client::Msg>, SshError> {
        let err = |source| SshError::Session {
            addr: self.addr.clone(),
            source,
        };
        let channel = self.handle.channel_open_session().await.map_err(err)?;
        channel.exec(true, command).await.map_err(err)?;
        Ok(channel)
    }

    /// Runs `gerrit stream-events`; read its lines with [`Lines::next_line`].
    pub async fn stream_events(&self) -> Result<Lines, SshError> {
        let command = "gerrit stream-events".to_owned();
        Ok(Lines {
            channel: self.start(&command).await?,
            buffer: Vec::new(),
            command,
            stderr: Vec::new(),
        })
    }

    /// Runs a command to completion and returns its standard output; a non-zero exit is an
    /// error carrying its standard error, one that takes longer than
    /// `gerrit.command_timeout_secs` is [`SshError::TimedOut`].
    pub async fn run(&self, command: &str) -> Result<Vec<u8>, SshError> {
        bounded(self.deadline, command, self.run_now(command)).await
    }

    async fn run_now(&self, command: &str) -> Result<Vec<u8>, SshError> {
        let mut channel = self.start(command).await?;
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        match status {
            Some(0) => Ok(out),
            Some(status) => Err(SshError::Command {
                command: command.to_owned(),
                status,
                stderr: String::from_utf8_lossy(&err).trim().to_owned(),
            }),
            None => Err(SshError::Closed {
                command: command.to_owned(),
            }),
        }
    }

    /// The commit a branch of a project points at, from the server's ref advertisement
    /// (`git-upload-pack`, as `git ls-remote` does), within `gerrit.command_timeout_secs`.
    /// `None` when the branch does not exist.
    pub async fn branch_head(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<Option<String>, SshError> {
        let command = format!("git-upload-pack {}", shell_quote(&format!("/{project}")));
        bounded(
            self.deadline,
            &command.clone(),
            self.branch_head_now(command, branch),
        )
        .await
    }

    async fn branch_head_now(
        &self,
        command: String,
        branch: &str,
    ) -> Result<Option<String>, SshError> {
        let mut channel = self.start(&command).await?;
        let mut buf = Vec::new();
        let mut refs = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    buf.extend_from_slice(&data);
                    match parse_advertisement(&buf) {
                        Ok(Some(found)) => {
                            refs = Some(found);
                            break;
                        }
                        Ok(None) => {}
                        Err(what) => {
                            return Err(SshError::Protocol { command, what });
                        }
                    }
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    debug!(stderr = %String::from_utf8_lossy(&data), %command);
                }
                ChannelMsg::ExitStatus { exit_status } if exit_status != 0 => {
                    return Err(SshError::Command {
                        command,
                        status: exit_status,
                        stderr: String::from_utf8_lossy(&buf).into_owned(),
                    });
                }
                _ => {}
            }
        }
        let Some(refs) = refs else {
            return Err(SshError::Closed { command });
        };
        // Tell the server we want nothing, as `git ls-remote` does.
        let _ = channel.data_bytes(&b"0000"[..]).await;
        let _ = channel.eof().await;
        let wanted = format!("refs/heads/{branch}");
        Ok(refs
            .into_iter()
            .find(|(_, name)| *name == wanted)
            .map(|(sha, _)| sha))
    }
}

/// Parses a complete pkt-line ref advertisement (up to its flush packet); `Ok(None)` while
/// more bytes are needed.
fn parse_advertisement(buf: &[u8]) -> Result<Option<Vec<(String, String)>>, String> {
    let mut refs = Vec::new();
    let mut at = 0;
    loop {
        let Some(head) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        let len = std::str::from_utf8(head)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad pkt-line length {:?}", String::from_utf8_lossy(head)))?;
        if len == 0 {
            return Ok(Some(refs));
        }
        if len < 4 {
            return Err(format!("bad pkt-line length {len}"));
        }
        let Some(line) = buf.get(at + 4..at + len) else {
            return Ok(None);
        };
        at += len;
        let line = line.split(|b| *b == 0).next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        if line.starts_with('#') || line.starts_with("version ") {
            continue;
        }
        if let Some((sha, name)) = line.split_once(' ') {
            refs.push((sha.to_owned(), name.to_owned()));
        }
    }
}

/// Quotes a word for the remote command line (Gerrit and OpenSSH both split shell-like).
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The lines of a streaming command.
pub struct Lines {
    channel: russh::Channel<client::Msg>,
    buffer: Vec<u8>,
    command: String,
    stderr: Vec<u8>,
}

impl Lines {
    /// The next complete line (without its newline), or why the stream ended.
    pub async fn next_line(&mut self) -> Result<String, SshError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let rest = self.buffer.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.buffer, rest);
                line.pop();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            match self.channel.wait().await {
                Some(ChannelMsg::Data { data }) => self.buffer.extend_from_slice(&data),
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    self.stderr.extend_from_slice(&data);
                    warn!(stderr = %String::from_utf8_lossy(&data).trim(), command = %self.command, "Gerrit says");
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    return Err(SshError::Command {
                        command: self.command.clone(),
                        status: exit_status,
                        stderr: String::from_utf8_lossy(&self.stderr).trim().to_owned(),
                    })
                }
                Some(_) => {}
                None => {
                    return Err(SshError::Closed {
                        command: self.command.clone(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(s: &str) -> String {
        format!("{:04x}{s}", s.len() + 4)
    }

    #[test]
    fn ref_advertisement() {
        let a = "1111111111111111111111111111111111111111";
        let b = "2222222222222222222222222222222222222222";
        let full = format!(
            "{}{}0000",
            pkt(&format!("{a} HEAD\0multi_ack side-band-64k\n")),
            pkt(&format!("{b} refs/heads/9.0\n"))
        );
        for cut in 0..full.len() {
            assert_eq!(
                parse_advertisement(&full.as_bytes()[..cut]),
                Ok(None),
                "{cut}"
            );
        }
        let refs = parse_advertisement(full.as_bytes()).unwrap().unwrap();
        assert_eq!(
            refs,
            [
                (a.to_owned(), "HEAD".to_owned()),
                (b.to_owned(), "refs/heads/9.0".to_owned())
            ]
        );
        assert!(parse_advertisement(b"zzzz").is_err());
        assert_eq!(parse_advertisement(b"0000"), Ok(Some(vec![])));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b"), "'a/b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
