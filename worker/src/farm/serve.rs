//! The worker's staging area served read-only to the publisher: an rsync daemon, the worker's
//! child, with one module (`staging`) that only the configured publisher hosts may read. The
//! publisher fetches each job's files from it (it opens no port itself); nothing else may
//! list, write or follow a link out of it.

use std::path::{Path, PathBuf};

use perestroika_config::settings::STAGING_MODULE;
use perestroika_config::FarmConfig;

/// Writes the daemon's configuration into `dir` and returns its path.
pub fn write_config(farm: &FarmConfig, dir: &Path) -> std::io::Result<PathBuf> {
    fs_err::create_dir_all(dir)?;
    let conf = dir.join("rsyncd.conf");
    let root = rustix::process::geteuid().is_root();
    let w = &farm.worker;
    fs_err::write(
        &conf,
        format!(
            "# Written by perestroika-worker run: the staging area, read-only, for the publisher.\n\
             lock file = {dir}/rsyncd.lock\n\
             use chroot = {chroot}\n\
             numeric ids = yes\n\
             reverse lookup = no\n\
             max connections = {max}\n\
             timeout = {timeout}\n\
             transfer logging = yes\n\
             [{module}]\n\
             path = {staging}\n\
             uid = {uid}\n\
             gid = {gid}\n\
             read only = yes\n\
             write only = no\n\
             list = no\n\
             hosts allow = {hosts}\n\
             hosts deny = *\n\
             exclude = .incoming-*\n\
             refuse options = copy-links copy-unsafe-links copy-dirlinks keep-dirlinks delete\n",
            dir = dir.display(),
            chroot = if root { "yes" } else { "no" },
            max = w.max_connections,
            timeout = farm.fetch.timeout_secs,
            module = STAGING_MODULE,
            staging = farm.paths.staging.display(),
            uid = rustix::process::geteuid().as_raw(),
            gid = rustix::process::getegid().as_raw(),
            hosts = w.publisher_hosts.join(" "),
        ),
    )?;
    Ok(conf)
}

/// Starts the staging daemon on `[worker] serve_staging` when it is set; it stops with the
/// worker (dropped, or the worker killed: the parent's death signal ends it).
pub fn start(farm: &FarmConfig, dir: &Path) -> std::io::Result<Option<tokio::process::Child>> {
    let Some(addr) = farm.worker.serve_staging else {
        return Ok(None);
    };
    let conf = write_config(farm, dir)?;
    let child = tokio::process::Command::new("setpriv")
        .args([
            "--pdeathsig",
            "KILL",
            "--",
            "rsync",
            "--daemon",
            "--no-detach",
        ])
        .arg(format!("--config={}", conf.display()))
        .arg(format!("--address={}", addr.ip()))
        .arg(format!("--port={}", addr.port()))
        .arg("--log-file=/dev/stderr")
        .kill_on_drop(true)
        .spawn()?;
    tracing::info!(%addr, module = STAGING_MODULE, hosts = %farm.worker.publisher_hosts.join(" "), "serving the staging area to the publisher");
    Ok(Some(child))
}
