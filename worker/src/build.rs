//! One build, from input to artifacts: prepare the sources, start a fresh container (no
//! network) from the distro's newest base image, install build dependencies through the
//! package cache relay, build as the unprivileged `builder` user, collect the results, remove
//! the container — whatever happened. The steps inside the container are the package family's
//! (this module for debs, [`crate::rpm_build`] for rpms); everything around them is shared.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use chrono::Utc;
use perestroika_config::settings::{size_bytes, BuildSettings};
use perestroika_config::Family;
use perestroika_protocol::messages::{Artifact, BuildOutcome, BuildResult, SCHEMA_VERSION};

use crate::buildlog::BuildLog;
use crate::git::GitCache;
use crate::image::{self, ImageError};
use crate::relay::cache_address;
use crate::rootfs::{self, BuildRoot, RootError};
use crate::rpm_source::{self, PreparedRpm};
use crate::sandbox::{As, Sandbox, SandboxError, SandboxSpec};
use crate::source::{self, PreparedSource, SourceError, SourceInput};

pub(crate) const UNPACK: &str = include_str!("../scripts/unpack.sh");
const PREPARE: &str = include_str!("../scripts/prepare.sh");
const DEPS: &str = include_str!("../scripts/deps.sh");
const BUILD: &str = include_str!("../scripts/build.sh");
const COLLECT: &str = include_str!("../scripts/collect.sh");

pub use perestroika_protocol::messages::LOG_NAME;
/// Name of the record of a build among its files.
pub const RESULT_NAME: &str = "result.json";
/// Every package of the build root with its version, after the build dependencies went in.
pub const BUILD_ROOT_NAME: &str = "build-root.list";

/// The build could not be attempted: the farm, not the package, is at fault (retry later).
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("job {job_id} is an {wanted} build, but the newest image of {distro} ({image}) builds {found} packages")]
    WrongFamily {
        job_id: String,
        distro: String,
        image: String,
        wanted: Family,
        found: Family,
    },
    /// The sources could not be had now ([`SourceError::is_transient`]: their host unreachable
    /// or too slow, a full disk); they may well be fine.
    #[error("{0}; the job will be tried again")]
    Source(#[source] SourceError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InfraError {
    /// Whether trying again later can succeed: not for a job whose family its distro's image
    /// does not build, which only a new image or a corrected job changes.
    pub fn is_transient(&self) -> bool {
        !matches!(self, InfraError::WrongFamily { .. })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InfraError + '_ {
    move |source| InfraError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What to build and where the results go.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub job_id: String,
    pub input: SourceInput,
    pub distro: String,
    /// The family the build must make; `None` takes the family of the distro's image.
    pub family: Option<Family>,
    /// The repositories whose packages are available as build dependencies, besides the base:
    /// the release's suites, a topic's review repository. Each that has no signed repository
    /// of the distro yet is skipped. All lie below one customer's directory, or are one
    /// snapshot.
    pub dep_repos: Vec<DepRepo>,
    /// Where the artifacts, log and record are written.
    pub out_dir: PathBuf,
    /// Copy the build log to stdout as it comes.
    pub echo: bool,
}

/// One repository builds may take dependencies from: a public tree and one of its suites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepRepo {
    /// `<public root>/<customer>/<version>`, a review tree, or a snapshot of a release.
    pub tree: PathBuf,
    /// The deb suite or rpm repository name (`bookworm`, `bookworm-proposed`).
    pub suite: String,
}

impl DepRepo {
    pub fn new(tree: impl Into<PathBuf>, suite: &str) -> Self {
        Self {
            tree: tree.into(),
            suite: suite.to_owned(),
        }
    }
}

/// How builds run on this worker.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    pub docker: Docker,
    pub git: GitCache,
    /// Scratch space for preparing inputs and mounting build roots.
    pub scratch: PathBuf,
    /// Where base images are kept as plain directories for overlay build roots.
    pub roots: PathBuf,
    /// Names the containers of this worker, to clean up after a crash.
    pub owner: String,
    pub worker_name: String,
    pub timeout: Duration,
    /// Sizes and limits of builds (`[build]`).
    pub settings: BuildSettings,
    /// The package cache's `host:port`, as this host reaches it: the only address a build
    /// reaches, while its dependencies are installed (see [`crate::relay`]).
    pub package_cache: Option<String>,
}

impl BuildEnv {
    /// How builds run on this host outside farm mode (`perestroika-worker build`, release
    /// rebuilds): containers owned by `local@<host>`, git and exported roots cached under
    /// `~/.cache/perestroika`, scratch space in the temporary directory. `package_cache` is
    /// the proxy URL as seen from this host.
    pub fn local(
        settings: &BuildSettings,
        package_cache: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, SandboxError> {
        let docker = crate::sandbox::connect()?;
        let package_cache = package_cache.map(cache_address).transpose()?;
        let host = perestroika_protocol::broker::hostname();
        Ok(Self {
            docker,
            git: GitCache::new(&cache_dir().join("git"), settings.git_deadline()),
            scratch: std::env::temp_dir().join("perestroika-worker"),
            roots: cache_dir().join("roots"),
            owner: format!("local@{host}"),
            worker_name: host,
            timeout,
            settings: settings.clone(),
            package_cache,
        })
    }
}

/// The user's cache directory for the worker (`$XDG_CACHE_HOME/perestroika`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("perestroika")
}

/// A build failure, with the step that failed.
pub(crate) struct Failure {
    step: &'static str,
    reason: String,
}

pub(crate) fn fail(step: &'static str, reason: impl Into<String>) -> Failure {
    Failure {
        step,
        reason: reason.into(),
    }
}

/// The build's outcome plus timings of its stages (for progress output and benchmarks).
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub result: BuildResult,
    /// (stage, seconds) in order.
    pub timings: Vec<(&'static str, f64)>,
}

/// Runs one build. Build failures are reported in the result; only problems of the farm
/// itself (Docker down, no base image, a full disk) are errors.
pub async fn run(env: &BuildEnv, req: &BuildRequest) -> Result<BuildReport, InfraError> {
    let started_at = Utc::now();
    fs_err::create_dir_all(&req.out_dir).map_err(io(&req.out_dir))?;
    let log_path = req.out_dir.join(LOG_NAME);
    let mut log =
        BuildLog::create(&log_path, env.settings.max_log_bytes, req.echo).map_err(io(&log_path))?;
    let image = image::for_build(&env.docker, &req.distro).await?;
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
        "job {} on {}: {} (image {})",
        req.job_id, env.worker_name, image.tag, image.id
    ));

    let work = env.scratch.join(&req.job_id);
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
            let base = rootfs::base_root(&env.docker, &image.id, &env.roots).await?;
            let root_dir = env.scratch.join(format!("{}-root", req.job_id));
            let root = match BuildRoot::mount(&base, &root_dir, &env.settings.tmpfs_size) {
                Ok(root) => Some(root),
                Err(why) => {
                    log.note(&format!(
                        "no overlay build root ({why}); using the image's own root"
                    ));
                    None
                }
            };
            timings.push(("root", t.elapsed().as_secs_f64()));
            let spec = SandboxSpec {
                image: image.id.clone(),
                job_id: req.job_id.clone(),
                owner: env.owner.clone(),
                tmpfs_size: env.settings.tmpfs_size.clone(),
                tmp_size: env.settings.tmp_size.clone(),
                // Checked when the configuration was read.
                memory_bytes: size_bytes(&env.settings.memory).unwrap_or(u64::MAX),
                read_only_binds: dep_mount(req, image.family)
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
                        in_container(env, req, &sandbox, p, &mut log, &mut timings).await
                    }
                    Prepared::Rpm(p) => {
                        crate::rpm_build::in_container(
                            env,
                            req,
                            &sandbox,
                            p,
                            &mut log,
                            &mut timings,
                        )
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

/// Lays out the build's input under `work` on a blocking thread (git and the archives block).
/// Broken sources are the inner error (the build fails at step `source`); git running out of
/// time says nothing about the sources and is the outer one, so that the job is tried again.
async fn prepare_sources(
    env: &BuildEnv,
    req: &BuildRequest,
    family: Family,
    work: &Path,
) -> Result<Result<Prepared, SourceError>, InfraError> {
    let (input, distro, git, settings, dir) = (
        req.input.clone(),
        req.distro.clone(),
        env.git.clone(),
        env.settings.clone(),
        work.to_owned(),
    );
    let prepared = tokio::task::spawn_blocking(move || match family {
        Family::Deb => source::prepare(&input, &distro, &git, &settings, &dir).map(Prepared::Deb),
        Family::Rpm => rpm_source::prepare(&input, &git, &settings, &dir).map(Prepared::Rpm),
    })
    .await
    .expect("preparing the sources does not panic");
    match prepared {
        // The farm could not get them now (their host unreachable or too slow, a full disk):
        // the job is tried again later, and nothing is said about the change.
        Err(e) if e.is_transient() => Err(InfraError::Source(e)),
        other => Ok(other),
    }
}

/// What a successful build made.
pub(crate) struct Built {
    pub artifacts: Vec<Artifact>,
    /// The version of the built package, as its family writes it.
    pub version: String,
}

/// Where the dependency repositories are seen inside the build container.
pub(crate) struct DepMount {
    /// (host directory, container directory), read-only.
    bind: (String, String),
    /// (tree inside the container, suite) of each repository that exists.
    pub repos: Vec<(String, String)>,
}

/// Where the container sees the directory holding the customer's public trees.
const RELEASES_INSIDE: &str = "/srv/releases";

/// The customer's directory is mounted read-only, not each tree alone: a tree is a link to its
/// current generation, and a generation's package files link to the pool beside the
/// generations. A snapshot (`<customer>/.<version>.gen/<N>`) and a review tree
/// (`<customer>/review/<name>`) are seen below the same mount.
fn dep_mount(req: &BuildRequest, family: Family) -> Option<DepMount> {
    let present: Vec<&DepRepo> = req
        .dep_repos
        .iter()
        .filter(|r| has_repo(&r.tree, family, &r.suite))
        .collect();
    let parent = present.first()?.tree.parent()?;
    let parent_name = parent.file_name()?.to_str()?;
    let snapshot = parent_name.starts_with('.') && parent_name.ends_with(".gen");
    let customer_dir = if snapshot || parent_name == "review" {
        parent.parent()?
    } else {
        parent
    };
    let repos = present
        .iter()
        .filter_map(|r| {
            let rel = r.tree.strip_prefix(customer_dir).ok()?;
            Some((
                format!("{RELEASES_INSIDE}/{}", rel.display()),
                r.suite.clone(),
            ))
        })
        .collect();
    Some(DepMount {
        bind: (
            customer_dir.display().to_string(),
            RELEASES_INSIDE.to_owned(),
        ),
        repos,
    })
}

fn has_repo(tree: &Path, family: Family, suite: &str) -> bool {
    if !tree.join("KEY.asc").is_file() {
        return false;
    }
    match family {
        Family::Deb => tree
            .join("deb/dists")
            .join(suite)
            .join("InRelease")
            .is_file(),
        Family::Rpm => fs_err::read_dir(tree.join("rpm").join(suite))
            .map(|arches| {
                arches
                    .filter_map(Result::ok)
                    .any(|a| a.path().join("repodata/repomd.xml").is_file())
            })
            .unwrap_or(false),
    }
}

pub(crate) enum Step {
    Failed(Failure),
    Infra(InfraError),
}

impl Step {
    /// The build failed at `step`; the reason comes from the log, else `fallback`.
    pub(crate) fn failed(step: &'static str, log: &BuildLog, fallback: &str) -> Self {
        Step::Failed(fail(step, reason_from(log, fallback)))
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Step::Infra(io(path)(e))
    }
}

impl From<SandboxError> for Step {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::LogFull(full) => Step::Failed(fail("log-limit", full.to_string())),
            too_large @ SandboxError::TooLarge { .. } => {
                Step::Failed(fail("limit", too_large.to_string()))
            }
            other => Step::Infra(other.into()),
        }
    }
}

/// The last lines of the log that say what went wrong.
fn reason_from(log: &BuildLog, fallback: &str) -> String {
    let tail = log.tail(40);
    let wanted: Vec<&str> = tail
        .lines()
        .filter(|l| {
            l.starts_with("E: ")
                || l.contains("but it is not installable")
                || l.contains("but it is not going to be installed")
                || l.contains("Unmet build dependencies")
                || l.contains("syntax error")
                || l.contains("error:")
                || l.starts_with("dpkg-buildpackage: error")
                || l.starts_with("make: ***")
                || l.starts_with("dpkg-source: error")
                || l.starts_with("Error: ")
                || l.starts_with("No matching package to install")
                || l.contains("nothing provides")
                || l.contains("is needed by")
                || l.starts_with("[perestroika] Source0")
        })
        .collect();
    if wanted.is_empty() {
        fallback.to_owned()
    } else {
        wanted.join("\n")
    }
}

/// Sends the prepared `in/` directory into the container's /build and hands it to the builder.
pub(crate) async fn send_input(
    sandbox: &Sandbox,
    dir: &Path,
    log: &mut BuildLog,
) -> Result<(), Step> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all("in", dir).map_err(Step::io(dir))?;
    let input = builder.into_inner().map_err(Step::io(dir))?;
    let code = sandbox
        .exec(As::Root, &["sh", "-c", UNPACK], &[], Some(input), log)
        .await?;
    if code != 0 {
        return Err(Step::failed("unpack", log, "unpacking the sources failed"));
    }
    Ok(())
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

/// Runs a family's dependency script as root with the package cache relay open (closed again
/// before anything else runs), as
/// `deps <distro> <relay's proxy URL or ""> [<tree inside the container> <suite>]…`.
pub(crate) async fn install_deps(
    env: &BuildEnv,
    req: &BuildRequest,
    family: Family,
    sandbox: &Sandbox,
    script: &str,
    log: &mut BuildLog,
) -> Result<(), Step> {
    let repos = dep_mount(req, family).map(|m| m.repos).unwrap_or_default();
    let relay = match &env.package_cache {
        Some(cache) => Some(sandbox.relay(cache).await?),
        None => {
            log.note("no package cache (build.package_cache): no network while the build dependencies are installed");
            None
        }
    };
    let proxy = relay.as_ref().map(|r| r.proxy_url()).unwrap_or_default();
    let mut args = vec!["sh", "-c", script, "deps", &req.distro, &proxy];
    for (tree, suite) in &repos {
        args.push(tree);
        args.push(suite);
    }
    let code = sandbox.exec(As::Root, &args, &[], None, log).await;
    // Closed before anything else of the build runs.
    drop(relay);
    let code = code?;
    if code != 0 {
        return Err(Step::failed(
            "build-deps",
            log,
            "the build dependencies could not be installed",
        ));
    }
    Ok(())
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

/// The deb steps inside the container.
async fn in_container(
    env: &BuildEnv,
    req: &BuildRequest,
    sandbox: &Sandbox,
    prepared: &PreparedSource,
    log: &mut BuildLog,
    timings: &mut Vec<(&'static str, f64)>,
) -> Result<Built, Step> {
    let t = Instant::now();
    send_input(sandbox, &prepared.dir, log).await?;
    let dsc = prepared.dsc.as_deref().unwrap_or("");
    let code = sandbox
        .exec(
            As::Builder,
            &["sh", "-c", PREPARE, "prepare", prepared.layout, dsc],
            &[],
            None,
            log,
        )
        .await?;
    if code != 0 {
        let step = if code == 3 { "control" } else { "unpack" };
        return Err(Step::failed(step, log, "preparing the source tree failed"));
    }
    timings.push(("unpack", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    install_deps(env, req, Family::Deb, sandbox, DEPS, log).await?;
    timings.push(("build-deps", t.elapsed().as_secs_f64()));
    let root_list = record_build_root(
        sandbox,
        &[
            "dpkg-query",
            "-W",
            "-f=${Package} ${Version} ${Architecture}\\n",
        ],
        &req.out_dir,
        log,
    )
    .await?;

    let artifacts = build_offline(
        sandbox,
        Offline {
            build: &["sh", "-c", BUILD, "build", prepared.build_type],
            env: &[],
            step: "dpkg-buildpackage",
            collect: &["sh", "-c", COLLECT],
            out_dir: &req.out_dir,
            root_list: &root_list,
        },
        &env.settings,
        log,
        timings,
    )
    .await?;
    Ok(Built {
        artifacts,
        version: prepared.version.clone(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use perestroika_protocol::messages::{GitSource, Sources};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A git server that accepts connections and never answers costs one
    /// `build.git_timeout_secs`, without holding up the runtime meanwhile, and comes back as the
    /// farm's error (the job is returned and tried again), not as a build failed at `source`.
    #[tokio::test(flavor = "current_thread")]
    async fn a_git_server_that_never_answers_is_retried_not_failed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                held.push(conn);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let settings = BuildSettings {
            git_timeout_secs: 2,
            ..BuildSettings::default()
        };
        let env = BuildEnv {
            docker: Docker::connect_with_local_defaults().unwrap(),
            git: GitCache::new(&dir.path().join("git"), settings.git_deadline()),
            scratch: dir.path().join("scratch"),
            roots: dir.path().join("roots"),
            owner: "test".into(),
            worker_name: "test".into(),
            timeout: Duration::from_secs(60),
            settings,
            package_cache: None,
        };
        let repo = GitSource {
            project: "acme/packages/deb/bookworm/greet".into(),
            url: format!("http://127.0.0.1:{port}/acme/packages/deb/bookworm/greet"),
            branch: "9.0".into(),
            commit: "1".repeat(40),
            fetch_ref: None,
        };
        let req = BuildRequest {
            job_id: "hung-git".into(),
            input: SourceInput::Git {
                sources: Box::new(Sources::Combined { repo }),
                rebuild: 0,
                review: false,
            },
            distro: "bookworm".into(),
            family: None,
            dep_repos: Vec::new(),
            out_dir: dir.path().join("out"),
            echo: false,
        };
        let ticks = Arc::new(AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let started = Instant::now();
        let work = env.scratch.join(&req.job_id);
        let outcome = prepare_sources(&env, &req, Family::Deb, &work).await;
        let took = started.elapsed();
        ticker.abort();
        let err = match outcome {
            Err(e @ InfraError::Source(_)) => e,
            Err(e) => panic!("another farm error: {e}"),
            Ok(Err(e)) => panic!("a git timeout failed the build at step source: {e}"),
            Ok(Ok(_)) => panic!("a server that never answers gave sources"),
        };
        let text = err.to_string();
        assert!(
            text.contains("build.git_timeout_secs") && text.contains("git clone"),
            "{text}"
        );
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(8),
            "took {took:?}"
        );
        // The runtime went on while git waited (a blocked runtime would not have ticked).
        assert!(ticks.load(Ordering::Relaxed) >= 10, "{ticks:?}");
        // The abandoned clone left nothing behind but the mirror's lock and use stamp.
        let left: Vec<_> = fs_err::read_dir(dir.path().join("git"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| {
                let n = n.to_string_lossy();
                !n.ends_with(".lock") && !n.ends_with(".used")
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
