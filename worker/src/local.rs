//! A build asked for on the command line (`perestroika-worker build`), without any queue: a
//! source tree, a `.dsc`, a `.src.rpm`, or git commits, built on this host the way the farm
//! builds it.

use std::path::PathBuf;
use std::time::Duration;

use perestroika_config::names::NameError;
use perestroika_config::settings::BuildSettings;
use perestroika_protocol::messages::{GitSource, Sources};

use crate::build::{self, BuildReport};
use crate::container::SandboxError;
use crate::source::SourceInput;
use crate::steps::{BuildEnv, BuildRequest, DepRepo, InfraError};

/// What the command line asks to build.
#[derive(Debug, Clone)]
pub struct LocalBuild {
    /// Distro of the base image.
    pub distro: String,
    /// A source tree, a .dsc or a .src.rpm; `None` with `git`.
    pub source: Option<PathBuf>,
    /// The repository and commit of the code (and the packaging, without `packaging`).
    pub git: Option<GitCommit>,
    /// The repository and commit of the packaging, when it is apart from the code.
    pub packaging: Option<GitCommit>,
    /// A release's public tree whose repository of the distro provides build dependencies.
    pub release: Option<PathBuf>,
    /// A release's tree as a mirror serves it (`http://host:port/<customer>/<version>`) and
    /// the armored keys its repository must be signed with: read as in farm mode with
    /// `[public] url`.
    pub release_url: Option<(String, Vec<PathBuf>)>,
    /// Rebuild number (raises the revision of git builds).
    pub rebuild: u32,
    /// Where the artifacts, build log and result.json go.
    pub out: PathBuf,
    /// Proxy for build dependencies; `None` takes the configuration's.
    pub package_cache: Option<String>,
    /// Seconds the build may take; `None` takes the configuration's.
    pub timeout_secs: Option<u64>,
    /// Copy the build log to stdout.
    pub echo: bool,
}

/// A git repository at a commit, as the command line names it.
#[derive(Debug, Clone)]
pub struct GitCommit {
    pub url: String,
    pub commit: String,
}

/// A build on the command line could not be run.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{path}: expected a source directory, a .dsc or a .src.rpm", path = .0.display())]
    NotASource(PathBuf),
    #[error("give either a source (directory, .dsc or .src.rpm) or --git with --commit")]
    NoInput,
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Env(#[from] SandboxError),
    #[error(transparent)]
    Infra(#[from] InfraError),
    #[error("--release-url {0}: expected http://host[:port]/[path/]<customer>/<version>")]
    ReleaseUrl(String),
    #[error("the release's repository is refused, nothing was built: {0}")]
    Published(#[from] perestroika_published::ReadError),
}

impl LocalError {
    /// Whether the command line is at fault (exit code 2), not the build or the host.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            LocalError::NotASource(_)
                | LocalError::NoInput
                | LocalError::Name(_)
                | LocalError::ReleaseUrl(_)
        )
    }
}

impl GitCommit {
    fn source(&self) -> Result<GitSource, NameError> {
        perestroika_config::names::check_commit(&self.commit)?;
        Ok(GitSource {
            project: "local".into(),
            url: self.url.clone(),
            branch: "local".into(),
            commit: self.commit.clone(),
            fetch_ref: None,
        })
    }
}

impl LocalBuild {
    /// What the build starts from, or what is wrong with the command line.
    fn input(&self) -> Result<SourceInput, LocalError> {
        Ok(match (&self.source, &self.git) {
            (Some(path), None) if path.extension().is_some_and(|e| e == "dsc") => {
                SourceInput::Dsc(path.clone())
            }
            (Some(path), None) if path.to_string_lossy().ends_with(".src.rpm") => {
                SourceInput::Srpm(path.clone())
            }
            (Some(path), None) if path.is_dir() => SourceInput::Dir(path.clone()),
            (Some(path), None) => return Err(LocalError::NotASource(path.clone())),
            (None, Some(code)) => {
                let code = code.source()?;
                let sources = match &self.packaging {
                    Some(packaging) => Sources::Split {
                        code,
                        packaging: packaging.source()?,
                    },
                    None => Sources::Combined { repo: code },
                };
                SourceInput::Git {
                    sources: Box::new(sources),
                    rebuild: self.rebuild,
                    review: false,
                }
            }
            _ => return Err(LocalError::NoInput),
        })
    }

    /// Builds it with `settings` (the configuration's `[build]`, or the defaults). A failed
    /// build is the report's outcome; only what kept it from running is an error.
    pub async fn run(&self, settings: &BuildSettings) -> Result<BuildReport, LocalError> {
        let input = self.input()?;
        perestroika_config::names::check_token("distro", &self.distro)?;
        let cache = self
            .package_cache
            .clone()
            .or(settings.package_cache.clone());
        let timeout = Duration::from_secs(self.timeout_secs.unwrap_or(settings.timeout_secs));
        let env = BuildEnv::local(settings, cache.as_deref(), timeout)?;
        let job_id = format!(
            "local-{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        );
        let mut dep_repos: Vec<DepRepo> = self
            .release
            .iter()
            .map(|tree| DepRepo::new(tree, &self.distro))
            .collect();
        let copies = crate::steps::remote::copies_dir(&env.scratch, &job_id);
        if let Some((url, keys)) = &self.release_url {
            let (base, tree) = split_release_url(url)?;
            let reader = perestroika_published::Reader::new(
                perestroika_published::Source::Http(base),
                keys,
                &[],
                Duration::from_secs(60),
            )?;
            let _ = fs_err::remove_dir_all(&copies);
            let wanted = [(tree, self.distro.clone())];
            let cache = env.scratch.join("published-cache");
            // Whichever of the two the tree has for the distro (the image tells the family).
            let mut copied = crate::steps::remote::copy_deb_suites(
                &reader,
                &wanted,
                &copies,
                &cache,
                crate::steps::remote::Contents::Binaries,
            )
            .await;
            if let Ok(deb) = &mut copied {
                let arch = std::env::consts::ARCH;
                match crate::steps::remote::copy_rpm_repos(&reader, &wanted, arch, &copies, &cache)
                    .await
                {
                    Ok(rpm) => deb.extend(rpm),
                    Err(e) => copied = Err(e),
                }
            }
            if copied.is_err() {
                let _ = fs_err::remove_dir_all(&copies);
            }
            dep_repos.extend(copied?);
        }
        let req = BuildRequest {
            job_id,
            input,
            distro: self.distro.clone(),
            family: None,
            dep_repos,
            base_digest: None,
            out_dir: self.out.clone(),
            echo: self.echo,
        };
        let report = build::run(&env, &req).await;
        let _ = fs_err::remove_dir_all(&copies);
        Ok(report?)
    }
}

/// `http://host:port/prefix/<customer>/<version>` as the public root's URL and the tree.
fn split_release_url(url: &str) -> Result<(perestroika_published::BaseUrl, String), LocalError> {
    let bad = || LocalError::ReleaseUrl(url.to_owned());
    let trimmed = url.trim_end_matches('/');
    let (rest, version) = trimmed.rsplit_once('/').ok_or_else(bad)?;
    let (base, customer) = rest.rsplit_once('/').ok_or_else(bad)?;
    if !base.contains("://") || base.ends_with(':') || base.ends_with('/') {
        return Err(bad());
    }
    let tree = perestroika_tree::TreeName::parse(&format!("{customer}/{version}"))
        .map_err(|_| bad())?
        .to_string();
    let base = perestroika_published::BaseUrl::parse(&format!("{base}/")).map_err(|_| bad())?;
    Ok((base, tree))
}
