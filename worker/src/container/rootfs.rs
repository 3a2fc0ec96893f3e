//! Build roots on the host's kernel overlayfs.
//!
//! Docker's storage driver may be slow for build work (fuse-overlayfs doubles the time of a
//! typical build). So each base image is exported once into a plain directory, and every build
//! gets a fresh kernel overlay of it — writes go to a private tmpfs — bound into the container,
//! which runs every command of the build chrooted into it. The container stays the unit of
//! isolation (namespaces, seccomp, capabilities, network); the overlay only carries the files.
//! Where overlayfs cannot be mounted (a worker not running as root, say), builds fall back to
//! the image's own root file system.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// A root file system problem.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("exporting image {image}: {detail}")]
    Export { image: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A build's overlay root could not be mounted; the build then runs in the image's own root.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `mount` refused, with what it said.
    #[error("mounting {fs} at {target}: {detail}")]
    Refused {
        fs: &'static str,
        target: String,
        detail: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RootError + '_ {
    move |source| RootError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The plain-directory copy of an image, made once per image under `roots`. The container it
/// is exported from is labelled `owner`'s, so that one left by a worker killed midway is
/// removed with that worker's other leftovers.
pub async fn base_root(
    docker: &Docker,
    image_id: &str,
    roots: &Path,
    owner: &str,
) -> Result<PathBuf, RootError> {
    let key = image_id.trim_start_matches("sha256:");
    let dir = roots.join(&key[..key.len().min(24)]);
    if dir.join("usr").is_dir() {
        return Ok(dir);
    }
    let export_err = |detail: String| RootError::Export {
        image: image_id.to_owned(),
        detail,
    };
    fs_err::create_dir_all(roots).map_err(io(roots))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = roots.join(format!(
        ".{}.{}.{nanos}",
        &key[..12.min(key.len())],
        std::process::id()
    ));
    let _ = fs_err::remove_dir_all(&tmp);
    fs_err::create_dir_all(&tmp).map_err(io(&tmp))?;
    let body = ContainerCreateBody {
        image: Some(image_id.to_owned()),
        cmd: Some(vec!["true".into()]),
        labels: Some(std::collections::HashMap::from([(
            super::docker::OWNER_LABEL.to_owned(),
            owner.to_owned(),
        )])),
        ..Default::default()
    };
    let created = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(|e| export_err(e.to_string()))?;
    let mut tar = tokio::process::Command::new("tar")
        .args(["-x", "-p", "--numeric-owner", "-f", "-", "-C"])
        .arg(&tmp)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(io(&tmp))?;
    let mut stdin = tar.stdin.take().expect("piped");
    let mut stream = docker.export_container(&created.id);
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if let Err(e) = stdin.write_all(&bytes).await {
                    failure = Some(e.to_string());
                    break;
                }
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    drop(stdin);
    let status = tar.wait().await.map_err(io(&tmp))?;
    let _ = docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    if let Some(detail) = failure {
        let _ = fs_err::remove_dir_all(&tmp);
        return Err(export_err(detail));
    }
    if !status.success() {
        let _ = fs_err::remove_dir_all(&tmp);
        return Err(export_err(format!("tar exited with {status}")));
    }
    if let Err(e) = fs_err::rename(&tmp, &dir) {
        // Another build exported the same image meanwhile: use theirs.
        let _ = fs_err::remove_dir_all(&tmp);
        if !dir.join("usr").is_dir() {
            return Err(io(&dir)(e));
        }
    }
    Ok(dir)
}

/// Removes exported roots of images that are gone (at the worker's start and after `image
/// prune`), and exports cut short by a process that is gone. Returns how many went.
pub fn prune_roots(roots: &Path, live_image_ids: &[String]) -> usize {
    let Ok(entries) = fs_err::read_dir(roots) else {
        return 0;
    };
    let live: Vec<&str> = live_image_ids
        .iter()
        .map(|id| id.trim_start_matches("sha256:"))
        .collect();
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `.<image>.<pid>.<nanos>`: an export in progress, unless its process is gone.
        let exporting = name
            .strip_prefix('.')
            .and_then(|n| n.split('.').nth(1))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(crate::process::alive);
        if !exporting && !live.iter().any(|id| id.starts_with(&name)) {
            let _ = fs_err::remove_dir_all(entry.path());
            removed += 1;
        }
    }
    removed
}

/// A build's private overlay of a base root. Unmount with [`BuildRoot::release`].
#[derive(Debug)]
pub struct BuildRoot {
    dir: PathBuf,
    merged: PathBuf,
}

/// Mounts a file system of type `fs` at `target` with `options`.
fn mount(fs: &'static str, options: &str, target: &str) -> Result<(), MountError> {
    let out = Command::new("mount")
        .args(["-t", fs, "-o", options, "perestroika-root", target])
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(MountError::Refused {
            fs,
            target: target.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn unmount(path: &Path) {
    let ok = Command::new("umount")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // Still busy (Docker lets go of bind mounts a moment after removal): detach lazily.
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

impl BuildRoot {
    /// Mounts a tmpfs at `dir` and an overlay of `base` with its upper layer there.
    pub fn mount(base: &Path, dir: &Path, tmpfs_size: &str) -> Result<Self, MountError> {
        fs_err::create_dir_all(dir)?;
        let d = dir.display().to_string();
        mount("tmpfs", &format!("size={tmpfs_size},mode=0755"), &d)?;
        let root = Self {
            dir: dir.to_owned(),
            merged: dir.join("merged"),
        };
        for sub in ["upper", "work", "merged"] {
            fs_err::create_dir_all(dir.join(sub))?;
        }
        let options = format!(
            "lowerdir={},upperdir={d}/upper,workdir={d}/work",
            base.display()
        );
        if let Err(e) = mount("overlay", &options, &root.merged.display().to_string()) {
            unmount(dir);
            return Err(e);
        }
        Ok(root)
    }

    /// The root directory to bind into the container.
    pub fn path(&self) -> String {
        self.merged.display().to_string()
    }

    /// Unmounts the overlay and its tmpfs and removes the directory.
    pub fn release(self) {
        unmount(&self.merged);
        unmount(&self.dir);
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}

/// Unmounts whatever is mounted at or below `dir`, deepest first: the build roots a killed
/// worker left under its scratch space, or those of one abandoned build.
pub fn release_leftovers(dir: &Path) {
    let Ok(mounts) = fs_err::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    // Deepest first: overlays before the tmpfs beneath them.
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        tracing::info!(mount = p, "unmounting a leftover build root");
        unmount(Path::new(p));
    }
}
