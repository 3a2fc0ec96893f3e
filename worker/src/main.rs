use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use perestroika_config::settings::RpmRoot;
use perestroika_config::FarmConfig;
use perestroika_host::cli::{load_config, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_protocol::broker::hostname;
use perestroika_protocol::messages::{BuildOutcome, GitSource, Sources};
use perestroika_worker::build::{self, cache_dir, BuildEnv, BuildRequest};
use perestroika_worker::git::GitCache;
use perestroika_worker::preflight::preflight;
use perestroika_worker::source::SourceInput;
use perestroika_worker::{image, intake, sandbox};

/// Builds packages from git in a fresh, unprivileged container per build.
#[derive(Parser)]
#[command(name = "perestroika-worker", version)]
struct Cli {
    /// Farm configuration file (optional for `build` and `image`).
    #[arg(long, short, global = true, env = "PERESTROIKA_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and show the queues this part consumes.
    Check,
    /// Build one package here, without any queue: a source tree, a .dsc, a .src.rpm, or git
    /// commits. The distro's image says whether a deb or an rpm is built.
    /// Exits 0 when the build succeeded, 1 when it failed (the log says why).
    Build(BuildArgs),
    /// Consume the build queues of the configuration and build what arrives.
    Run,
    /// Manage the base images builds start from.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Args)]
struct BuildArgs {
    /// Distro of the base image, e.g. bookworm (deb) or el9 (rpm).
    #[arg(long)]
    distro: String,
    /// A source tree (with debian/, or a .spec at its top or in rpm/), a .dsc or a .src.rpm;
    /// omit with --git.
    source: Option<PathBuf>,
    /// Git repository holding the code (and the packaging, unless --packaging-git is given).
    #[arg(long, requires = "commit")]
    git: Option<String>,
    /// Commit of --git to build.
    #[arg(long)]
    commit: Option<String>,
    /// Git repository holding debian/ (or the .spec), when it is apart from the code.
    #[arg(long, requires = "packaging_commit")]
    packaging_git: Option<String>,
    /// Commit of --packaging-git to build.
    #[arg(long)]
    packaging_commit: Option<String>,
    /// A release's public tree (`<public root>/<customer>/<version>`) whose signed repository
    /// of the distro provides build dependencies, as in farm mode.
    #[arg(long, value_name = "DIR")]
    release: Option<PathBuf>,
    /// Rebuild number (raises the revision of git builds).
    #[arg(long, default_value_t = 0)]
    rebuild: u32,
    /// Where the artifacts, build log and result.json go.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Proxy for build dependencies (apt's, or dnf's), e.g. http://127.0.0.1:3142 (default:
    /// the configuration's build.package_cache).
    #[arg(long)]
    package_cache: Option<String>,
    /// Stop the build after this many seconds (default: the configuration's, or 3 hours).
    #[arg(long)]
    timeout: Option<u64>,
    /// Do not copy the build log to stdout.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Bootstrap a base root and import it into Docker: a Debian root with mmdebstrap, or with
    /// --rpm an rpm build root (dnf --installroot from the distro's repositories, or a Debian
    /// root with Debian's rpm and dnf when the distro has no repositories configured).
    Build(ImageArgs),
    /// Make a new base image only if the distro changed since the newest one (run daily).
    Refresh(ImageArgs),
    /// List base images, newest first.
    List,
    /// Remove all but the newest images of each distro (images in use are kept).
    Prune {
        #[arg(long, default_value_t = 3)]
        keep: usize,
        /// Only this distro's images.
        #[arg(long)]
        distro: Option<String>,
    },
}

#[derive(Args)]
struct ImageArgs {
    #[arg(long)]
    distro: String,
    /// An rpm build root rather than a Debian one.
    #[arg(long)]
    rpm: bool,
    /// With --rpm: a repository to bootstrap from (repeatable; default: the configuration's
    /// rpm_roots.<distro>.repos).
    #[arg(long = "repo", requires = "rpm", value_name = "URL")]
    repos: Vec<String>,
    /// With --repo: the distro's $releasever.
    #[arg(long, requires = "repos")]
    releasever: Option<String>,
    /// With --repo: a key the repositories are signed with (repeatable).
    #[arg(long = "gpgkey", requires = "repos", value_name = "URL")]
    gpgkeys: Vec<String>,
    /// With --repo: a package of the root (repeatable; default: mock's buildsys-build set).
    #[arg(long = "package", requires = "repos", value_name = "NAME")]
    packages: Vec<String>,
}

/// How the image of `args.distro` is made: the command line's repositories, else the
/// configuration's `rpm_roots`, else a Debian root (with rpm tools for --rpm).
fn recipe(cli_config: &Option<PathBuf>, args: &ImageArgs) -> anyhow::Result<image::Recipe> {
    if !args.rpm {
        return Ok(image::Recipe::Deb);
    }
    if !args.repos.is_empty() {
        let mut root: RpmRoot = serde_json::from_value(serde_json::json!({
            "releasever": args.releasever.clone().ok_or_else(|| {
                UsageError("--repo needs --releasever (the distro's $releasever)".into())
            })?,
            "repos": args.repos,
            "gpgkeys": args.gpgkeys,
        }))?;
        if !args.packages.is_empty() {
            root.packages = args.packages.clone();
        }
        return Ok(image::Recipe::Rpm(root));
    }
    let configured = match cli_config {
        Some(path) => load_config(path)?.rpm_roots.remove(&args.distro),
        None => None,
    };
    Ok(match configured {
        Some(root) => image::Recipe::Rpm(root),
        None => image::Recipe::RpmOnDebian,
    })
}

fn config_path(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

fn git_source(url: &str, commit: &str) -> anyhow::Result<GitSource> {
    perestroika_config::names::check_commit(commit).map_err(|e| UsageError(e.to_string()))?;
    Ok(GitSource {
        project: "local".into(),
        url: url.to_owned(),
        branch: "local".into(),
        commit: commit.to_owned(),
        fetch_ref: None,
    })
}

async fn local_build(cli_config: &Option<PathBuf>, args: BuildArgs) -> anyhow::Result<()> {
    let farm = match cli_config {
        Some(path) => Some(load_config(path)?),
        None => None,
    };
    let settings = farm.as_ref().map(|f| f.build.clone()).unwrap_or_default();
    let input = match (&args.source, &args.git) {
        (Some(path), None) if path.extension().is_some_and(|e| e == "dsc") => {
            SourceInput::Dsc(path.clone())
        }
        (Some(path), None) if path.to_string_lossy().ends_with(".src.rpm") => {
            SourceInput::Srpm(path.clone())
        }
        (Some(path), None) if path.is_dir() => SourceInput::Dir(path.clone()),
        (Some(path), None) => {
            return Err(UsageError(format!(
                "{}: expected a source directory, a .dsc or a .src.rpm",
                path.display()
            ))
            .into())
        }
        (None, Some(url)) => {
            let code = git_source(url, args.commit.as_deref().unwrap_or_default())?;
            let sources = match (&args.packaging_git, &args.packaging_commit) {
                (Some(purl), Some(pc)) => Sources::Split {
                    code,
                    packaging: git_source(purl, pc)?,
                },
                _ => Sources::Combined { repo: code },
            };
            SourceInput::Git {
                sources: Box::new(sources),
                rebuild: args.rebuild,
                review: false,
            }
        }
        _ => {
            return Err(UsageError(
                "give either a source (directory, .dsc or .src.rpm) or --git with --commit".into(),
            )
            .into())
        }
    };
    perestroika_config::names::check_token("distro", &args.distro)
        .map_err(|e| UsageError(e.to_string()))?;
    let cache = args.package_cache.or(settings.package_cache.clone());
    let timeout = Duration::from_secs(args.timeout.unwrap_or(settings.timeout_secs));
    let env = BuildEnv::local(&settings, cache.as_deref(), timeout)?;
    let job_id = format!(
        "local-{}-{}",
        std::process::id(),
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    let req = BuildRequest {
        job_id,
        input,
        distro: args.distro.clone(),
        family: None,
        dep_repos: args
            .release
            .iter()
            .map(|tree| build::DepRepo::new(tree, &args.distro))
            .collect(),
        out_dir: args.out.clone(),
        echo: !args.quiet,
    };
    let report = build::run(&env, &req).await?;
    let result = report.result;
    match &result.outcome {
        BuildOutcome::Succeeded => {
            eprintln!(
                "built {} in {}:",
                result.package_version.as_deref().unwrap_or("?"),
                args.out.display()
            );
            for a in &result.artifacts {
                eprintln!("  {}  {}", a.sha256, a.name);
            }
            Ok(())
        }
        BuildOutcome::Failed { step, reason } => {
            anyhow::bail!(
                "build failed at step {step}: {reason}\n(full log: {})",
                args.out.join(build::LOG_NAME).display()
            )
        }
    }
}

async fn farm_run(farm: FarmConfig) -> anyhow::Result<()> {
    let docker = sandbox::connect()?;
    // A worker instance is its host plus its state directory: a restarted instance finds its
    // own leftovers, and other workers on the same host keep theirs.
    let instance = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(farm.paths.state.display().to_string().as_bytes())[..6])
    };
    let owner = format!("worker@{}:{instance}", hostname());
    let removed = sandbox::remove_leftovers(&docker, &owner)
        .await
        .context("cleaning up after an earlier run")?;
    let state = farm.paths.state.join("worker");
    perestroika_worker::rootfs::release_leftovers(&state.join("scratch"));
    let _ = fs_err::remove_dir_all(state.join("scratch"));
    perestroika_worker::retention::at_start(&farm, &docker, &state).await;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed leftover build containers of an earlier run"
        );
    }
    let package_cache = farm
        .build
        .package_cache
        .as_deref()
        .map(perestroika_worker::relay::cache_address)
        .transpose()?;
    fs_err::create_dir_all(&farm.paths.staging).context("creating the staging directory")?;
    let env = BuildEnv {
        docker,
        git: GitCache::new(&state.join("git"), farm.build.git_deadline()),
        scratch: state.join("scratch"),
        roots: state.join("roots"),
        owner,
        worker_name: hostname(),
        timeout: Duration::from_secs(farm.build.timeout_secs),
        settings: farm.build.clone(),
        package_cache,
    };
    let (farm, env) = (Arc::new(farm), Arc::new(env));
    tokio::select! {
        _ = intake::run(farm, env.clone()) => Ok(()),
        _ = shutdown_signal() => {
            // Builds in flight are abandoned; their jobs are redelivered. Remove their containers.
            let removed = sandbox::remove_leftovers(&env.docker, &env.owner).await.unwrap_or(0);
            tracing::info!(removed, "stopped; unfinished jobs go back to the queue");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn image_command(
    cli_config: &Option<PathBuf>,
    json: bool,
    cmd: ImageCommand,
) -> anyhow::Result<()> {
    let docker = sandbox::connect()?;
    let scratch = std::env::temp_dir().join("perestroika-images");
    match cmd {
        ImageCommand::Build(args) => {
            let recipe = recipe(cli_config, &args)?;
            let img = image::build(&docker, &args.distro, &recipe, &scratch).await?;
            println!(
                "{} {} ({} packages, builds {})",
                img.tag, img.id, img.package_count, img.family
            );
        }
        ImageCommand::Refresh(args) => {
            match image::refresh(&docker, &args.distro, &recipe(cli_config, &args)?, &scratch)
                .await?
            {
                image::Refresh::Unchanged { image } => {
                    println!("unchanged: {} is current", image.tag)
                }
                image::Refresh::New { image } => println!(
                    "new: {} {} ({} packages)",
                    image.tag, image.id, image.package_count
                ),
            }
        }
        ImageCommand::List => {
            let images = image::list(&docker, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                for i in images {
                    println!(
                        "{:<48} {} {} {:>5} packages  {}",
                        i.tag, i.distro, i.family, i.package_count, &i.id
                    );
                }
            }
        }
        ImageCommand::Prune { keep, distro } => {
            for tag in image::prune(&docker, keep.max(1), distro.as_deref()).await? {
                println!("removed {tag}");
            }
            let live: Vec<String> = image::list(&docker, None)
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect();
            let mut roots = vec![cache_dir().join("roots")];
            if let Some(path) = cli_config {
                roots.push(load_config(path)?.paths.state.join("worker/roots"));
            }
            for dir in roots {
                perestroika_worker::rootfs::prune_roots(&dir, &live);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_main("info", async move {
        match cli.command {
            Command::Check => {
                let farm = load_config(&config_path(&cli.config))?;
                Ok(preflight(&farm).await.print(cli.json)?)
            }
            Command::Build(args) => local_build(&cli.config, args).await,
            Command::Run => {
                let farm = load_config(&config_path(&cli.config))?;
                preflight(&farm).await.demand()?;
                farm_run(farm).await
            }
            Command::Image(cmd) => image_command(&cli.config, cli.json, cmd).await,
        }
    })
}
