//! The farm configuration: one TOML file plus `PERESTROIKA_<SECTION>__<KEY>` environment overrides.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deadline::Deadline;
use crate::error::{describe, ConfigError};
use crate::mapping::{Mapping, RuleSpec};
use crate::names::{check_customer, check_token, check_version};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "PERESTROIKA";

/// The whole farm configuration, as loaded and validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmConfig {
    /// The file this was loaded from (not part of the file itself).
    #[serde(skip)]
    pub source: PathBuf,
    pub broker: BrokerSettings,
    #[serde(default)]
    pub gerrit: Option<GerritSettings>,
    pub paths: Paths,
    #[serde(default)]
    pub signing: Option<SigningSettings>,
    #[serde(default)]
    pub build: BuildSettings,
    #[serde(default)]
    pub publish: PublishSettings,
    /// Rules that map Gerrit projects and branches to customer, version and package.
    /// When absent, the defaults of [`crate::mapping::default_rules`] apply.
    #[serde(default)]
    pub mapping: Option<Vec<RuleSpec>>,
    pub customers: Vec<Customer>,
    #[serde(default)]
    pub mirrors: Vec<MirrorTarget>,
    /// Limits of the mirror host's http server (`perestroika-mirror serve`).
    #[serde(default)]
    pub serve: ServeSettings,
    /// How the base image of each rpm distro is bootstrapped, by distro name. A distro
    /// without an entry gets a Debian root with Debian's rpm, dnf and createrepo-c.
    #[serde(default)]
    pub rpm_roots: BTreeMap<String, RpmRoot>,
}

/// An rpm distro's build root, installed the way mock does it: `dnf --installroot` from the
/// distro's own repositories at its release version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RpmRoot {
    /// The distro's `$releasever`, e.g. "9".
    pub releasever: String,
    /// Base URLs of the repositories the root comes from (and build dependencies later),
    /// e.g. the BaseOS and AppStream trees of a local mirror.
    pub repos: Vec<String>,
    /// Keys the repositories' packages are signed with (`file://` or `https://` URLs); without
    /// any, package signatures are not checked while bootstrapping.
    #[serde(default)]
    pub gpgkeys: Vec<String>,
    /// Packages of the build root (mock's `buildsys-build` set by default).
    #[serde(default = "default_rpm_root_packages")]
    pub packages: Vec<String>,
}

fn default_rpm_root_packages() -> Vec<String> {
    [
        "bash",
        "bzip2",
        "coreutils",
        "cpio",
        "diffutils",
        "dnf",
        "dnf-plugins-core",
        "findutils",
        "gawk",
        "gcc",
        "gcc-c++",
        "grep",
        "gzip",
        "info",
        "make",
        "patch",
        "redhat-rpm-config",
        "rpm-build",
        "sed",
        "shadow-utils",
        "tar",
        "unzip",
        "util-linux",
        "which",
        "xz",
    ]
    .map(String::from)
    .to_vec()
}

/// How to reach RabbitMQ and how queues behave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// AMQP URL, e.g. `amqp://user:pass@127.0.0.1:5672/%2f`.
    pub url: String,
    /// Deliveries of one message before it is dead-lettered.
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
    /// Longest pause between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
    /// With `amqps://`: PEM file of the certificate authorities the broker's certificate is
    /// checked against, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// With `amqps://`: PEM client certificate to present (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// With `amqps://`: PEM (PKCS#8) private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// RabbitMQ's management API (`http://host:15672`), read with the URL's user: lets
    /// `perestroika-queue queues` show the messages in progress (delivered, not yet
    /// acknowledged), which AMQP does not tell.
    #[serde(default)]
    pub management_url: Option<String>,
}

/// The Gerrit server the reactor listens to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GerritSettings {
    pub host: String,
    #[serde(default = "default_gerrit_port")]
    pub port: u16,
    pub user: String,
    /// Private key for the SSH session.
    pub key_file: PathBuf,
    /// known_hosts file holding the server's host key; an unknown or changed key is refused.
    pub known_hosts: PathBuf,
    /// Base URL that project names are appended to for cloning; defaults to
    /// `ssh://<user>@<host>:<port>`.
    #[serde(default)]
    pub git_url: Option<String>,
    /// A review comment containing this phrase asks for a rebuild.
    #[serde(default = "default_recheck_phrase")]
    pub recheck_phrase: String,
    /// At most this many rechecks of one change are built within `recheck_window_secs`;
    /// more are refused with a review message on the change. 0 turns rechecks off.
    #[serde(default = "default_recheck_limit")]
    pub recheck_limit: u32,
    /// The window of `recheck_limit`, in seconds (by the rechecks' Gerrit times).
    #[serde(default = "default_recheck_window_secs")]
    pub recheck_window_secs: u64,
    /// How far before the last handled event a catch-up query reaches back, in seconds.
    #[serde(default = "default_catchup_margin_secs")]
    pub catchup_margin_secs: u64,
    /// Seconds between SSH keepalives; a session missing three is considered dead.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// How long one command over the session (`gerrit review`, `gerrit query`, the ref
    /// advertisement of `git-upload-pack`) may take, in seconds; one that takes longer is
    /// abandoned and tried again later.
    #[serde(default = "default_ssh_command_timeout_secs")]
    pub command_timeout_secs: u64,
    /// How long a branch update (`ref-updated`) waits for the `change-merged` of the submit
    /// that made it, in milliseconds, so that one submit is one build that reports to its
    /// change; a branch update without a change (a direct push) is built after this wait.
    #[serde(default = "default_submit_wait_ms")]
    pub submit_wait_ms: u64,
    /// Report each build's outcome on its change with `gerrit review`.
    #[serde(default = "default_true")]
    pub feedback: bool,
    /// Vote on this label (`--label NAME=±1`) instead of `--verified ±1`.
    #[serde(default)]
    pub vote_label: Option<String>,
    /// Base URL of the public tree for the links in feedback; defaults to the first mirror's
    /// `http_url`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl GerritSettings {
    /// The limit of one SSH command (`gerrit.command_timeout_secs`).
    pub fn command_deadline(&self) -> Deadline {
        Deadline::new(
            Duration::from_secs(self.command_timeout_secs),
            "gerrit.command_timeout_secs",
        )
    }

    /// The URL a project is cloned from.
    pub fn clone_url(&self, project: &str) -> String {
        let base = self
            .git_url
            .clone()
            .unwrap_or_else(|| format!("ssh://{}@{}:{}", self.user, self.host, self.port));
        format!("{}/{}", base.trim_end_matches('/'), project)
    }
}

/// Where the farm keeps its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// The public tree: what the publisher switches live and mirrors copy.
    pub public_root: PathBuf,
    /// Where workers leave each job's artifacts (`<staging>/<job id>/`) for the publisher.
    pub staging: PathBuf,
    /// Private state of each daemon (keyring, repositories being built, reactor position).
    pub state: PathBuf,
    /// Free space, in bytes, below which a part takes no more work on a filesystem it writes
    /// (see `perestroika_host::disk::low_space`): the worker takes no job while staging's or its state's
    /// filesystem has less, the publisher lets publish jobs wait while the public tree's or its
    /// state's has less. 0 turns the check off.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
}

fn default_min_free_bytes() -> u64 {
    2 << 30
}

/// The operator's signing key: the publisher signs with it; `perestroika-mirror verify`
/// accepts only signatures by these fingerprints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    /// ASCII-armored secret key to import with `perestroika-publisher key import`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Fingerprint of the key that signs (40 hex digits); the publisher refuses to start without it.
    pub fingerprint: String,
    /// Further keys that sign alongside, for a key rotation.
    #[serde(default)]
    pub also_sign_with: Vec<String>,
    /// File holding the key's passphrase, if it has one.
    #[serde(default)]
    pub passphrase_file: Option<PathBuf>,
    /// The key review and topic repositories are signed with, in the same keyring: a client
    /// trusting the release's key refuses them. Unset, they are signed with the release's key
    /// (and can be passed off as the release by whoever serves them).
    #[serde(default)]
    pub review_fingerprint: Option<String>,
}

impl SigningSettings {
    /// The review key's fingerprint as gpg prints it, if one is configured.
    pub fn review(&self) -> Option<String> {
        self.review_fingerprint
            .as_deref()
            .map(|f| fingerprint(f).unwrap_or_else(|_| f.to_owned()))
    }

    /// The pinned fingerprints, as gpg prints them: the signing key first, then
    /// `also_sign_with`.
    pub fn pinned(&self) -> Vec<String> {
        std::iter::once(&self.fingerprint)
            .chain(&self.also_sign_with)
            .map(|f| fingerprint(f).unwrap_or_else(|_| f.clone()))
            .collect()
    }
}

/// An OpenPGP fingerprint (40 hex digits; spaces allowed) as gpg prints it: upper case, no
/// spaces. The error says what was expected.
pub fn fingerprint(text: &str) -> Result<String, String> {
    let fpr: String = text.chars().filter(|c| *c != ' ').collect();
    if fpr.len() != 40 || !fpr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected a 40-hex-digit OpenPGP fingerprint, found {text:?}"
        ));
    }
    Ok(fpr.to_ascii_uppercase())
}

/// Limits and resources of builds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSettings {
    /// A build running longer is stopped and reported, in seconds.
    #[serde(default = "default_build_timeout_secs")]
    pub timeout_secs: u64,
    /// A build log growing beyond this is cut and the build stopped.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: u64,
    /// Builds one worker runs at once.
    #[serde(default = "default_slots")]
    pub slots: u16,
    /// URL of the upstream package cache builds fetch through (apt-cacher-ng), if any.
    #[serde(default)]
    pub package_cache: Option<String>,
    /// Size of the tmpfs that holds a build's tree (it counts against memory), e.g. "8g".
    #[serde(default = "default_tmpfs_size")]
    pub tmpfs_size: String,
    /// Size of a build's `/tmp` (a tmpfs, counted against memory), e.g. "2g".
    #[serde(default = "default_tmp_size")]
    pub tmp_size: String,
    /// Memory a build container may use, its tmpfs contents included, e.g. "12g".
    #[serde(default = "default_memory")]
    pub memory: String,
    /// The sources of one build (each repository's `git archive`) may not exceed this.
    #[serde(default = "default_max_source_bytes")]
    pub max_source_bytes: u64,
    /// What one build leaves as its results may not exceed this in all.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: u64,
    /// Nor this many files.
    #[serde(default = "default_max_results")]
    pub max_results: u32,
    /// How long one git command fetching or reading a build's sources (clone, fetch,
    /// archive) may take, in seconds; one that takes longer is killed and the job is tried
    /// again later (it does not fail the build).
    #[serde(default = "default_git_timeout_secs")]
    pub git_timeout_secs: u64,
    /// A repository of the worker's git cache not used for this many days is removed when the
    /// worker starts (it is cloned again when a build needs it). 0 keeps them all.
    #[serde(default = "default_git_cache_days")]
    pub git_cache_days: u32,
}

fn default_git_cache_days() -> u32 {
    30
}

impl BuildSettings {
    /// The limit of one git command (`build.git_timeout_secs`).
    pub fn git_deadline(&self) -> Deadline {
        Deadline::new(
            Duration::from_secs(self.git_timeout_secs),
            "build.git_timeout_secs",
        )
    }
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            timeout_secs: default_build_timeout_secs(),
            max_log_bytes: default_max_log_bytes(),
            slots: default_slots(),
            package_cache: None,
            tmpfs_size: default_tmpfs_size(),
            tmp_size: default_tmp_size(),
            memory: default_memory(),
            max_source_bytes: default_max_source_bytes(),
            max_result_bytes: default_max_result_bytes(),
            max_results: default_max_results(),
            git_timeout_secs: default_git_timeout_secs(),
            git_cache_days: default_git_cache_days(),
        }
    }
}

/// How the publisher lays out and keeps repositories.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Suites beside the release's own, e.g. `<distro>-proposed`.
    #[serde(default = "default_suites")]
    pub suites: Vec<String>,
    /// Previous states whose index files stay reachable (by-hash) after a switch.
    #[serde(default = "default_keep_generations")]
    pub keep_generations: u32,
    /// Snapshots (generations) of each tree kept after a publish, the live one included;
    /// older ones are removed unless marked shipped (`perestroika-publisher snapshot keep`).
    /// 0 keeps every snapshot. Otherwise more than `keep_generations`.
    #[serde(default)]
    pub keep_snapshots: u32,
    /// The suite merges of a release in maintenance publish into (one of `suites`).
    #[serde(default = "default_proposed")]
    pub proposed: String,
    /// How long a release's signed deb indexes are valid (`Valid-Until`), in seconds; the
    /// publisher signs them again when less than half of it is left. 0: no `Valid-Until`.
    #[serde(default = "default_valid_for_secs")]
    pub valid_for_secs: u64,
    /// How long one tool the publisher runs (reprepro, createrepo_c, rpmsign, dpkg-deb, a
    /// gpgme signature) may take, in seconds; one that takes longer is killed and the job is
    /// returned to its queue for another try.
    #[serde(default = "default_publish_command_timeout_secs")]
    pub command_timeout_secs: u64,
}

impl PublishSettings {
    /// The limit of one publisher tool (`publish.command_timeout_secs`).
    pub fn command_deadline(&self) -> Deadline {
        Deadline::new(
            Duration::from_secs(self.command_timeout_secs),
            "publish.command_timeout_secs",
        )
    }
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            suites: default_suites(),
            keep_generations: default_keep_generations(),
            keep_snapshots: 0,
            proposed: default_proposed(),
            valid_for_secs: default_valid_for_secs(),
            command_timeout_secs: default_publish_command_timeout_secs(),
        }
    }
}

fn default_publish_command_timeout_secs() -> u64 {
    600
}

fn default_valid_for_secs() -> u64 {
    7 * 24 * 3600
}

fn default_proposed() -> String {
    "proposed".into()
}

/// A tenant of the farm.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: String,
    pub versions: Vec<Release>,
    /// This customer's review and topic repositories are signed with this key rather than
    /// `[signing] review_fingerprint`.
    #[serde(default)]
    pub review_fingerprint: Option<String>,
}

/// A release series of one customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The version, e.g. `9.0`.
    pub name: String,
    #[serde(default)]
    pub state: ReleaseState,
    /// Debian-family distros this release is built for, e.g. `bookworm`.
    #[serde(default)]
    pub deb: Vec<String>,
    /// rpm-family distros this release is built for, e.g. `el9`.
    #[serde(default)]
    pub rpm: Vec<String>,
    /// Debian architectures (rpm architectures are derived: amd64 → x86_64).
    #[serde(default = "default_arches")]
    pub arches: Vec<String>,
}

impl Release {
    /// The package family a distro of this release belongs to, if it is one of its distros.
    pub fn family_of(&self, distro: &str) -> Option<Family> {
        if self.deb.iter().any(|d| d == distro) {
            Some(Family::Deb)
        } else if self.rpm.iter().any(|d| d == distro) {
            Some(Family::Rpm)
        } else {
            None
        }
    }

    /// Every distro of the release with its family.
    pub fn distros(&self) -> impl Iterator<Item = (Family, &str)> {
        let deb = self.deb.iter().map(|d| (Family::Deb, d.as_str()));
        deb.chain(self.rpm.iter().map(|d| (Family::Rpm, d.as_str())))
    }
}

/// Where merges of a release are published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ReleaseState {
    /// Merges publish into the release suite itself.
    #[default]
    Development,
    /// The release has shipped: merges publish into `proposed`.
    Maintenance,
}

impl TryFrom<String> for ReleaseState {
    type Error = String;

    fn try_from(state: String) -> Result<Self, String> {
        match state.as_str() {
            "development" => Ok(Self::Development),
            "maintenance" => Ok(Self::Maintenance),
            _ => Err(format!(
                "unknown release state {state:?}: expected \"development\" (merges publish into \
                 the release suite) or \"maintenance\" (merges publish into publish.proposed)"
            )),
        }
    }
}

/// A package family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Deb,
    Rpm,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Deb => "deb",
            Family::Rpm => "rpm",
        })
    }
}

/// A host the mirror daemon copies the public tree to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorTarget {
    pub name: String,
    /// rsync destination: `rsync://host[:port]/module/`, `ssh://[user@]host[:port]/path/`,
    /// `[user@]host:/path/` (SSH) or a local `/path/`.
    pub target: String,
    /// Public http URL of the mirror, used in the lines printed for clients.
    #[serde(default)]
    pub http_url: Option<String>,
    /// For an rsync-over-SSH target: the private key to log in with.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// For an rsync-over-SSH target: the known_hosts file holding the host's key (an unknown
    /// or changed key is refused).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
}

/// Limits of the mirror host's http server, so idle or stalled clients cannot use it up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Connections served at once; further ones wait, unaccepted, until one ends. Each holds
    /// up to two file descriptors (its socket and the file it sends).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// A request's headers must arrive within this (also the idle limit between requests on
    /// a kept-alive connection), in seconds.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// A connection that moves no byte either way for this long is closed (a client that
    /// stops reading a response), in seconds.
    #[serde(default = "default_stall_timeout_secs")]
    pub stall_timeout_secs: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            header_timeout_secs: default_header_timeout_secs(),
            stall_timeout_secs: default_stall_timeout_secs(),
        }
    }
}

fn default_max_connections() -> u32 {
    256
}

fn default_header_timeout_secs() -> u64 {
    10
}

fn default_stall_timeout_secs() -> u64 {
    60
}

fn default_delivery_limit() -> u32 {
    5
}
fn default_reconnect_max_secs() -> u64 {
    30
}
fn default_gerrit_port() -> u16 {
    29418
}
fn default_recheck_phrase() -> String {
    "recheck".into()
}
/// The longest `recheck_window_secs`: a year.
pub const MAX_RECHECK_WINDOW_SECS: u64 = 365 * 24 * 3600;

fn default_recheck_limit() -> u32 {
    3
}
fn default_recheck_window_secs() -> u64 {
    3600
}
fn default_catchup_margin_secs() -> u64 {
    300
}
fn default_ssh_command_timeout_secs() -> u64 {
    60
}
fn default_git_timeout_secs() -> u64 {
    600
}
fn default_keepalive_secs() -> u64 {
    15
}
fn default_submit_wait_ms() -> u64 {
    3000
}
fn default_build_timeout_secs() -> u64 {
    3 * 3600
}
fn default_max_log_bytes() -> u64 {
    64 << 20
}
fn default_tmpfs_size() -> String {
    "8g".into()
}
fn default_tmp_size() -> String {
    "2g".into()
}
fn default_memory() -> String {
    "12g".into()
}
fn default_max_source_bytes() -> u64 {
    2 << 30
}
fn default_max_result_bytes() -> u64 {
    4 << 30
}
fn default_max_results() -> u32 {
    1000
}

/// Bytes of a size written as digits with an optional `k`, `m` or `g` ("512m", "8g").
pub fn size_bytes(size: &str) -> Option<u64> {
    let (digits, shift) = match size.as_bytes().last()? {
        b'k' => (&size[..size.len() - 1], 10),
        b'm' => (&size[..size.len() - 1], 20),
        b'g' => (&size[..size.len() - 1], 30),
        _ => (size, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}
fn default_slots() -> u16 {
    1
}
fn default_true() -> bool {
    true
}

fn default_suites() -> Vec<String> {
    ["proposed", "updates", "security", "holdback", "hotfix"]
        .map(String::from)
        .to_vec()
}
fn default_keep_generations() -> u32 {
    3
}
fn default_arches() -> Vec<String> {
    vec!["amd64".into()]
}

/// The configuration key an environment variable overrides (`PERESTROIKA_BUILD__SLOTS` →
/// `build.slots`), if it is an override at all.
fn override_key(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix(ENV_PREFIX)?.strip_prefix('_')?;
    rest.contains("__")
        .then(|| rest.to_ascii_lowercase().replace("__", "."))
}

fn file_error(path: &Path, err: &config::ConfigError) -> ConfigError {
    match describe(err) {
        (Some(key), problem) => ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        },
        (None, problem) => ConfigError::Load {
            path: path.to_owned(),
            problem,
        },
    }
}

/// An error that only the overrides cause, blamed on the variable(s) that set its key.
fn environment_error(
    path: &Path,
    overrides: &HashMap<String, String>,
    err: &config::ConfigError,
) -> ConfigError {
    let (key, problem) = describe(err);
    let mut named: Vec<(&String, String)> = overrides
        .keys()
        .filter_map(|v| Some((v, override_key(v)?)))
        .collect();
    named.sort();
    let about_key: Vec<_> = named
        .iter()
        .filter(|(_, k)| key.as_deref().is_none_or(|key| k.starts_with(key)))
        .cloned()
        .collect();
    let chosen = if about_key.is_empty() {
        named
    } else {
        about_key
    };
    let (variable, key) = match chosen.as_slice() {
        [(variable, key)] => ((*variable).clone(), key.clone()),
        many => (
            many.iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            key.unwrap_or_default(),
        ),
    };
    ConfigError::Environment {
        path: path.to_owned(),
        variable,
        key,
        problem,
    }
}

impl FarmConfig {
    /// Loads `path`, applies `PERESTROIKA_<SECTION>__<KEY>` overrides from the process
    /// environment, and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`FarmConfig::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let load_err = |problem: &str| ConfigError::Load {
            path: path.to_owned(),
            problem: problem.to_owned(),
        };
        if path.is_dir() {
            return Err(load_err(
                "is a directory, not a file; pass --config FILE, the farm's TOML file \
                 (examples are in config/examples/)",
            ));
        }
        if !path.is_file() {
            return Err(load_err(
                "no such file; pass --config FILE (examples are in config/examples/)",
            ));
        }
        // Only PERESTROIKA_<SECTION>__<KEY> variables are overrides; others with the prefix
        // (such as PERESTROIKA_CONFIG) are left alone.
        let overrides: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| override_key(k).is_some())
            .collect();
        let file = || config::File::from(path).format(config::FileFormat::Toml);
        let combined = config::Config::builder()
            .add_source(file())
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(overrides.clone())),
            )
            .build()
            .and_then(|c| c.try_deserialize::<FarmConfig>());
        let mut farm = match combined {
            Ok(farm) => farm,
            Err(err) => {
                // The file alone tells whether the file or an override is at fault.
                let alone = config::Config::builder()
                    .add_source(file())
                    .build()
                    .and_then(|c| c.try_deserialize::<FarmConfig>());
                return Err(match alone {
                    Err(own) => file_error(path, &own),
                    Ok(_) => environment_error(path, &overrides, &err),
                });
            }
        };
        farm.source = path.to_owned();
        farm.validate()?;
        Ok(farm)
    }

    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.broker.url;
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(self.invalid(
                "broker.url",
                format!("expected an amqp:// or amqps:// URL, found {url:?}"),
            ));
        }
        let tls_files = self.broker.ca_file.is_some()
            || self.broker.client_cert_file.is_some()
            || self.broker.client_key_file.is_some();
        if tls_files && !url.starts_with("amqps://") {
            return Err(self.invalid(
                "broker.url",
                "ca_file and client certificates are for TLS: use an amqps:// URL",
            ));
        }
        if self.broker.client_cert_file.is_some() != self.broker.client_key_file.is_some() {
            return Err(self.invalid(
                "broker.client_key_file",
                "a client certificate needs its key, and a key its certificate: set both client_cert_file and client_key_file",
            ));
        }
        if self.broker.delivery_limit == 0 {
            return Err(self.invalid("broker.delivery_limit", "expected at least 1"));
        }
        for (key, size) in [
            ("build.tmpfs_size", &self.build.tmpfs_size),
            ("build.tmp_size", &self.build.tmp_size),
            ("build.memory", &self.build.memory),
        ] {
            if size_bytes(size).is_none_or(|b| b == 0) {
                return Err(self.invalid(
                    key,
                    format!("expected a size such as \"8g\" or \"512m\", found {size:?}"),
                ));
            }
        }
        let publish = &self.publish;
        if publish.keep_snapshots != 0 && publish.keep_snapshots <= publish.keep_generations.max(1)
        {
            return Err(self.invalid(
                "publish.keep_snapshots",
                format!(
                    "{} snapshots cannot hold the live one and the {} previous ones whose indexes \
                     stay reachable by hash (publish.keep_generations, and at least the previous \
                     one, which a mirror may still be copying); set it to {} or more, or 0 to keep \
                     every snapshot",
                    publish.keep_snapshots,
                    publish.keep_generations.max(1),
                    publish.keep_generations.max(1) + 1
                ),
            ));
        }
        if self.build.slots == 0 {
            return Err(self.invalid("build.slots", "expected at least 1"));
        }
        if self.customers.is_empty() {
            return Err(self.invalid("customers", "expected at least one [[customers]] entry"));
        }
        let mut customers = BTreeSet::new();
        for (ci, customer) in self.customers.iter().enumerate() {
            let key = format!("customers[{ci}].name");
            check_customer(&customer.name).map_err(|e| self.invalid(&key, e.to_string()))?;
            if !customers.insert(&customer.name) {
                return Err(
                    self.invalid(key, format!("customer {:?} appears twice", customer.name))
                );
            }
            if customer.versions.is_empty() {
                return Err(self.invalid(
                    format!("customers[{ci}].versions"),
                    format!("customer {:?} has no versions", customer.name),
                ));
            }
            let mut versions = BTreeSet::new();
            for (vi, release) in customer.versions.iter().enumerate() {
                let key = format!("customers[{ci}].versions[{vi}]");
                check_version(&release.name)
                    .map_err(|e| self.invalid(format!("{key}.name"), e.to_string()))?;
                if !versions.insert(&release.name) {
                    return Err(self.invalid(
                        format!("{key}.name"),
                        format!("version {:?} appears twice", release.name),
                    ));
                }
                if release.deb.is_empty() && release.rpm.is_empty() {
                    return Err(self.invalid(
                        key,
                        "expected at least one distro in `deb` (e.g. \"bookworm\") or `rpm` (e.g. \"el9\")",
                    ));
                }
                let mut distros = BTreeSet::new();
                for (family, distro) in release.distros() {
                    check_token("distro", distro)
                        .map_err(|e| self.invalid(format!("{key}.{family}"), e.to_string()))?;
                    if !distros.insert(distro) {
                        return Err(self.invalid(
                            format!("{key}.{family}"),
                            format!("distro {distro:?} is listed twice"),
                        ));
                    }
                }
                for arch in &release.arches {
                    check_token("architecture", arch)
                        .map_err(|e| self.invalid(format!("{key}.arches"), e.to_string()))?;
                }
            }
        }
        for (distro, root) in &self.rpm_roots {
            let key = format!("rpm_roots.{distro}");
            check_token("distro", distro).map_err(|e| self.invalid(&key, e.to_string()))?;
            if root.repos.is_empty() {
                return Err(self.invalid(
                    format!("{key}.repos"),
                    "expected at least one repository URL to bootstrap from",
                ));
            }
            check_token("release version", &root.releasever)
                .map_err(|e| self.invalid(format!("{key}.releasever"), e.to_string()))?;
        }
        for (i, suite) in self.publish.suites.iter().enumerate() {
            check_token("suite", suite)
                .map_err(|e| self.invalid(format!("publish.suites[{i}]"), e.to_string()))?;
        }
        // `promote --from` defaults to the proposed suite, and releases in maintenance
        // publish into it: it must be one of the suites whether or not one is in maintenance.
        if !self.publish.suites.contains(&self.publish.proposed) {
            let maintained = self
                .releases()
                .find(|(_, r)| r.state == ReleaseState::Maintenance)
                .map(|(c, r)| {
                    format!(
                        "{} {} is in maintenance, so its merges publish into it; ",
                        c.name, r.name
                    )
                })
                .unwrap_or_default();
            return Err(self.invalid(
                "publish.proposed",
                format!(
                    "the suite {:?} is not among publish.suites ({}), which lacks it; {maintained}\
                     add it there or name one of them here",
                    self.publish.proposed,
                    self.publish.suites.join(", ")
                ),
            ));
        }
        if let Some(signing) = &self.signing {
            let fpr = &signing.fingerprint;
            for (key, fpr) in std::iter::once(("signing.fingerprint".to_owned(), fpr)).chain(
                signing
                    .also_sign_with
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (format!("signing.also_sign_with[{i}]"), f)),
            ) {
                if let Err(e) = fingerprint(fpr) {
                    return Err(self.invalid(key, e));
                }
            }
            let reviews = std::iter::once((
                "signing.review_fingerprint".to_owned(),
                &signing.review_fingerprint,
            ))
            .chain(self.customers.iter().enumerate().map(|(i, c)| {
                (
                    format!("customers[{i}].review_fingerprint"),
                    &c.review_fingerprint,
                )
            }));
            for (key, review) in reviews {
                let Some(review) = review else { continue };
                let review = fingerprint(review).map_err(|e| self.invalid(&key, e))?;
                if signing.pinned().contains(&review) {
                    return Err(self.invalid(
                        key,
                        "a review key must not be a key releases are signed with: a client \
                         trusting the release would take review repositories for it",
                    ));
                }
            }
        } else if let Some(i) = self
            .customers
            .iter()
            .position(|c| c.review_fingerprint.is_some())
        {
            return Err(self.invalid(
                format!("customers[{i}].review_fingerprint"),
                "a review key needs a [signing] section (the release's key)",
            ));
        }
        for (key, value) in [
            (
                "serve.max_connections",
                u64::from(self.serve.max_connections),
            ),
            ("serve.header_timeout_secs", self.serve.header_timeout_secs),
            ("serve.stall_timeout_secs", self.serve.stall_timeout_secs),
            ("build.git_timeout_secs", self.build.git_timeout_secs),
            (
                "publish.command_timeout_secs",
                self.publish.command_timeout_secs,
            ),
            (
                "gerrit.command_timeout_secs",
                self.gerrit.as_ref().map_or(1, |g| g.command_timeout_secs),
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "expected at least 1"));
            }
        }
        if let Some(gerrit) = &self.gerrit {
            if gerrit.host.is_empty() {
                return Err(self.invalid("gerrit.host", "expected a host name"));
            }
            if gerrit.recheck_phrase.trim().is_empty() {
                return Err(self.invalid("gerrit.recheck_phrase", "expected a non-empty phrase"));
            }
            if !(1..=MAX_RECHECK_WINDOW_SECS).contains(&gerrit.recheck_window_secs) {
                return Err(self.invalid(
                    "gerrit.recheck_window_secs",
                    format!("expected 1 to {MAX_RECHECK_WINDOW_SECS} seconds (a year)"),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, mirror) in self.mirrors.iter().enumerate() {
            check_token("mirror", &mirror.name)
                .map_err(|e| self.invalid(format!("mirrors[{i}].name"), e.to_string()))?;
            if !names.insert(&mirror.name) {
                return Err(self.invalid(
                    format!("mirrors[{i}].name"),
                    format!("mirror {:?} appears twice", mirror.name),
                ));
            }
        }
        self.mapping()?;
        Ok(())
    }

    /// The compiled project-mapping rules.
    pub fn mapping(&self) -> Result<Mapping, ConfigError> {
        Mapping::compile(self.mapping.as_deref())
            .map_err(|(index, problem)| self.invalid(format!("mapping[{index}]"), problem))
    }

    /// The customer named `name`.
    pub fn customer(&self, name: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.name == name)
    }

    /// The release `version` of `customer`.
    pub fn release(&self, customer: &str, version: &str) -> Option<&Release> {
        self.customer(customer)?
            .versions
            .iter()
            .find(|r| r.name == version)
    }

    /// The suite a merge of `distro` publishes into: the release's own (`<distro>`) in
    /// development, `<distro>-<publish.proposed>` in maintenance.
    pub fn merge_suite(&self, customer: &str, version: &str, distro: &str) -> String {
        match self.release(customer, version).map(|r| r.state) {
            Some(ReleaseState::Maintenance) => format!("{distro}-{}", self.publish.proposed),
            _ => distro.to_owned(),
        }
    }

    /// Every (customer, release) pair of the farm.
    /// The key `customer`'s review and topic repositories are signed with, as gpg prints it:
    /// the customer's own, else `[signing] review_fingerprint`; `None` when neither is set
    /// (the release's key signs them).
    pub fn review_key(&self, customer: &str) -> Option<String> {
        self.customer(customer)
            .and_then(|c| c.review_fingerprint.as_deref())
            .map(|f| fingerprint(f).unwrap_or_else(|_| f.to_owned()))
            .or_else(|| self.signing.as_ref().and_then(SigningSettings::review))
    }

    pub fn releases(&self) -> impl Iterator<Item = (&Customer, &Release)> {
        self.customers
            .iter()
            .flat_map(|c| c.versions.iter().map(move |r| (c, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    /// Writes `text` to a temporary file and loads it.
    fn load_text(text: &str) -> Result<FarmConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("farm.toml");
        fs_err::write(&path, text).unwrap();
        FarmConfig::load_with_env(&path, no_env())
    }

    const MINIMAL: &str = include_str!("../examples/minimal.toml");

    #[test]
    fn sizes() {
        assert_eq!(size_bytes("512m"), Some(512 << 20));
        assert_eq!(size_bytes("8g"), Some(8 << 30));
        assert_eq!(size_bytes("4096"), Some(4096));
        for bad in ["", "g", "1.5g", "-1m", "8 g", "8G", "99999999999999999999g"] {
            assert_eq!(size_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_example_loads() {
        let mut seen = 0;
        for entry in fs_err::read_dir(examples()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                FarmConfig::load_with_env(&path, no_env())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 2);
    }

    #[test]
    fn example_values_and_defaults() {
        let farm = FarmConfig::load_with_env(&examples().join("farm.toml"), no_env()).unwrap();
        assert_eq!(farm.broker.delivery_limit, 5);
        let r = farm.release("acme", "9.0").unwrap();
        assert_eq!(r.state, ReleaseState::Maintenance);
        assert_eq!(r.family_of("el9"), Some(Family::Rpm));
        assert_eq!(r.family_of("bookworm"), Some(Family::Deb));
        assert_eq!(r.family_of("trusty"), None);
        assert_eq!(
            farm.release("globex", "9.0").unwrap().state,
            ReleaseState::Development
        );
        assert_eq!(
            farm.gerrit
                .as_ref()
                .unwrap()
                .clone_url("acme/openstack/nova"),
            "ssh://perestroika@review.example.org:29418/acme/openstack/nova"
        );
        let gerrit = farm.gerrit.as_ref().unwrap();
        assert_eq!(
            (gerrit.recheck_limit, gerrit.recheck_window_secs),
            (3, 3600)
        );

        let min = load_text(MINIMAL).unwrap();
        assert_eq!(min.broker.delivery_limit, 5);
        assert_eq!(min.build.slots, 1);
        assert_eq!(min.publish.suites.len(), 5);
        assert!(min.gerrit.is_none() && min.signing.is_none());
        assert_eq!(min.release("acme", "9.0").unwrap().arches, ["amd64"]);
        assert_eq!(min.serve.max_connections, 256);
        assert_eq!(
            (
                min.build.git_deadline().limit.as_secs(),
                min.publish.command_deadline().limit.as_secs(),
                gerrit.command_deadline().limit.as_secs()
            ),
            (600, 600, 60)
        );
        assert_eq!(
            (
                farm.serve.header_timeout_secs,
                farm.serve.stall_timeout_secs
            ),
            (10, 60)
        );
    }

    #[test]
    fn pinned_fingerprints_are_spelled_as_gpg_prints_them() {
        let lower = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(fingerprint(lower).unwrap(), lower.to_ascii_uppercase());
        assert_eq!(
            fingerprint("0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567").unwrap(),
            "0123456789ABCDEF0123456789ABCDEF01234567"
        );
        assert!(fingerprint("0123").unwrap_err().contains("40-hex-digit"));
        assert!(fingerprint(&"g".repeat(40)).is_err());
        let farm = load_text(&format!(
            "{MINIMAL}\n[signing]\nfingerprint = \"{lower}\"\nalso_sign_with = [\"{}\"]\n",
            "F".repeat(40)
        ))
        .unwrap();
        assert_eq!(
            farm.signing.unwrap().pinned(),
            [lower.to_ascii_uppercase(), "F".repeat(40)]
        );
    }

    #[test]
    fn a_recheck_window_must_be_one_second_to_a_year() {
        let text = std::fs::read_to_string(examples().join("farm.toml")).unwrap();
        for bad in ["0", "31536001"] {
            let changed = text.replace(
                "recheck_window_secs = 3600",
                &format!("recheck_window_secs = {bad}"),
            );
            let e = load_text(&changed).unwrap_err().to_string();
            assert!(e.contains("gerrit.recheck_window_secs"), "{e}");
        }
        let off = text.replace("recheck_limit = 3", "recheck_limit = 0");
        assert_eq!(load_text(&off).unwrap().gerrit.unwrap().recheck_limit, 0);
    }

    #[test]
    fn a_release_in_maintenance_needs_its_proposed_suite() {
        let text = std::fs::read_to_string(examples().join("farm.toml")).unwrap();
        let dropped = text.replace(
            r#"suites = ["proposed", "updates", "security", "holdback", "hotfix"]"#,
            r#"suites = ["updates", "security"]"#,
        );
        let e = load_text(&dropped).unwrap_err().to_string();
        assert!(e.contains("publish.proposed") && e.contains("lacks"), "{e}");
        let renamed = dropped
            .replace(
                r#"suites = ["updates", "security"]"#,
                r#"suites = ["candidate", "updates"]"#,
            )
            .replace(r#"proposed = "proposed""#, r#"proposed = "candidate""#);
        let farm = load_text(&renamed).unwrap();
        let (c, r) = farm
            .releases()
            .find(|(_, r)| r.state == ReleaseState::Maintenance)
            .unwrap();
        assert_eq!(
            farm.merge_suite(&c.name, &r.name, "bookworm"),
            "bookworm-candidate"
        );
    }

    #[test]
    fn environment_overrides_scalars() {
        let path = examples().join("minimal.toml");
        let env = [
            ("PERESTROIKA_BROKER__URL", "amqp://u:p@other:5673/%2f"),
            ("PERESTROIKA_BROKER__DELIVERY_LIMIT", "9"),
            ("PERESTROIKA_PATHS__STAGING", "/tmp/staging"),
            ("PERESTROIKA_CONFIG", "/not/a/key"),
            ("OTHER_BROKER__URL", "ignored"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let farm = FarmConfig::load_with_env(&path, env).unwrap();
        assert_eq!(farm.broker.url, "amqp://u:p@other:5673/%2f");
        assert_eq!(farm.broker.delivery_limit, 9);
        assert_eq!(farm.paths.staging, Path::new("/tmp/staging"));
    }

    #[test]
    fn a_bad_override_names_its_key() {
        let path = examples().join("minimal.toml");
        let env = [(
            "PERESTROIKA_BROKER__DELIVERY_LIMIT".to_owned(),
            "many".to_owned(),
        )];
        let err = FarmConfig::load_with_env(&path, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("minimal.toml"), "{err}");
        assert!(err.contains("delivery_limit"), "{err}");
    }

    #[test]
    fn an_override_with_a_wrong_key_names_its_variable() {
        let path = examples().join("minimal.toml");
        let env = [("PERESTROIKA_BUILD__SLOT".to_owned(), "2".to_owned())];
        let err = FarmConfig::load_with_env(&path, env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment variable PERESTROIKA_BUILD__SLOT (key `build.slot`): unknown field `slot`"),
            "{err}"
        );
        // A file that is wrong is still blamed on the file, overrides or not.
        let env = [("PERESTROIKA_BUILD__SLOTS".to_owned(), "2".to_owned())];
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("farm.toml");
        fs_err::write(&bad, MINIMAL.replace("[broker]", "[broker]\nurll = \"x\"")).unwrap();
        let err = FarmConfig::load_with_env(&bad, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `broker`: unknown field `urll`"), "{err}");
        assert!(!err.contains("environment"), "{err}");
    }

    #[test]
    fn a_wrong_release_state_lists_the_states_at_its_key() {
        let err = load_text(&MINIMAL.replace(
            "deb = [\"bookworm\"] }",
            "deb = [\"bookworm\"], state = \"maintainance\" }",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("key `customers[0].versions[0].state`: unknown release state \"maintainance\": expected \"development\""),
            "{err}"
        );
        assert!(err.contains("or \"maintenance\""), "{err}");
    }

    #[test]
    fn a_directory_is_not_a_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let err = FarmConfig::load_with_env(dir.path(), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory, not a file"), "{err}");
    }

    #[test]
    fn the_proposed_suite_is_one_of_the_suites_in_any_state() {
        expect_invalid(
            &format!("{MINIMAL}\n[publish]\nproposed = \"staging\"\n"),
            "publish.proposed",
            "the suite \"staging\" is not among publish.suites",
        );
    }

    #[test]
    fn kept_snapshots_hold_the_live_one_and_those_reachable_by_hash() {
        expect_invalid(
            &format!("{MINIMAL}\n[publish]\nkeep_generations = 3\nkeep_snapshots = 3\n"),
            "publish.keep_snapshots",
            "set it to 4 or more",
        );
        expect_invalid(
            &format!("{MINIMAL}\n[publish]\nkeep_generations = 0\nkeep_snapshots = 1\n"),
            "publish.keep_snapshots",
            "set it to 2 or more",
        );
        let farm = load_text(&format!("{MINIMAL}\n[publish]\nkeep_snapshots = 4\n")).unwrap();
        assert_eq!(farm.publish.keep_snapshots, 4);
        let farm = load_text(MINIMAL).unwrap();
        assert_eq!(
            farm.publish.keep_snapshots, 0,
            "every snapshot is kept by default"
        );
        assert_eq!(farm.paths.min_free_bytes, 2 << 30);
        assert_eq!(farm.build.git_cache_days, 30);
    }

    fn expect_invalid(text: &str, key: &str, words: &str) {
        let err = load_text(text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("farm.toml"), "{msg}");
        assert!(msg.contains(key), "expected key {key} in: {msg}");
        assert!(msg.contains(words), "expected {words:?} in: {msg}");
    }

    #[test]
    fn validation_errors_name_file_key_and_expectation() {
        expect_invalid(
            &MINIMAL.replace("amqp://guest", "http://guest"),
            "broker.url",
            "amqp://",
        );
        expect_invalid(
            &MINIMAL.replace("name = \"acme\"", "name = \"ac/me\""),
            "customers[0].name",
            "only letters",
        );
        expect_invalid(
            &MINIMAL.replace("name = \"acme\"", "name = \"ac.me\""),
            "customers[0].name",
            "only letters, digits and _ + ~ - may appear (no `.`",
        );
        for version in ["dead", "review", "9.0.dead"] {
            expect_invalid(
                &MINIMAL.replace("name = \"9.0\"", &format!("name = \"{version}\"")),
                "customers[0].versions[0].name",
                "are reserved (dead-letter queues, review trees)",
            );
        }
        expect_invalid(
            &MINIMAL.replace("deb = [\"bookworm\"]", "deb = []"),
            "customers[0].versions[0]",
            "at least one distro",
        );
        for (section, key) in [
            ("build", "git_timeout_secs"),
            ("publish", "command_timeout_secs"),
        ] {
            expect_invalid(
                &format!("{MINIMAL}\n[{section}]\n{key} = 0\n"),
                &format!("{section}.{key}"),
                "expected at least 1",
            );
        }
        expect_invalid(
            &format!("{MINIMAL}\n[signing]\nfingerprint = \"ABC\"\n"),
            "signing.fingerprint",
            "40-hex-digit",
        );
        let fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
        expect_invalid(
            &format!(
                "{MINIMAL}\n[signing]\nfingerprint = \"{fpr}\"\nreview_fingerprint = \"{}\"\n",
                fpr.to_lowercase()
            ),
            "signing.review_fingerprint",
            "must not be a key releases are signed with",
        );
        expect_invalid(
            &MINIMAL.replace(
                "name = \"acme\"",
                "name = \"acme\"\nreview_fingerprint = \"x\"",
            ),
            "customers[0].review_fingerprint",
            "needs a [signing] section",
        );
        expect_invalid(
            &format!("{MINIMAL}\n[serve]\nheader_timeout_secs = 0\n"),
            "serve.header_timeout_secs",
            "at least 1",
        );
        expect_invalid(
            &format!("{MINIMAL}\n[[mapping]]\nname = \"x\"\ncombined = \"{{customer}}/{{package}}\"\nbranch = \"main\"\n"),
            "mapping[0]",
            "{version}",
        );
        expect_invalid(
            &format!("{MINIMAL}\n[[customers]]\nname = \"acme\"\nversions = [{{ name = \"1\", deb = [\"bookworm\"] }}]\n"),
            "customers[1].name",
            "appears twice",
        );
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let err = load_text(&MINIMAL.replace("[broker]", "[broker]\nurll = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
        let err = load_text(&MINIMAL.replace("staging = ", "#"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("staging"), "{err}");
        let err = FarmConfig::load_with_env(Path::new("/nonexistent/farm.toml"), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/farm.toml") && err.contains("no such file"),
            "{err}"
        );
    }
}
