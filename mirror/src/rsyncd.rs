//! The rsync daemon `perestroika-mirror serve` starts for downstream mirrors: one read-only
//! module, `perestroika`, holding the served tree and nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Writes the daemon's configuration into `dir` and returns its path.
pub fn write_config(dir: &Path, root: &Path) -> std::io::Result<PathBuf> {
    fs_err::create_dir_all(dir)?;
    let conf = dir.join("rsyncd.conf");
    fs_err::write(
        &conf,
        format!(
            "# Written by perestroika-mirror serve.\n\
             pid file = {dir}/rsyncd.pid\n\
             use chroot = {chroot}\n\
             munge symlinks = no\n\
             reverse lookup = no\n\
             max connections = 50\n\
             timeout = 300\n\
             [perestroika]\n\
             comment = Perestroika package repositories\n\
             path = {root}\n\
             read only = yes\n\
             list = yes\n\
             exclude = *.tmp\n",
            dir = dir.display(),
            root = root.display(),
            // The tree's links are relative and stay inside it; chroot where we may.
            chroot = if is_root() { "yes" } else { "no" },
        ),
    )?;
    Ok(conf)
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// Starts `rsync --daemon` in the foreground on `addr`; it stops when the child is dropped.
pub fn start(conf: &Path, addr: SocketAddr) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new("rsync")
        .arg("--daemon")
        .arg("--no-detach")
        .arg(format!("--config={}", conf.display()))
        .arg(format!("--address={}", addr.ip()))
        .arg(format!("--port={}", addr.port()))
        .kill_on_drop(true)
        .spawn()
}
