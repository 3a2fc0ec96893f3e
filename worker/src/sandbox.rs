//! The build container's whole life: created fresh from a base image, fed through exec,
//! cut off the network, emptied, removed. Nothing else in the worker talks to Docker about
//! containers.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, NetworkDisconnectRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::buildlog::{BuildLog, LogFull};

/// Label naming the worker that owns a container (to clean up after a crash).
pub const OWNER_LABEL: &str = "perestroika.owner";
/// Label naming the job a container builds.
pub const JOB_LABEL: &str = "perestroika.job";

/// A container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Docker: {what}: {source}; is the Docker engine running (`docker info`)?")]
    Docker {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    LogFull(#[from] LogFull),
    #[error("preparing the build root in the container failed: {0}")]
    Setup(String),
}

fn docker_err(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Docker { what, source }
}

/// What a build container is made from.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub image: String,
    pub job_id: String,
    pub owner: String,
    /// Size of the tmpfs at /build, e.g. "8g".
    pub tmpfs_size: String,
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
    /// no new privileges, on the default bridge network until [`Sandbox::cut_network`].
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
                    "rw,exec,nosuid,nodev,mode=1777".to_owned(),
                ),
            ])),
            binds: Some(binds),
            cap_drop: Some(cap_drop.into_iter().map(String::from).collect()),
            cap_add: Some(cap_add),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            // No docker-init: it would be mounted into /sbin, which is the build root's.
            pids_limit: Some(4096),
            network_mode: Some("bridge".into()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            labels: Some(labels),
            host_config: Some(host_config),
            network_disabled: Some(false),
            ..Default::default()
        };
        let name = format!("perestroika-{}", spec.job_id);
        // A container of the same name is a leftover of an earlier attempt at this job.
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
        let sandbox = Self {
            docker: docker.clone(),
            id: created.id,
            chroot: spec.root.is_some(),
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
        if sandbox.chroot {
            let mut out = Vec::new();
            let mut sink = |c: &[u8]| {
                out.extend_from_slice(c);
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
                return Err(SandboxError::Setup(
                    String::from_utf8_lossy(&out).trim().to_owned(),
                ));
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
        let mut sink = |chunk: &[u8]| log.write(chunk);
        self.exec_inner(who, cmd, env, stdin, &mut sink, None).await
    }

    /// Runs a command and returns its exit code and standard output (stderr goes to `log`).
    pub async fn exec_capture(
        &self,
        who: As,
        cmd: &[&str],
        log: &mut BuildLog,
    ) -> Result<(i64, Vec<u8>), SandboxError> {
        let mut out = Vec::new();
        let code = {
            let mut sink = |chunk: &[u8]| {
                out.extend_from_slice(chunk);
                Ok(())
            };
            self.exec_inner(who, cmd, &[], None, &mut sink, Some(log))
                .await?
        };
        Ok((code, out))
    }

    async fn exec_inner(
        &self,
        who: As,
        cmd: &[&str],
        env: &[(&str, &str)],
        stdin: Option<Vec<u8>>,
        stdout: &mut (dyn FnMut(&[u8]) -> Result<(), LogFull> + Send),
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
        stdout: &mut (dyn FnMut(&[u8]) -> Result<(), LogFull> + Send),
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
        let mut result = Ok(());
        while let Some(item) = output.next().await {
            use bollard::container::LogOutput;
            let item = item.map_err(docker_err(format!("reading `{}`", cmd.join(" "))))?;
            let step = match (item, stderr.as_deref_mut()) {
                (LogOutput::StdErr { message }, Some(log)) => log.write(&message),
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

    /// Disconnects the container from every network: from here on it has loopback only.
    pub async fn cut_network(&self) -> Result<(), SandboxError> {
        let info = self
            .docker
            .inspect_container(
                &self.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(docker_err("inspecting the build container"))?;
        let networks = info
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        for network in networks.keys() {
            self.docker
                .disconnect_network(
                    network,
                    NetworkDisconnectRequest {
                        container: self.id.clone(),
                        force: Some(true),
                    },
                )
                .await
                .map_err(docker_err(format!("disconnecting from network {network}")))?;
        }
        Ok(())
    }

    /// Kills and removes the container with everything in it.
    pub async fn remove(self) {
        if let Err(e) = remove_container(&self.docker, &self.id).await {
            tracing::warn!(container = %self.id, error = %e, "could not remove build container");
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
}

/// The containers of `owner` (all of them when `None`), running or not.
pub async fn list_owned(docker: &Docker, owner: Option<&str>) -> Result<Vec<String>, SandboxError> {
    let label = match owner {
        Some(o) => format!("{OWNER_LABEL}={o}"),
        None => OWNER_LABEL.to_owned(),
    };
    let filters = HashMap::from([("label".to_owned(), vec![label])]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(docker_err("listing build containers"))?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

/// Removes the containers a previous run of this worker left behind (after a crash or kill).
pub async fn remove_leftovers(docker: &Docker, owner: &str) -> Result<usize, SandboxError> {
    let ids = list_owned(docker, Some(owner)).await?;
    for id in &ids {
        tracing::info!(container = %id, "removing a leftover build container");
        let _ = remove_container(docker, id).await;
    }
    Ok(ids.len())
}

/// Connects to the local Docker engine.
pub fn connect() -> Result<Docker, SandboxError> {
    Docker::connect_with_local_defaults().map_err(docker_err("connecting"))
}

/// Rewrites a URL on this host (`127.0.0.1`, `localhost`) so that a build container reaches it
/// through the default bridge's gateway.
pub async fn url_from_container(docker: &Docker, url: &str) -> Result<String, SandboxError> {
    let local = ["127.0.0.1", "localhost", "[::1]"];
    let Some(host) = local.iter().find(|h| url.contains(&format!("://{h}"))) else {
        return Ok(url.to_owned());
    };
    let network = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .map_err(docker_err("inspecting the bridge network"))?;
    let config = network.ipam.and_then(|i| i.config).unwrap_or_default();
    let gateway = config.iter().find_map(|c| {
        c.gateway.clone().or_else(|| {
            // No gateway recorded: Docker uses the subnet's first address.
            let subnet = c.subnet.as_deref()?;
            let (base, _) = subnet.split_once('/')?;
            let mut octets: Vec<u8> = base
                .split('.')
                .map(|o| o.parse().ok())
                .collect::<Option<_>>()?;
            *octets.last_mut()? += 1;
            Some(
                octets
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            )
        })
    });
    match gateway {
        Some(gw) => Ok(url.replacen(&format!("://{host}"), &format!("://{gw}"), 1)),
        None => Ok(url.to_owned()),
    }
}
