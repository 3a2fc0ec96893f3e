//! One build, from input to artifacts: prepare the sources, start a fresh container (no
//! network) from the distro's newest base image, install build dependencies through the
//! package cache relay, build as the unprivileged `builder` user, collect the results, remove
//! the container — whatever happened. The steps inside the container are the package family's
//! ([`crate::deb`], [`crate::rpm`]); what they share is [`crate::steps`]'.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use perestroika_config::settings::size_bytes;
use perestroika_config::Family;
use perestroika_protocol::messages::{Artifact, BuildOutcome, BuildResult, SCHEMA_VERSION};

use crate::container::buildlog::BuildLog;
use crate::container::rootfs::{self, BuildRoot};
use crate::container::sandbox::{Sandbox, SandboxSpec};
use crate::deb::source::{DebSourceError, PreparedSource};
use crate::image;
use crate::rpm::source::{PreparedRpm, RpmSourceError};
use crate::steps::deps::{dep_mount, present_repos};
use crate::steps::failure::{fail, io, Step};
use crate::{deb, rpm};

// What `run` takes and fails with, defined with what the steps share.
pub use crate::steps::{BuildEnv, BuildRequest, DepRepo, InfraError};
pub use perestroika_protocol::messages::LOG_NAME;
/// Name of the record of a build among its files.
pub const RESULT_NAME: &str = "result.json";

/// The build's outcome plus timings of its stages (for progress output and benchmarks).
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub result: BuildResult,
    /// (stage, seconds) in order.
    pub timings: Vec<(&'static str, f64)>,
}

/// Where a build prepares its sources.
fn work_dir(env: &BuildEnv, job_id: &str) -> PathBuf {
    env.scratch.join(job_id)
}

/// Where a build's overlay root is mounted.
fn root_dir(env: &BuildEnv, job_id: &str) -> PathBuf {
    env.scratch.join(format!("{job_id}-root"))
}

/// Removes what a build stopped midway left in the scratch space: its build root (unmounted)
/// and its prepared sources. Its containers are [`crate::container::docker::remove_job`]'s.
pub fn release_work(env: &BuildEnv, job_id: &str) {
    let root = root_dir(env, job_id);
    rootfs::release_leftovers(&root);
    let _ = fs_err::remove_dir_all(&root);
    let _ = fs_err::remove_dir_all(work_dir(env, job_id));
}

/// Runs one build. Build failures are reported in the result; only problems of the farm
/// itself (Docker down, no base image, a full disk) are errors.
pub async fn run(env: &BuildEnv, req: &BuildRequest) -> Result<BuildReport, InfraError> {
    let started_at = Utc::now();
    fs_err::create_dir_all(&req.out_dir).map_err(io(&req.out_dir))?;
    let log_path = req.out_dir.join(LOG_NAME);
    let mut log =
        BuildLog::create(&log_path, env.settings.max_log_bytes, req.echo).map_err(io(&log_path))?;
    let image = image::for_build(
        &env.docker,
        env.registry.as_deref(),
        &req.distro,
        req.base_digest.as_deref(),
    )
    .await?;
    if let Some(wanted) = req.family.filter(|f| *f != image.family) {
        return Err(InfraError::WrongFamily {
            job_id: req.job_id.clone(),
            distro: req.distro.clone(),
            image: image.tag,
            wanted,
            found: image.family,
        });
    }
    log.note(&format!(
        "job {} on {}: {} (image {}{})",
        req.job_id,
        env.worker_name,
        image.tag,
        image.id,
        image
            .digest
            .as_deref()
            .map(|d| format!(", digest {d}"))
            .unwrap_or_default()
    ));

    let work = work_dir(env, &req.job_id);
    let _ = fs_err::remove_dir_all(&work);
    let mut timings = Vec::new();
    let t = Instant::now();
    let prepared = prepare_sources(env, req, image.family, &work).await;
    timings.push(("source", t.elapsed().as_secs_f64()));
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = fs_err::remove_dir_all(&work);
            return Err(e);
        }
    };

    let mut package_version = None;
    let outcome = match prepared {
        Err(e) => Err(fail("source", e.to_string())),
        Ok(prepared) => {
            match &prepared {
                Prepared::Deb(p) => log.note(&format!(
                    "source package {} version {}",
                    p.source, p.version
                )),
                Prepared::Rpm(p) => log.note(&format!(
                    "spec {} release {}",
                    p.file,
                    p.release.as_deref().unwrap_or("(the spec's own)")
                )),
            }
            let t = Instant::now();
            let root = if env.settings.overlay_roots {
                let base =
                    rootfs::base_root(&env.docker, &image.id, &env.roots, &env.owner).await?;
                let root_dir = root_dir(env, &req.job_id);
                match BuildRoot::mount(&base, &root_dir, &env.settings.tmpfs_size) {
                    Ok(root) => Some(root),
                    Err(why) => {
                        log.note(&format!(
                            "no overlay build root ({why}); using the image's own root"
                        ));
                        None
                    }
                }
            } else {
                log.note("no overlay build root (build.overlay_roots is off); using the image's own root");
                None
            };
            timings.push(("root", t.elapsed().as_secs_f64()));
            // The dependency repositories present now are those mounted and those the
            // dependency step lists, the same set: one appearing in between is left for the
            // next build.
            let req = &BuildRequest {
                dep_repos: present_repos(req, image.family),
                ..req.clone()
            };
            let spec = SandboxSpec {
                image: image.id.clone(),
                job_id: req.job_id.clone(),
                owner: env.owner.clone(),
                tmpfs_size: env.settings.tmpfs_size.clone(),
                tmp_size: env.settings.tmp_size.clone(),
                // Checked when the configuration was read.
                memory_bytes: size_bytes(&env.settings.memory).unwrap_or(u64::MAX),
                read_only_binds: dep_mount(&req.dep_repos)
                    .map(|m| m.bind)
                    .into_iter()
                    .collect(),
                root: root.as_ref().map(BuildRoot::path),
            };
            let t = Instant::now();
            let sandbox = match Sandbox::start(&env.docker, &spec).await {
                Ok(s) => s,
                Err(e) => {
                    if let Some(root) = root {
                        root.release();
                    }
                    let _ = fs_err::remove_dir_all(&work);
                    return Err(e.into());
                }
            };
            timings.push(("container start", t.elapsed().as_secs_f64()));
            let steps = async {
                match &prepared {
                    Prepared::Deb(p) => {
                        deb::steps::in_container(env, req, &sandbox, p, &mut log, &mut timings)
                            .await
                    }
                    Prepared::Rpm(p) => {
                        rpm::steps::in_container(env, req, &sandbox, p, &mut log, &mut timings)
                            .await
                    }
                }
            };
            let inside = tokio::time::timeout(env.timeout, steps).await;
            let t = Instant::now();
            sandbox.remove().await;
            if let Some(root) = root {
                root.release();
            }
            timings.push(("container removal", t.elapsed().as_secs_f64()));
            match inside {
                Ok(Ok(built)) => {
                    package_version = Some(built.version);
                    Ok(built.artifacts)
                }
                Ok(Err(Step::Failed(f))) => Err(f),
                Ok(Err(Step::Infra(e))) => {
                    let _ = fs_err::remove_dir_all(&work);
                    return Err(e);
                }
                Err(_) => Err(fail(
                    "timeout",
                    format!(
                        "the build ran longer than {} s and was stopped",
                        env.timeout.as_secs()
                    ),
                )),
            }
        }
    };
    let _ = fs_err::remove_dir_all(&work);

    let (outcome, artifacts) = match outcome {
        Ok(artifacts) => (BuildOutcome::Succeeded, artifacts),
        Err(f) => {
            log.note(&format!("build failed at step {}: {}", f.step, f.reason));
            (
                BuildOutcome::Failed {
                    step: f.step.to_owned(),
                    reason: f.reason,
                },
                Vec::new(),
            )
        }
    };
    let summary = timings
        .iter()
        .map(|(stage, secs)| format!("{stage} {secs:.2}s"))
        .collect::<Vec<_>>()
        .join(", ");
    log.note(&format!("timings: {summary}"));
    let result = BuildResult {
        schema_version: SCHEMA_VERSION,
        job_id: req.job_id.clone(),
        outcome,
        package_version,
        artifacts,
        log: Some(Artifact::of_file(&log_path).map_err(io(&log_path))?),
        image_id: Some(image.id),
        image_digest: image.digest,
        worker: env.worker_name.clone(),
        started_at,
        finished_at: Utc::now(),
    };
    let record = req.out_dir.join(RESULT_NAME);
    let json = serde_json::to_vec_pretty(&result).expect("result serialises");
    fs_err::write(&record, json).map_err(io(&record))?;
    Ok(BuildReport { result, timings })
}

/// A build's input, prepared for its family.
enum Prepared {
    Deb(PreparedSource),
    Rpm(PreparedRpm),
}

/// Why a build's input could not be laid out: its family's error.
#[derive(Debug, thiserror::Error)]
enum Unprepared {
    #[error(transparent)]
    Deb(DebSourceError),
    #[error(transparent)]
    Rpm(RpmSourceError),
}

/// Lays out the build's input under `work` on a blocking thread (git and the archives block).
/// Broken sources are the inner error (the build fails at step `source`); git running out of
/// time says nothing about the sources and is the outer one, so that the job is tried again.
async fn prepare_sources(
    env: &BuildEnv,
    req: &BuildRequest,
    family: Family,
    work: &Path,
) -> Result<Result<Prepared, Unprepared>, InfraError> {
    let (input, distro, git, settings, dir) = (
        req.input.clone(),
        req.distro.clone(),
        env.git.clone(),
        env.settings.clone(),
        work.to_owned(),
    );
    let prepared = tokio::task::spawn_blocking(move || match family {
        Family::Deb => deb::source::prepare(&input, &distro, &git, &settings, &dir)
            .map(Prepared::Deb)
            .map_err(Unprepared::Deb),
        Family::Rpm => rpm::source::prepare(&input, &git, &settings, &dir)
            .map(Prepared::Rpm)
            .map_err(Unprepared::Rpm),
    })
    .await
    .expect("preparing the sources does not panic");
    match prepared {
        // The farm could not get them now (their host unreachable or too slow, a full disk):
        // the job is tried again later, and nothing is said about the change.
        Err(
            Unprepared::Deb(DebSourceError::Source(e)) | Unprepared::Rpm(RpmSourceError::Source(e)),
        ) if e.is_transient() => Err(InfraError::Source(e)),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests;
