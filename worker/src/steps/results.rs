//! The end every family's build shares: the build root's package list, the build with no
//! network as the builder, and its results collected out of the container, bounded in size
//! and number, plain file names only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use perestroika_config::settings::BuildSettings;
use perestroika_protocol::messages::Artifact;

use super::failure::{fail, Step};
use crate::container::buildlog::BuildLog;
use crate::container::sandbox::{As, Sandbox};

/// Every package of the build root with its version, after the build dependencies went in.
pub const BUILD_ROOT_NAME: &str = "build-root.list";

/// What a successful build made.
pub(crate) struct Built {
    /// The build's files, the build root's package list last.
    pub artifacts: Vec<Artifact>,
    /// The version of the built package, as its family writes it.
    pub version: String,
}

/// Writes the build root's package list (the output of `cmd`) among the build's files.
pub(crate) async fn record_build_root(
    sandbox: &Sandbox,
    cmd: &[&str],
    out_dir: &Path,
    log: &mut BuildLog,
) -> Result<PathBuf, Step> {
    let (_, list) = sandbox.exec_capture(As::Root, cmd, 16 << 20, log).await?;
    let path = out_dir.join(BUILD_ROOT_NAME);
    fs_err::write(&path, &list).map_err(Step::io(&path))?;
    Ok(path)
}

/// Runs the family's collect command as the builder, unpacks the results into `out_dir` and
/// describes them, the build root's package list last. The results' tar goes to a file, never
/// beyond `build.max_result_bytes`, and holds at most `build.max_results` files.
async fn collect(
    sandbox: &Sandbox,
    run: &Offline<'_>,
    settings: &BuildSettings,
    log: &mut BuildLog,
) -> Result<Vec<Artifact>, Step> {
    let tar = run.out_dir.join(".results.tar");
    let _ = fs_err::remove_file(&tar);
    let code = sandbox
        .exec_to_file(
            As::Builder,
            run.collect,
            &tar,
            settings.max_result_bytes,
            ("the build's results", "build.max_result_bytes"),
            log,
        )
        .await;
    let extracted = match code {
        Ok(0) => extract_results(&tar, run.out_dir, settings.max_results),
        Ok(_) => Err(Step::failed(
            "collect",
            log,
            "collecting the results failed",
        )),
        Err(e) => Err(e.into()),
    };
    let _ = fs_err::remove_file(&tar);
    let mut artifacts = extracted?;
    artifacts.push(Artifact::of_file(run.root_list).map_err(Step::io(run.root_list))?);
    for a in &artifacts {
        log.note(&format!(
            "artifact {} ({} bytes, sha256 {})",
            a.name, a.size, a.sha256
        ));
    }
    Ok(artifacts)
}

/// The end every family's build shares: what to run with the network off.
pub(crate) struct Offline<'a> {
    /// The build command, run as the builder.
    pub build: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    /// The step a failed build command is reported as.
    pub step: &'static str,
    /// The collect command, run as root.
    pub collect: &'a [&'a str],
    pub out_dir: &'a Path,
    pub root_list: &'a Path,
}

/// Builds as the builder, with no network at all, and collects the results.
pub(crate) async fn build_offline(
    sandbox: &Sandbox,
    run: Offline<'_>,
    settings: &BuildSettings,
    log: &mut BuildLog,
    timings: &mut Vec<(&'static str, f64)>,
) -> Result<Vec<Artifact>, Step> {
    log.note("no network; building as user builder");
    let t = Instant::now();
    let code = sandbox
        .exec(As::Builder, run.build, run.env, None, log)
        .await?;
    timings.push(("build", t.elapsed().as_secs_f64()));
    if code != 0 {
        return Err(Step::failed(
            run.step,
            log,
            &format!("{} exited with {code}", run.step),
        ));
    }
    let t = Instant::now();
    let artifacts = collect(sandbox, &run, settings, log).await?;
    timings.push(("collect", t.elapsed().as_secs_f64()));
    Ok(artifacts)
}

/// Writes the regular files of the result tar at `tar` into `out`, refusing anything but
/// plain names, and more than `max` files.
fn extract_results(tar: &Path, out: &Path, max: u32) -> Result<Vec<Artifact>, Step> {
    let file = fs_err::File::open(tar).map_err(Step::io(tar))?;
    let mut artifacts = Vec::new();
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(Step::io(tar))? {
        let mut entry = entry.map_err(Step::io(tar))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if artifacts.len() >= max as usize {
            return Err(Step::Failed(fail(
                "limit",
                format!("the build left more than {max} files as results (build.max_results)"),
            )));
        }
        let path = entry.path().map_err(Step::io(tar))?.into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if perestroika_config::names::check_file_name(&name).is_err()
            || path.components().count() != 1
        {
            tracing::warn!(path = %path.display(), "skipping an unexpected file in the build results");
            continue;
        }
        let dest = out.join(&name);
        entry.unpack(&dest).map_err(Step::io(&dest))?;
        artifacts.push(Artifact::of_file(&dest).map_err(Step::io(&dest))?);
    }
    Ok(artifacts)
}
