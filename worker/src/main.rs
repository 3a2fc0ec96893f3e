use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use perestroika_host::cli::{load_config, run_main, UsageError, DEFAULT_CONFIG};
use perestroika_protocol::messages::BuildOutcome;
use perestroika_worker::build::LOG_NAME;
use perestroika_worker::image::{self, NamedRoot, Recipe};
use perestroika_worker::local::{GitCommit, LocalBuild};
use perestroika_worker::preflight::preflight;
use perestroika_worker::{container, farm, steps};

/// What `--help` says the binary does.
const ABOUT: &str = "Builds packages from git in a fresh, unprivileged container per build. `build` and `image` need no configuration file.";

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
    /// Rebuild every package of a release snapshot from its own source packages, with only
    /// that snapshot (for build dependencies) and the distro's base image, into a scratch
    /// directory; report per package whether it built and whether it is bit-identical to the
    /// published one, and name the build dependencies the release lacks. Runs the builds on
    /// this host (Docker). Exits 0 when every package rebuilt identically, 1 otherwise.
    RebuildRelease(RebuildReleaseArgs),
    /// Print the version the farm's rule gives a build: a deb's full version, or with --rpm
    /// the rpm `Release:`. The same for every distro; scripts call this rather than
    /// recomputing the rule. Needs no configuration file.
    Version(VersionArgs),
}

#[derive(Args)]
struct VersionArgs {
    /// The top `debian/changelog` version (`[epoch:]upstream[-revision]`); unused with --rpm.
    #[arg(default_value = "0")]
    base: String,
    /// Commits of the code (`git rev-list --count`), or of the one repository holding both.
    #[arg(long)]
    code: u64,
    /// Commits of the packaging, when it is a repository of its own.
    #[arg(long)]
    packaging: Option<u64>,
    /// The rebuild number (a review build's patch set).
    #[arg(long, default_value_t = 0)]
    rebuild: u32,
    /// A native package (no revision).
    #[arg(long)]
    native: bool,
    /// A review build.
    #[arg(long)]
    review: bool,
    /// Print the rpm release instead.
    #[arg(long)]
    rpm: bool,
}

impl VersionArgs {
    fn print(&self, json: bool) -> anyhow::Result<()> {
        use perestroika_worker::version::{farm_version, rpm_release, Counts, DebVersion};
        let counts = match self.packaging {
            Some(packaging) => Counts::Split {
                code: self.code,
                packaging,
            },
            None => Counts::Combined(self.code),
        };
        let text = if self.rpm {
            rpm_release(counts, self.rebuild)
        } else {
            let base = DebVersion::parse(&self.base)
                .ok_or_else(|| UsageError(format!("{:?} is not a Debian version", self.base)))?;
            farm_version(&base, self.native, counts, self.rebuild, self.review).to_string()
        };
        if json {
            println!("{}", serde_json::json!({ "version": text }));
        } else {
            println!("{text}");
        }
        Ok(())
    }
}

#[derive(Args)]
struct RebuildReleaseArgs {
    /// The customer (as in `[[customers]] name`, e.g. acme).
    customer: String,
    /// The release series (e.g. 9.0).
    version: String,
    /// The snapshot to rebuild (see `perestroika-publisher snapshot list`); default: live.
    #[arg(long)]
    snapshot: Option<u64>,
    /// Where the rebuilds go (default: <state>/rebuild/<customer>/<version>/<snapshot>).
    #[arg(long)]
    out: Option<PathBuf>,
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
    /// A release's tree as a mirror serves it (`http://host:port/[path/]<customer>/<version>`):
    /// its repository of the distro, verified against --release-key (never the KEY.asc it
    /// serves), provides build dependencies.
    #[arg(
        long,
        value_name = "URL",
        requires = "release_key",
        conflicts_with = "release"
    )]
    release_url: Option<String>,
    /// Armored public key file the --release-url repository must be signed with (repeatable).
    #[arg(long, value_name = "FILE")]
    release_key: Vec<PathBuf>,
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
    /// With `[images] registry`, the newest is the registry's, and a new one is pushed there.
    Refresh(ImageArgs),
    /// Push an image of this host to `[images] registry` as its distro's current base (the
    /// newest of the distro, or --image): workers take it for their next jobs.
    Push {
        #[arg(long)]
        distro: String,
        /// The image to push (a tag or id of a base image of the distro).
        #[arg(long)]
        image: Option<String>,
    },
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

impl BuildArgs {
    fn into_build(self) -> LocalBuild {
        let commit = |url: String, commit: Option<String>| GitCommit {
            url,
            commit: commit.unwrap_or_default(),
        };
        LocalBuild {
            distro: self.distro,
            source: self.source,
            git: self.git.map(|url| commit(url, self.commit)),
            packaging: match (self.packaging_git, self.packaging_commit) {
                (Some(url), Some(c)) => Some(commit(url, Some(c))),
                _ => None,
            },
            release: self.release,
            release_url: self.release_url.map(|url| (url, self.release_key)),
            rebuild: self.rebuild,
            out: self.out,
            package_cache: self.package_cache,
            timeout_secs: self.timeout,
            echo: !self.quiet,
        }
    }
}

/// How the image of `args.distro` is made: the command line's repositories, else the
/// configuration's `rpm_roots`, else a Debian root (with rpm tools for --rpm).
fn recipe(cli_config: &Option<PathBuf>, args: &ImageArgs) -> anyhow::Result<Recipe> {
    let named = NamedRoot {
        releasever: args.releasever.clone(),
        repos: args.repos.clone(),
        gpgkeys: args.gpgkeys.clone(),
        packages: args.packages.clone(),
    };
    // A usage error stays one (exit code 2): it is the error's source.
    if let Some(recipe) = Recipe::from_command_line(args.rpm, &named)? {
        return Ok(recipe);
    }
    let configured = match cli_config {
        Some(path) => load_config(path)?.rpm_roots.remove(&args.distro),
        None => None,
    };
    Ok(Recipe::from_configuration(configured))
}

fn config_path(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

async fn local_build(cli_config: &Option<PathBuf>, args: BuildArgs) -> anyhow::Result<()> {
    let farm = match cli_config {
        Some(path) => Some(load_config(path)?),
        None => None,
    };
    let settings = farm.as_ref().map(|f| f.build.clone()).unwrap_or_default();
    let out = args.out.clone();
    let report = args.into_build().run(&settings).await.map_err(|e| {
        if e.is_usage() {
            UsageError(e.to_string()).into()
        } else {
            anyhow::Error::from(e)
        }
    })?;
    let result = report.result;
    match &result.outcome {
        BuildOutcome::Succeeded => {
            eprintln!(
                "built {} in {}:",
                result.package_version.as_deref().unwrap_or("?"),
                out.display()
            );
            for a in &result.artifacts {
                eprintln!("  {}  {}", a.sha256, a.name);
            }
            Ok(())
        }
        BuildOutcome::Failed { step, reason } => {
            anyhow::bail!(
                "build failed at step {step}: {reason}\n(full log: {})",
                out.join(LOG_NAME).display()
            )
        }
    }
}

async fn image_command(
    cli_config: &Option<PathBuf>,
    json: bool,
    cmd: ImageCommand,
) -> anyhow::Result<()> {
    let docker = container::connect()?;
    let scratch = std::env::temp_dir().join("perestroika-images");
    let farm = match cli_config {
        Some(path) => Some(load_config(path)?),
        None => None,
    };
    let registry = farm
        .as_ref()
        .and_then(|f| image::Registry::configured(&f.images, &steps::farm_state(f)));
    let digest = |i: &image::BaseImage| {
        i.digest
            .as_deref()
            .map(|d| format!(" digest {d}"))
            .unwrap_or_default()
    };
    match cmd {
        ImageCommand::Build(args) => {
            let recipe = recipe(cli_config, &args)?;
            let img =
                image::build(&docker, &args.distro, &recipe, &scratch, registry.as_ref()).await?;
            println!(
                "{} {} ({} packages, builds {}){}",
                img.tag,
                img.id,
                img.package_count,
                img.family,
                digest(&img)
            );
        }
        ImageCommand::Refresh(args) => {
            let recipe = recipe(cli_config, &args)?;
            match image::refresh(&docker, registry.as_ref(), &args.distro, &recipe, &scratch)
                .await?
            {
                image::Refresh::Unchanged { image } => {
                    println!("unchanged: {} is current{}", image.tag, digest(&image))
                }
                image::Refresh::New { image } => println!(
                    "new: {} {} ({} packages){}",
                    image.tag,
                    image.id,
                    image.package_count,
                    digest(&image)
                ),
            }
        }
        ImageCommand::Push { distro, image } => {
            let registry = registry.ok_or_else(|| {
                UsageError("image push needs a configuration with [images] registry".into())
            })?;
            let images = image::list(&docker, Some(&distro)).await?;
            let chosen = match &image {
                None => images.into_iter().next(),
                Some(name) => {
                    let id = docker.inspect_image(name).await.ok().and_then(|i| i.id);
                    images.into_iter().find(|i| Some(&i.id) == id.as_ref())
                }
            }
            .ok_or_else(|| {
                UsageError(format!(
                    "no base image of {distro}{} on this host (see `image list`)",
                    image.map(|i| format!(" named {i}")).unwrap_or_default()
                ))
            })?;
            let pushed = registry.push(&docker, &chosen).await?;
            println!("{} {} pushed as {}", chosen.tag, chosen.id, pushed);
        }
        ImageCommand::List => {
            let images = image::list(&docker, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                for i in images {
                    println!(
                        "{:<48} {} {} {:>5} packages  {}{}",
                        i.tag,
                        i.distro,
                        i.family,
                        i.package_count,
                        &i.id,
                        digest(&i)
                    );
                }
            }
        }
        ImageCommand::Prune { keep, distro } => {
            for tag in image::prune(&docker, keep.max(1), distro.as_deref()).await? {
                println!("removed {tag}");
            }
            image::prune_roots(&docker, &steps::root_dirs(farm.as_ref())).await?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = perestroika_host::cli::Invocation::<Command>::parse_as("perestroika-worker", ABOUT);
    run_main("info", async move {
        match cli.command {
            Command::Check => {
                let farm = load_config(&config_path(&cli.common.config))?;
                Ok(preflight(&farm).await.print(cli.common.json)?)
            }
            Command::Build(args) => local_build(&cli.common.config, args).await,
            Command::Run => {
                let farm = load_config(&config_path(&cli.common.config))?;
                preflight(&farm).await.demand()?;
                Ok(farm::run(farm).await?)
            }
            Command::Version(args) => args.print(cli.common.json),
            Command::Image(cmd) => image_command(&cli.common.config, cli.common.json, cmd).await,
            Command::RebuildRelease(args) => {
                use perestroika_host::cli::known_release;
                use perestroika_worker::rebuild_release::{run, Request};
                let farm = cli.common.load()?;
                let release = known_release(&farm, &args.customer, &args.version)?;
                let request = Request {
                    customer: args.customer,
                    version: args.version,
                    snapshot: args.snapshot,
                    out: args.out,
                };
                Ok(run(&farm, release, request, cli.common.json).await?)
            }
        }
    })
}
