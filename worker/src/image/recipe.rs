//! How a base image is made: a Debian root, an rpm root from a Debian one, or an rpm distro's
//! own root from its repositories.

use perestroika_config::settings::RpmRoot;
use perestroika_config::Family;
use perestroika_host::cli::UsageError;

/// How a base image is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// A Debian root of that codename (mmdebstrap, buildd variant).
    Deb,
    /// An rpm build root made from a Debian root of the host's own release, with Debian's rpm,
    /// dnf and createrepo-c: for farms that cannot reach an rpm distribution's mirror.
    RpmOnDebian,
    /// An rpm distro's own root, installed with `dnf --installroot` the way mock does it.
    Rpm(RpmRoot),
}

impl Recipe {
    /// The family the image's builds make.
    pub fn family(&self) -> Family {
        match self {
            Recipe::Deb => Family::Deb,
            Recipe::RpmOnDebian | Recipe::Rpm(_) => Family::Rpm,
        }
    }

    /// The recipe the command line decides: a Debian root without `rpm`, the root `named` with
    /// repositories; `None` when it names none and the configuration decides
    /// ([`Recipe::from_configuration`]).
    pub fn from_command_line(rpm: bool, named: &NamedRoot) -> Result<Option<Self>, RecipeError> {
        if !rpm {
            return Ok(Some(Recipe::Deb));
        }
        if named.repos.is_empty() {
            return Ok(None);
        }
        let releasever = named.releasever.clone().ok_or_else(|| {
            UsageError("--repo needs --releasever (the distro's $releasever)".into())
        })?;
        let mut root: RpmRoot = serde_json::from_value(serde_json::json!({
            "releasever": releasever,
            "repos": named.repos,
            "gpgkeys": named.gpgkeys,
        }))?;
        if !named.packages.is_empty() {
            root.packages = named.packages.clone();
        }
        Ok(Some(Recipe::Rpm(root)))
    }

    /// The recipe of an rpm distro the command line names no repositories for: its root in
    /// the configuration's `rpm_roots`, else an rpm root made from a Debian one.
    pub fn from_configuration(configured: Option<RpmRoot>) -> Self {
        match configured {
            Some(root) => Recipe::Rpm(root),
            None => Recipe::RpmOnDebian,
        }
    }
}

/// An rpm root named on the command line: its repositories, `$releasever`, keys and packages
/// (the configuration's defaults where empty).
#[derive(Debug, Clone, Default)]
pub struct NamedRoot {
    pub releasever: Option<String>,
    pub repos: Vec<String>,
    pub gpgkeys: Vec<String>,
    pub packages: Vec<String>,
}

/// The command line's rpm root cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The operator's to fix (exit code 2).
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Root(#[from] serde_json::Error),
}
