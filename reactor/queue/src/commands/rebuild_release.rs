//! `rebuild-release`: run by the worker, which has the build machinery. The command hands its
//! arguments to `perestroika-worker rebuild-release`, found next to this binary or on `PATH`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Args;
use perestroika_host::cli::ConfigArgs;

/// The binary that runs the rebuilds.
const WORKER: &str = "perestroika-worker";

#[derive(Args)]
pub struct RebuildReleaseArgs {
    /// The customer (as in `[[customers]] name`, e.g. acme).
    pub customer: String,
    /// The release series (e.g. 9.0).
    pub version: String,
    /// The snapshot to rebuild (see `perestroika-publisher snapshot list`); default: live.
    #[arg(long)]
    pub snapshot: Option<u64>,
    /// Where the rebuilds go (default: <state>/rebuild/<customer>/<version>/<snapshot>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The worker's command line for these arguments.
fn worker_args(common: &ConfigArgs, args: &RebuildReleaseArgs) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    if let Some(config) = &common.config {
        out.extend(["--config".into(), config.into()]);
    }
    if common.json {
        out.push("--json".into());
    }
    out.extend([
        "rebuild-release".into(),
        (&args.customer).into(),
        (&args.version).into(),
    ]);
    if let Some(n) = args.snapshot {
        out.extend(["--snapshot".into(), n.to_string().into()]);
    }
    if let Some(dir) = &args.out {
        out.extend(["--out".into(), dir.into()]);
    }
    out
}

/// The worker binary: the one next to this binary, else the name, for `PATH` to find.
fn worker_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(WORKER)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(WORKER))
}

/// Replaces this process with `perestroika-worker rebuild-release`; returns only when that
/// cannot start, after saying why.
pub fn forward(common: &ConfigArgs, args: &RebuildReleaseArgs) -> ExitCode {
    let binary = worker_binary();
    let mut command = Command::new(&binary);
    command.args(worker_args(common, args));
    // As quiet as this command always was: the worker logs at `info` by default.
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "warn");
    }
    let error = command.exec();
    let here = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.display().to_string()))
        .unwrap_or_else(|| "this binary's directory".into());
    eprintln!(
        "error: rebuild-release runs `{WORKER} rebuild-release`, which could not start ({}: {error}); install {WORKER} in {here} or on PATH",
        binary.display()
    );
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_gets_the_same_arguments() {
        let mut args = RebuildReleaseArgs {
            customer: "acme".into(),
            version: "9.0".into(),
            snapshot: None,
            out: None,
        };
        assert_eq!(
            worker_args(&ConfigArgs::default(), &args),
            ["rebuild-release", "acme", "9.0"]
        );
        args.snapshot = Some(7);
        args.out = Some("/tmp/out".into());
        let common = ConfigArgs {
            config: Some("/etc/farm.toml".into()),
            json: true,
        };
        assert_eq!(
            worker_args(&common, &args),
            [
                "--config",
                "/etc/farm.toml",
                "--json",
                "rebuild-release",
                "acme",
                "9.0",
                "--snapshot",
                "7",
                "--out",
                "/tmp/out"
            ]
        );
    }
}
