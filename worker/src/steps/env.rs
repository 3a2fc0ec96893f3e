//! How builds run on this worker: the Docker engine, the git mirrors, scratch space, exported
//! roots, limits and the package cache, for farm mode and for builds on the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use perestroika_config::settings::BuildSettings;
use perestroika_config::FarmConfig;
use perestroika_protocol::broker::hostname;

use crate::container::relay::{cache_address, RelayError};
use crate::container::SandboxError;
use crate::image::Registry;
use crate::source::git::GitCache;

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
    /// reaches, while its dependencies are installed (see [`crate::container::relay`]).
    pub package_cache: Option<String>,
    /// The registry base images come from (`[images] registry`); `None`: this host's own.
    pub registry: Option<Arc<Registry>>,
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
        let docker = crate::container::connect()?;
        let package_cache = package_cache.map(cache_address).transpose()?;
        let host = hostname();
        Ok(Self {
            docker,
            git: GitCache::new(&cache_dir().join("git"), settings.git_deadline()),
            scratch: std::env::temp_dir().join("perestroika-worker"),
            roots: cache_dir().join(ROOTS),
            owner: format!("local@{host}"),
            worker_name: host,
            timeout,
            settings: settings.clone(),
            package_cache,
            registry: None,
        })
    }

    /// Takes base images from the registry of `farm`'s `[images]`, if one is configured,
    /// keeping what it resolves in the worker's state.
    pub fn with_registry_of(mut self, farm: &FarmConfig) -> Self {
        self.registry = Registry::configured(&farm.images, &farm_state(farm)).map(Arc::new);
        self
    }

    /// How builds run in farm mode: git mirrors, scratch space and exported roots under the
    /// worker's directory of the farm's state ([`farm_state`]), containers labelled `owner`.
    pub fn farm(farm: &FarmConfig, docker: Docker, owner: String) -> Result<Self, RelayError> {
        let state = farm_state(farm);
        let package_cache = farm
            .build
            .package_cache
            .as_deref()
            .map(cache_address)
            .transpose()?;
        Ok(Self {
            docker,
            git: GitCache::new(&state.join("git"), farm.build.git_deadline()),
            scratch: state.join("scratch"),
            roots: state.join(ROOTS),
            owner,
            worker_name: hostname(),
            timeout: Duration::from_secs(farm.build.timeout_secs),
            settings: farm.build.clone(),
            package_cache,
            registry: None,
        }
        .with_registry_of(farm))
    }
}

/// The directory of exported roots, below the user's cache or the worker's state.
const ROOTS: &str = "roots";

/// The worker's own directory in the farm's state (`<state>/worker`): git mirrors, scratch
/// space and exported roots of farm mode.
pub fn farm_state(farm: &FarmConfig) -> PathBuf {
    farm.paths.state.join("worker")
}

/// Every directory of exported roots on this host: the user's cache, and with a
/// configuration the farm's state too.
pub fn root_dirs(farm: Option<&FarmConfig>) -> Vec<PathBuf> {
    let mut dirs = vec![cache_dir().join(ROOTS)];
    dirs.extend(farm.map(|f| farm_state(f).join(ROOTS)));
    dirs
}

/// The user's cache directory for the worker (`$XDG_CACHE_HOME/perestroika`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("perestroika")
}
