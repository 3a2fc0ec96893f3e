//! Files a worker staged for the publisher, taken as hostile input: each is opened without
//! following a link (neither the job's directory nor the file may be one), must be a regular
//! file of the size the job names, and is copied into the publisher's own directory while its
//! sha256 is computed. Only the copies are published, so nothing the worker changes afterwards
//! (a file swapped for a link to the keyring, say) can reach the public tree.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use perestroika_protocol::messages::Artifact;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::error::{io, PublishError};

/// Copies every artifact from the job's staging directory `dir` into `into` (emptied first),
/// checking each against the job's manifest; returns the copies' paths, in order.
pub fn take_staged(
    dir: &Path,
    artifacts: &[Artifact],
    into: &Path,
) -> Result<Vec<PathBuf>, PublishError> {
    if into.exists() {
        fs_err::remove_dir_all(into).map_err(io(into))?;
    }
    fs_err::create_dir_all(into).map_err(io(into))?;
    let staged = open_dir(dir)?;
    artifacts
        .iter()
        .map(|a| take_one(&staged, dir, a, into))
        .collect()
}

/// The job's staging directory, opened without following a link.
fn open_dir(dir: &Path) -> Result<rustix::fd::OwnedFd, PublishError> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refused_or_missing(dir, "the job's staging directory", e))
}

fn refused_or_missing(path: &Path, what: &'static str, e: rustix::io::Errno) -> PublishError {
    match e {
        rustix::io::Errno::NOENT => PublishError::Missing {
            name: what.to_owned(),
            dir: path.to_owned(),
        },
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => PublishError::StagedLink {
            path: path.to_owned(),
            what,
        },
        other => PublishError::Io {
            path: path.to_owned(),
            source: other.into(),
        },
    }
}

fn take_one(
    staged: &rustix::fd::OwnedFd,
    dir: &Path,
    artifact: &Artifact,
    into: &Path,
) -> Result<PathBuf, PublishError> {
    let path = dir.join(&artifact.name);
    // O_NONBLOCK: a FIFO put in a file's place must not hang the publisher.
    let fd = rustix::fs::openat(
        staged,
        artifact.name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => PublishError::Missing {
            name: artifact.name.clone(),
            dir: dir.to_owned(),
        },
        other => refused_or_missing(&path, "the staged file", other),
    })?;
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(io(&path))?;
    if !meta.is_file() {
        return Err(PublishError::NotAFile { path });
    }
    if meta.len() != artifact.size {
        return Err(PublishError::Size {
            path,
            size: meta.len(),
            expected: artifact.size,
        });
    }
    let copy = into.join(&artifact.name);
    let mut out = fs_err::File::create(&copy).map_err(io(&copy))?;
    let mut hasher = Sha256::new();
    // Never more than the manifest's size, whatever the file grows to meanwhile.
    let mut limited = (&mut file).take(artifact.size + 1);
    let mut buf = vec![0u8; 1 << 16];
    let mut copied = 0u64;
    loop {
        let n = limited.read(&mut buf).map_err(io(&path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&copy))?;
        copied += n as u64;
    }
    out.sync_all().map_err(io(&copy))?;
    let found = hex::encode(hasher.finalize());
    if copied != artifact.size || found != artifact.sha256 {
        return Err(PublishError::Checksum {
            name: artifact.name.clone(),
            expected: artifact.sha256.clone(),
            found,
        });
    }
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dir: &Path, name: &str, content: &[u8]) -> Artifact {
        let path = dir.join(name);
        fs_err::write(&path, content).unwrap();
        Artifact::of_file(&path).unwrap()
    }

    #[test]
    fn links_fifos_and_wrong_sizes_are_refused_and_good_files_are_copied() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("job");
        let into = root.path().join("into");
        fs_err::create_dir(&job).unwrap();
        let good = staged(&job, "a.deb", b"package");
        let copies = take_staged(&job, std::slice::from_ref(&good), &into).unwrap();
        assert_eq!(fs_err::read(&copies[0]).unwrap(), b"package");

        // A link to a secret with the secret's own checksum: still refused.
        let secret = root.path().join("secret");
        fs_err::write(&secret, b"secret key").unwrap();
        let mut linked = Artifact::of_file(&secret).unwrap();
        linked.name = "b.deb".into();
        std::os::unix::fs::symlink(&secret, job.join("b.deb")).unwrap();
        let e = take_staged(&job, &[linked], &into).unwrap_err();
        assert!(e.to_string().contains("is a link"), "{e}");

        // The job's directory itself a link.
        std::os::unix::fs::symlink(&job, root.path().join("job2")).unwrap();
        let e = take_staged(
            &root.path().join("job2"),
            std::slice::from_ref(&good),
            &into,
        )
        .unwrap_err();
        assert!(e.to_string().contains("is a link"), "{e}");

        // A FIFO does not hang the publisher.
        let fifo = job.join("c.deb");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let mut named = good.clone();
        named.name = "c.deb".into();
        let e = take_staged(&job, &[named], &into).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        // A size or content other than the manifest's.
        let mut bigger = good.clone();
        bigger.size += 1;
        let e = take_staged(&job, &[bigger], &into).unwrap_err();
        assert!(e.to_string().contains("bytes"), "{e}");
        let mut other = good;
        other.sha256 = "0".repeat(64);
        let e = take_staged(&job, &[other], &into).unwrap_err();
        assert!(matches!(e, PublishError::Checksum { .. }), "{e}");
    }
}
