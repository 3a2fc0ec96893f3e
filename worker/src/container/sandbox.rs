//! The build container's whole life: created fresh from a base image without a network, fed
//! through exec, emptied, removed. Nothing else in the worker makes or runs containers (the
//! engine itself and the containers a worker owns are [`super::docker`]'s).
//!
//! What isolates a build: its own namespaces (pid, mount, network, ipc, uts) and Docker's
//! seccomp profile; no network but the package cache relay while dependencies are installed
//! ([`super::relay`]); memory, `/tmp`, `/build` and process-count limits; with a build root,
//! the container's own root read-only, so that root inside the build root (a maintainer
//! script of a build dependency), even out of its chroot, changes nothing a later command of
//! the build runs with CAP_SYS_ADMIN. What does not: root in the container is root of the
//! host's user namespace (with Docker's default capabilities, minus those dropped here).

use std::collections::HashMap;

use std::io::Write;
use std::path::Path;

use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::buildlog::BuildLog;
use super::docker::{remove_container, JOB_LABEL, OWNER_LABEL};
use super::error::{docker_err, SandboxError};
use super::relay::Relay;

/// Where a command's standard output goes; an error stops reading it.
type Sink<'a> = dyn FnMut(&[u8]) -> Result<(), SandboxError> + Send + 'a;

/// A sink writing a command's output into `out` and refusing more than `limit` bytes in all
/// ([`SandboxError::TooLarge`] naming `what` and the setting behind the limit); a write that
/// fails is an error about `path`.
fn bounded<'a>(
    out: &'a mut (dyn Write + Send),
    limit: u64,
    (what, setting): (&'a str, &'static str),
    path: &'a Path,
) -> impl FnMut(&[u8]) -> Result<(), SandboxError> + Send + 'a {
    let mut written = 0u64;
    move |chunk| {
        written += chunk.len() as u64;
        if written > limit {
            return Err(SandboxError::TooLarge {
                what: what.to_owned(),
                limit,
                setting,
            });
        }
        out.write_all(chunk).map_err(|source| SandboxError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// What a build container is made from.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub image: String,
    pub job_id: String,
    pub owner: String,
    /// Size of the tmpfs at /build, e.g. "8g".
    pub tmpfs_size: String,
    /// Size of the tmpfs at /tmp.
    pub tmp_size: String,
    /// Memory limit of the container, tmpfs contents included.
    pub memory_bytes: u64,
    /// Read-only bind mounts: (host path, container path).
    pub read_only_binds: Vec<(String, String)>,
    /// A build root (a host directory) to run every command in, chrooted at [`NEW_ROOT`];
    /// `None` runs commands in the image's own root.
    pub root: Option<String>,
}

/// Where a build root is mounted inside the container.
pub const NEW_ROOT: &str = "/newroot";

/// Prefix of every command in a container with a build root: CAP_SYS_ADMIN leaves the bounding
/// set before anything else runs, so it is gone for good.
const DROP_ADMIN: [&str; 3] = ["setpriv", "--bounding-set=-sys_admin", "--"];

/// Run once, before anything of the build, as the only process that holds CAP_SYS_ADMIN: gives
/// the build root the container's own /proc, /dev and (read-only) /sys, and its resolver
/// configuration. Every later command drops CAP_SYS_ADMIN from its bounding set (see
/// [`DROP_ADMIN`]), so nothing the build runs can mount anything.
const ROOT_SETUP: &str = "set -e; r=/newroot
mount --rbind /proc $r/proc; mount --rbind /dev $r/dev
mount --rbind /sys $r/sys; mount -o remount,bind,ro $r/sys
cp /etc/resolv.conf /etc/hosts $r/etc/";

/// A running build container. Call [`Sandbox::remove`] when done, whatever happened.
pub struct Sandbox {
    docker: Docker,
    pub id: String,
    chroot: bool,
    /// The container's init process on this host (for the package cache relay).
    pid: i64,
}

/// Who runs a command inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    /// The unprivileged `builder` user baked into every base image.
    Builder,
}

impl Sandbox {
    /// Creates and starts a fresh container: build tree on tmpfs, no extra privileges,
    /// no new privileges, no network (see [`Sandbox::relay`]), memory and `/tmp` bounded.
    pub async fn start(docker: &Docker, spec: &SandboxSpec) -> Result<Self, SandboxError> {
        let labels = HashMap::from([
            (OWNER_LABEL.to_owned(), spec.owner.clone()),
            (JOB_LABEL.to_owned(), spec.job_id.clone()),
        ]);
        // With a build root, every path the build sees lives under NEW_ROOT.
        let under = if spec.root.is_some() { NEW_ROOT } else { "" };
        let mut binds: Vec<String> = spec
            .root
            .iter()
            .map(|r| format!("{r}:{NEW_ROOT}"))
            .collect();
        binds.extend(
            spec.read_only_binds
                .iter()
                .map(|(h, c)| format!("{h}:{under}{c}:ro")),
        );
        let mut cap_drop = vec!["NET_RAW", "MKNOD", "AUDIT_WRITE", "NET_BIND_SERVICE"];
        let mut cap_add = Vec::new();
        match spec.root {
            // Only the setup command uses it; see ROOT_SETUP and DROP_ADMIN.
            Some(_) => cap_add.push("SYS_ADMIN".to_owned()),
            None => cap_drop.push("SYS_CHROOT"),
        }
        let host_config = HostConfig {
            tmpfs: Some(HashMap::from([
                (
                    format!("{under}/build"),
                    format!("rw,exec,nosuid,nodev,size={},mode=1777", spec.tmpfs_size),
                ),
                (
                    format!("{under}/tmp"),
                    format!("rw,exec,nosuid,nodev,size={},mode=1777", spec.tmp_size),
                ),
            ])),
            binds: Some(binds),
            cap_drop: Some(cap_drop.into_iter().map(String::from).collect()),
            cap_add: Some(cap_add),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            // No docker-init: it would be mounted into /sbin, which is the build root's.
            pids_limit: Some(4096),
            memory: Some(i64::try_from(spec.memory_bytes).unwrap_or(i64::MAX)),
            // No swap beyond the memory limit.
            memory_swap: Some(i64::try_from(spec.memory_bytes).unwrap_or(i64::MAX)),
            // With a build root, nothing the build runs writes the container's own root, out
            // of which every command's setpriv and chroot run.
            readonly_rootfs: Some(spec.root.is_some()),
            network_mode: Some("none".into()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        // Named for the job and this worker instance: a container of the same name is this
        // worker's leftover of an earlier attempt at the job, while another worker's build of
        // the same job on the same engine (it took the job over while this one was cut off
        // from the broker) is left alone.
        let name = container_name(&spec.job_id, &spec.owner);
        let _ = remove_container(docker, &name).await;
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(docker_err(format!(
                "creating a container from {}",
                spec.image
            )))?;
        let mut sandbox = Self {
            docker: docker.clone(),
            id: created.id,
            chroot: spec.root.is_some(),
            pid: 0,
        };
        if let Err(e) = docker
            .start_container(
                &sandbox.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            sandbox.remove().await;
            return Err(docker_err("starting the build container")(e));
        }
        match sandbox.init_pid().await {
            Ok(pid) => sandbox.pid = pid,
            Err(e) => {
                sandbox.remove().await;
                return Err(e);
            }
        }
        if sandbox.chroot {
            let mut out = Vec::new();
            let mut sink = |c: &[u8]| {
                if out.len() < 64 << 10 {
                    out.extend_from_slice(c);
                }
                Ok(())
            };
            let code = sandbox
                .raw_exec(
                    &["sh", "-c", ROOT_SETUP],
                    "root",
                    Vec::new(),
                    None,
                    &mut sink,
                    None,
                )
                .await;
            if !matches!(code, Ok(0)) {
                sandbox.remove().await;
                return Err(SandboxError::Setup {
                    output: String::from_utf8_lossy(&out).trim().to_owned(),
                });
            }
        }
        Ok(sandbox)
    }

    /// Runs a command, sending `stdin` to it and its output to `log`; returns the exit code.
    pub async fn exec(
        &self,
        who: As,
        cmd: &[&str],
        env: &[(&str, &str)],
        stdin: Option<Vec<u8>>,
        log: &mut BuildLog,
    ) -> Result<i64, SandboxError> {
        let mut sink = |chunk: &[u8]| Ok(log.write(chunk)?);
        self.exec_inner(who, cmd, env, stdin, &mut sink, None).await
    }

    /// Runs a command and returns its exit code and standard output (stderr goes to `log`);
    /// output beyond `limit` bytes stops the command and is an error.
    pub async fn exec_capture(
        &self,
        who: As,
        cmd: &[&str],
        limit: usize,
        log: &mut BuildLog,
    ) -> Result<(i64, Vec<u8>), SandboxError> {
        let mut out = Vec::new();
        let what = format!("the output of `{}`", cmd.join(" "));
        // Writing into memory does not fail; the path only names it.
        let mut sink = bounded(
            &mut out,
            limit as u64,
            (&what, "fixed"),
            Path::new("(captured output)"),
        );
        let code = self
            .exec_inner(who, cmd, &[], None, &mut sink, Some(log))
            .await?;
        drop(sink);
        Ok((code, out))
    }

    /// Runs a command writing its standard output into the new file `path` (stderr goes to
    /// `log`); more than `limit` bytes stops the command and is [`SandboxError::TooLarge`]
    /// naming `what` and the `setting` that sets the limit.
    pub async fn exec_to_file(
        &self,
        who: As,
        cmd: &[&str],
        path: &Path,
        limit: u64,
        what: (&str, &'static str),
        log: &mut BuildLog,
    ) -> Result<i64, SandboxError> {
        let file_err = |source| SandboxError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::create_new(path).map_err(file_err)?;
        let mut sink = bounded(&mut file, limit, what, path);
        self.exec_inner(who, cmd, &[], None, &mut sink, Some(log))
            .await
    }

    async fn exec_inner(
        &self,
        who: As,
        cmd: &[&str],
        env: &[(&str, &str)],
        stdin: Option<Vec<u8>>,
        stdout: &mut Sink<'_>,
        stderr: Option<&mut BuildLog>,
    ) -> Result<i64, SandboxError> {
        let mut env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if who == As::Builder {
            env.extend(["HOME=/home/builder", "USER=builder", "LOGNAME=builder"].map(String::from));
        }
        // In a build root, root enters it with chroot, and the builder is entered as root and
        // dropped to uid 1000 by chroot itself (no new privileges can be gained afterwards).
        let mut full: Vec<&str> = Vec::new();
        if self.chroot {
            full.extend(DROP_ADMIN);
        }
        let user = match (self.chroot, who) {
            (true, As::Root) => {
                full.extend(["chroot", NEW_ROOT]);
                "root"
            }
            (true, As::Builder) => {
                full.extend(["chroot", "--userspec=1000:1000", NEW_ROOT]);
                "root"
            }
            (false, As::Root) => "root",
            (false, As::Builder) => "builder",
        };
        full.extend_from_slice(cmd);
        self.raw_exec(&full, user, env, stdin, stdout, stderr).await
    }

    async fn raw_exec(
        &self,
        cmd: &[&str],
        user: &str,
        env: Vec<String>,
        stdin: Option<Vec<u8>>,
        stdout: &mut Sink<'_>,
        mut stderr: Option<&mut BuildLog>,
    ) -> Result<i64, SandboxError> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                ExecConfig {
                    attach_stdin: Some(stdin.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    env: Some(env),
                    user: Some(user.into()),
                    working_dir: Some("/".into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(docker_err(format!("preparing `{}`", cmd.join(" "))))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(docker_err(format!("running `{}`", cmd.join(" "))))?;
        let bollard::exec::StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            unreachable!("exec is attached");
        };
        let feeder = tokio::spawn(async move {
            if let Some(data) = stdin {
                // The command may exit before reading everything; that is its exit code's story.
                let _ = input.write_all(&data).await;
            }
            let _ = input.shutdown().await;
        });
        let mut result: Result<(), SandboxError> = Ok(());
        while let Some(item) = output.next().await {
            use bollard::container::LogOutput;
            let item = item.map_err(docker_err(format!("reading `{}`", cmd.join(" "))))?;
            let step = match (item, stderr.as_deref_mut()) {
                (LogOutput::StdErr { message }, Some(log)) => {
                    log.write(&message).map_err(SandboxError::from)
                }
                (LogOutput::StdOut { message }, _)
                | (LogOutput::StdErr { message }, None)
                | (LogOutput::Console { message }, _) => stdout(&message),
                _ => Ok(()),
            };
            if let Err(full) = step {
                result = Err(full);
                break;
            }
        }
        feeder.abort();
        result?;
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(docker_err("reading an exit code"))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }

    /// Opens the package cache relay into the container (see [`super::relay`]): while it
    /// lives, `http://127.0.0.1:<port>` inside reaches `cache` (`host:port`), and nothing else.
    pub async fn relay(&self, cache: &str) -> Result<Relay, SandboxError> {
        Ok(Relay::open(self.pid, cache.to_owned()).await?)
    }

    async fn init_pid(&self) -> Result<i64, SandboxError> {
        let info = self
            .docker
            .inspect_container(
                &self.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(docker_err("inspecting the build container"))?;
        match info.state.and_then(|s| s.pid) {
            Some(pid) if pid > 0 => Ok(pid),
            _ => Err(SandboxError::NoProcess),
        }
    }

    /// Kills and removes the container with everything in it.
    pub async fn remove(self) {
        if let Err(e) = remove_container(&self.docker, &self.id).await {
            tracing::warn!(container = %self.id, error = %e, "could not remove build container");
        }
    }
}

/// The build container's name: `perestroika-<job id>-<a digest of the owner>`.
fn container_name(job_id: &str, owner: &str) -> String {
    use sha2::{Digest, Sha256};
    let owner = hex::encode(&Sha256::digest(owner.as_bytes())[..4]);
    format!("perestroika-{job_id}-{owner}")
}

#[cfg(test)]
mod tests {
    use super::container_name;

    #[test]
    fn two_workers_never_name_their_builds_of_one_job_alike() {
        let a = container_name("j1", "worker@host-a:0123456789ab");
        assert_eq!(a, container_name("j1", "worker@host-a:0123456789ab"));
        assert_ne!(a, container_name("j1", "worker@host-b:0123456789ab"));
        assert_ne!(a, container_name("j2", "worker@host-a:0123456789ab"));
        assert!(a.starts_with("perestroika-j1-"));
    }
}
