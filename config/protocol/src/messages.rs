//! The messages that cross the queues. Every message carries `schema_version`; a consumer
//! refuses a message of a schema it does not know (it is dead-lettered with that reason).

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use perestroika_config::names::{
    check_commit, check_customer, check_file_name, check_project, check_token, check_version,
    NameError,
};
use perestroika_config::settings::Family;

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A message could not be taken as work.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not valid JSON for {kind}: {source}")]
    Json {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind} has schema_version {found}; this build understands {SCHEMA_VERSION}")]
    Schema { kind: &'static str, found: u32 },
    #[error("{kind}: {source}")]
    Name {
        kind: &'static str,
        #[source]
        source: NameError,
    },
    #[error("{kind}: job_id {found} does not match its content (expected {expected})")]
    JobId {
        kind: &'static str,
        found: String,
        expected: String,
    },
}

/// A message type that crosses a queue.
pub trait Message: Serialize + DeserializeOwned {
    /// Name used in errors and logs.
    const KIND: &'static str;
    fn schema_version(&self) -> u32;
    /// Checks every name that will reach a path or a command.
    fn check(&self) -> Result<(), MessageError>;

    /// Serialises for the wire.
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("message types always serialise")
    }

    /// Parses and checks a message from the wire.
    fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        #[derive(Deserialize)]
        struct Head {
            schema_version: u32,
        }
        let json = |source| MessageError::Json {
            kind: Self::KIND,
            source,
        };
        let head: Head = serde_json::from_slice(bytes).map_err(json)?;
        if head.schema_version != SCHEMA_VERSION {
            return Err(MessageError::Schema {
                kind: Self::KIND,
                found: head.schema_version,
            });
        }
        let msg: Self = serde_json::from_slice(bytes).map_err(json)?;
        msg.check()?;
        Ok(msg)
    }
}

fn name(kind: &'static str, r: Result<(), NameError>) -> Result<(), MessageError> {
    r.map_err(|source| MessageError::Name { kind, source })
}

/// One git repository at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    /// Gerrit project name.
    pub project: String,
    /// URL to fetch from.
    pub url: String,
    /// The branch the commit was taken from (without `refs/heads/`).
    pub branch: String,
    /// The exact commit built.
    pub commit: String,
    /// A ref to fetch that contains the commit when no branch does yet (a Gerrit change's
    /// `refs/changes/…`).
    #[serde(default)]
    pub fetch_ref: Option<String>,
}

/// Where a build's code and packaging come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "layout", rename_all = "lowercase")]
pub enum Sources {
    /// Code and packaging in two repositories.
    Split {
        code: GitSource,
        packaging: GitSource,
    },
    /// Code and packaging in one repository.
    Combined { repo: GitSource },
}

impl Sources {
    /// The repositories, code first.
    pub fn repos(&self) -> Vec<&GitSource> {
        match self {
            Sources::Split { code, packaging } => vec![code, packaging],
            Sources::Combined { repo } => vec![repo],
        }
    }
}

/// Which repository a build publishes into.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// The release itself: its own suite in development, `proposed` in maintenance.
    Release,
    /// A per-change review repository.
    Review { change: u64 },
    /// A review repository shared by the changes of one Gerrit topic.
    Topic { topic: String },
}

impl std::fmt::Display for Target {
    /// The repository in words: "the release", "review repository of change 1234",
    /// "topic repository foo".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Release => f.write_str("the release"),
            Target::Review { change } => write!(f, "review repository of change {change}"),
            Target::Topic { topic } => write!(f, "topic repository {topic}"),
        }
    }
}

impl Target {
    /// Where the repository lives, relative to the public root: `<customer>/<version>` for a
    /// release, `<customer>/review/<change or topic>` for a review repository.
    pub fn tree(&self, customer: &str, version: &str) -> String {
        match self {
            Target::Release => format!("{customer}/{version}"),
            Target::Review { change } => format!("{customer}/review/{change}"),
            Target::Topic { topic } => format!("{customer}/review/{topic}"),
        }
    }
}

/// The customer of a review or topic repository's tree path (relative to the public root, as
/// [`Target::tree`] makes it); `None` for a release's tree.
pub fn review_tree_customer(tree: &str) -> Option<&str> {
    let mut parts = tree.split('/');
    let customer = parts.next()?;
    (parts.next() == Some("review")).then_some(customer)
}

/// What made the farm build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    ChangeMerged,
    PatchsetCreated,
    RefUpdated,
    Recheck,
    Manual,
    CatchUp,
}

/// The event behind a build job, for the record (it does not enter the job id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    #[serde(default)]
    pub change: Option<u64>,
    #[serde(default)]
    pub patchset: Option<u32>,
    /// Gerrit's event time (seconds since the epoch), when the trigger was an event.
    #[serde(default)]
    pub event_time: Option<i64>,
}

/// A job for `build.<customer>.<version>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildJob {
    pub schema_version: u32,
    /// Deterministic id: see [`BuildJob::compute_id`].
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub package: String,
    pub family: Family,
    pub distro: String,
    pub sources: Sources,
    pub target: Target,
    /// 0 for the first build of these sources; a manual rebuild asks for a higher number,
    /// which raises the package revision.
    #[serde(default)]
    pub rebuild: u32,
    pub trigger: Trigger,
    pub requested_at: DateTime<Utc>,
}

impl BuildJob {
    /// Builds a job and fills in its id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        customer: &str,
        version: &str,
        package: &str,
        family: Family,
        distro: &str,
        sources: Sources,
        target: Target,
        rebuild: u32,
        trigger: Trigger,
    ) -> Self {
        let mut job = Self {
            schema_version: SCHEMA_VERSION,
            job_id: String::new(),
            customer: customer.to_owned(),
            version: version.to_owned(),
            package: package.to_owned(),
            family,
            distro: distro.to_owned(),
            sources,
            target,
            rebuild,
            trigger,
            requested_at: Utc::now(),
        };
        job.job_id = job.compute_id();
        job
    }

    /// A hash of everything that identifies the work: the same sources built for the same
    /// place give the same id, whichever event asked for them.
    pub fn compute_id(&self) -> String {
        let mut parts: Vec<String> = vec![
            "build".into(),
            self.customer.clone(),
            self.version.clone(),
            self.package.clone(),
            self.family.to_string(),
            self.distro.clone(),
            serde_json::to_string(&self.target).expect("target serialises"),
            self.rebuild.to_string(),
        ];
        for repo in self.sources.repos() {
            parts.push(repo.project.clone());
            parts.push(repo.commit.clone());
        }
        job_id(&parts)
    }
}

/// Hashes identifying parts into a job id: 24 hex digits of their sha256.
pub fn job_id(parts: &[String]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..12])
}

/// Refuses a message whose `job_id` is not the one its content gives.
fn check_id(kind: &'static str, found: &str, expected: String) -> Result<(), MessageError> {
    if found == expected {
        return Ok(());
    }
    Err(MessageError::JobId {
        kind,
        found: found.to_owned(),
        expected,
    })
}

fn check_target(kind: &'static str, target: &Target) -> Result<(), MessageError> {
    match target {
        Target::Topic { topic } => name(kind, check_token("topic", topic)),
        _ => Ok(()),
    }
}

impl Message for BuildJob {
    const KIND: &'static str = "build job";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_token("job id", &self.job_id))?;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        name(k, check_token("package", &self.package))?;
        name(k, check_token("distro", &self.distro))?;
        check_target(k, &self.target)?;
        for repo in self.sources.repos() {
            name(k, check_project(&repo.project))?;
            name(k, check_commit(&repo.commit))?;
            name(k, check_project(&repo.branch))?;
            if let Some(r) = &repo.fetch_ref {
                name(k, check_project(r))?;
            }
        }
        check_id(k, &self.job_id, self.compute_id())
    }
}

/// A file a build produced, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// File name within the job's staging directory (never a path).
    pub name: String,
    /// Lower-case hex sha256.
    pub sha256: String,
    pub size: u64,
}

impl Artifact {
    /// Describes a file: its name, size and sha256.
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Self> {
        let mut file = fs_err::File::open(path)?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher)?;
        Ok(Self {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }
}

fn check_artifacts(kind: &'static str, artifacts: &[Artifact]) -> Result<(), MessageError> {
    for a in artifacts {
        name(kind, check_file_name(&a.name))?;
        let ok = a.sha256.len() == 64
            && a.sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(MessageError::Name {
                kind,
                source: NameError {
                    what: "sha256",
                    name: a.sha256.clone(),
                    why: "it must be 64 lower-case hex digits",
                },
            });
        }
    }
    Ok(())
}

/// Name of the build log among a build's staged files (`<staging>/<job id>/build.log`).
pub const LOG_NAME: &str = "build.log";

/// How a build ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum BuildOutcome {
    #[default]
    Succeeded,
    /// `step` names what failed (e.g. `build-deps`, `dpkg-buildpackage`, `timeout`).
    Failed { step: String, reason: String },
}

/// The record a worker writes of a build (`<staging>/<job id>/result.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildResult {
    pub schema_version: u32,
    pub job_id: String,
    pub outcome: BuildOutcome,
    /// The version the build gave the package, once known.
    #[serde(default)]
    pub package_version: Option<String>,
    pub artifacts: Vec<Artifact>,
    /// The build log, among the staged files.
    #[serde(default)]
    pub log: Option<Artifact>,
    /// Docker image id of the base the build ran in.
    #[serde(default)]
    pub image_id: Option<String>,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl Message for BuildResult {
    const KIND: &'static str = "build result";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        name(Self::KIND, check_token("job id", &self.job_id))?;
        check_artifacts(Self::KIND, &self.artifacts)?;
        check_artifacts(Self::KIND, self.log.as_slice())
    }
}

/// A job for `publish.<customer>.<version>`: include these staged files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishJob {
    pub schema_version: u32,
    /// The build job's id; the staged files are under `<staging>/<job id>/`.
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub distro: String,
    pub family: Family,
    pub package: String,
    pub package_version: String,
    pub target: Target,
    /// The build job's sources, judged by the publisher against the configuration (see
    /// [`crate::validate::publish_job`]).
    pub sources: Sources,
    /// Every file to include, with the checksum the publisher verifies before trusting it.
    pub artifacts: Vec<Artifact>,
    /// The build log (`build.log`), checksummed like the artifacts; a job without it
    /// publishes no log.
    #[serde(default)]
    pub log: Option<Artifact>,
    /// When the build was asked for (its build job's `requested_at`): a review build asked
    /// for before its change's review repository was retired is not published.
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
    /// The event behind the build, for the feedback to its Gerrit change.
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// How the build ended. A failed build has no artifacts: only its log is published, and
    /// the feedback says which step failed and why.
    #[serde(default)]
    pub outcome: BuildOutcome,
}

impl Message for PublishJob {
    const KIND: &'static str = "publish job";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_token("job id", &self.job_id))?;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        name(k, check_token("distro", &self.distro))?;
        name(k, check_token("package", &self.package))?;
        // A build may fail before its version is known.
        let failed = matches!(self.outcome, BuildOutcome::Failed { .. });
        if !(failed && self.package_version.is_empty()) {
            name(
                k,
                check_token("package version", &self.package_version.replace(':', "_")),
            )?;
        }
        check_target(k, &self.target)?;
        check_artifacts(k, &self.artifacts)?;
        check_artifacts(k, self.log.as_slice())?;
        match &self.log {
            Some(log) if log.name != LOG_NAME => Err(MessageError::Name {
                kind: k,
                source: NameError {
                    what: "log",
                    name: log.name.clone(),
                    why: "a build log is named build.log",
                },
            }),
            _ => Ok(()),
        }
    }
}

/// Sent on `publish.<customer>.<version>` when a change is merged, abandoned or deleted: its
/// review repository is taken down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRetirement {
    pub schema_version: u32,
    /// Deterministic: see [`ReviewRetirement::new`].
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub change: u64,
    pub requested_at: DateTime<Utc>,
}

impl ReviewRetirement {
    /// A retirement with its id (the same change always gives the same id).
    pub fn new(customer: &str, version: &str, change: u64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            job_id: Self::id(customer, version, change),
            customer: customer.to_owned(),
            version: version.to_owned(),
            change,
            requested_at: Utc::now(),
        }
    }

    fn id(customer: &str, version: &str, change: u64) -> String {
        job_id(&[
            "retire-review".into(),
            customer.to_owned(),
            version.to_owned(),
            change.to_string(),
        ])
    }
}

impl Message for ReviewRetirement {
    const KIND: &'static str = "review retirement";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        check_id(
            k,
            &self.job_id,
            Self::id(&self.customer, &self.version, self.change),
        )
    }
}

/// Sent on `publish.<customer>.<version>` by the publisher itself, on a timer: sign the
/// release's deb indexes again (new `Date` and `Valid-Until`) if less than half of their
/// validity is left. Through the queue, so that it never runs beside a publish of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRefresh {
    pub schema_version: u32,
    /// `refresh-signatures` of the release (the same for every refresh: one waiting is enough).
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub refresh: RefreshKind,
}

/// What a [`SignatureRefresh`] refreshes (one kind; it names the message on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshKind {
    Signatures,
}

impl SignatureRefresh {
    pub fn new(customer: &str, version: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            job_id: Self::id(customer, version),
            customer: customer.to_owned(),
            version: version.to_owned(),
            refresh: RefreshKind::Signatures,
        }
    }

    fn id(customer: &str, version: &str) -> String {
        job_id(&[
            "refresh-signatures".into(),
            customer.to_owned(),
            version.to_owned(),
        ])
    }
}

impl Message for SignatureRefresh {
    const KIND: &'static str = "signature refresh";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_token("customer", &self.customer))?;
        name(k, check_token("version", &self.version))?;
        check_id(k, &self.job_id, Self::id(&self.customer, &self.version))
    }
}

/// Sent on `publish.<customer>.<version>` by `perestroika-queue promote`: copy the exact
/// published files of a source package from one suite of the release to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub schema_version: u32,
    /// Deterministic: the same promotion asked twice has the same id.
    pub job_id: String,
    pub customer: String,
    pub version: String,
    /// The source package.
    pub package: String,
    /// The package's version; the newest in `from` when absent.
    #[serde(default)]
    pub package_version: Option<String>,
    /// Suite names from the configuration (`proposed`, `updates`, …).
    pub from: String,
    pub to: String,
    /// Distros to promote in; every distro of the release that has the package when empty.
    #[serde(default)]
    pub distros: Vec<String>,
    /// Promote even when dependencies are not satisfiable in the target suite.
    #[serde(default)]
    pub force: bool,
    /// A queue to send the [`PromotionResult`] to (the asking CLI's private queue).
    #[serde(default)]
    pub reply_to: Option<String>,
    pub requested_at: DateTime<Utc>,
}

impl Promotion {
    /// A promotion with its id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        customer: &str,
        version: &str,
        package: &str,
        package_version: Option<&str>,
        from: &str,
        to: &str,
        distros: &[String],
        force: bool,
    ) -> Self {
        let mut p = Self {
            schema_version: SCHEMA_VERSION,
            job_id: String::new(),
            customer: customer.to_owned(),
            version: version.to_owned(),
            package: package.to_owned(),
            package_version: package_version.map(str::to_owned),
            from: from.to_owned(),
            to: to.to_owned(),
            distros: distros.to_vec(),
            force,
            reply_to: None,
            requested_at: Utc::now(),
        };
        p.job_id = p.compute_id();
        p
    }

    fn compute_id(&self) -> String {
        let mut parts = vec![
            "promote".into(),
            self.customer.clone(),
            self.version.clone(),
            self.package.clone(),
            self.package_version.clone().unwrap_or_default(),
            self.from.clone(),
            self.to.clone(),
            self.force.to_string(),
        ];
        parts.extend(self.distros.iter().cloned());
        job_id(&parts)
    }
}

impl Message for Promotion {
    const KIND: &'static str = "promotion";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        name(k, check_token("package", &self.package))?;
        if let Some(v) = &self.package_version {
            name(k, check_token("package version", &v.replace(':', "_")))?;
        }
        name(k, check_token("suite", &self.from))?;
        name(k, check_token("suite", &self.to))?;
        for d in &self.distros {
            name(k, check_token("distro", d))?;
        }
        if let Some(q) = &self.reply_to {
            name(k, check_token("reply queue", q))?;
        }
        check_id(k, &self.job_id, self.compute_id())
    }
}

/// The publisher's answer to a [`Promotion`], sent to its `reply_to` queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionResult {
    pub schema_version: u32,
    pub job_id: String,
    pub promoted: bool,
    /// What was copied, one line per file (`bookworm-updates: greet_1.1+p2.0_amd64.deb`).
    #[serde(default)]
    pub copied: Vec<String>,
    /// Relations the target suite leaves unsatisfied (`greet-user: greet (>= 1.1)`).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Why nothing was promoted, when it was not.
    #[serde(default)]
    pub error: Option<String>,
    /// The generation now live, when the promotion switched the tree.
    #[serde(default)]
    pub generation: Option<u64>,
}

impl Message for PromotionResult {
    const KIND: &'static str = "promotion result";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        name(Self::KIND, check_token("job id", &self.job_id))
    }
}

/// Sent on `feedback.<customer>.<version>` once a build of a Gerrit change has an outcome (by
/// the worker when the build failed, by the publisher once it is published); the reactor
/// reports it on the change with `gerrit review`, once per build job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub schema_version: u32,
    /// The build job's id: feedback is sent once per id.
    pub job_id: String,
    pub customer: String,
    pub version: String,
    pub package: String,
    pub family: Family,
    pub distro: String,
    pub target: Target,
    pub change: u64,
    pub patchset: u32,
    pub outcome: BuildOutcome,
    #[serde(default)]
    pub package_version: Option<String>,
    /// The suite the build was published into.
    #[serde(default)]
    pub suite: Option<String>,
    /// The build log, relative to the public root, once published.
    #[serde(default)]
    pub log: Option<String>,
    /// When the build was asked for (the build job's `requested_at`): a recheck asks again
    /// for the same job and is reported again; a redelivery of one request is not.
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
}

impl Feedback {
    /// The feedback for a build with these particulars; `None` without a change and patch set.
    #[allow(clippy::too_many_arguments)]
    pub fn of(
        job_id: &str,
        customer: &str,
        version: &str,
        package: &str,
        family: Family,
        distro: &str,
        target: &Target,
        trigger: &Trigger,
        outcome: BuildOutcome,
        package_version: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            schema_version: SCHEMA_VERSION,
            job_id: job_id.to_owned(),
            customer: customer.to_owned(),
            version: version.to_owned(),
            package: package.to_owned(),
            family,
            distro: distro.to_owned(),
            target: target.clone(),
            change: trigger.change?,
            patchset: trigger.patchset?,
            outcome,
            package_version,
            suite: None,
            log: None,
            requested_at: None,
        })
    }
}

impl Feedback {
    /// The queue feedback of this release goes to: `feedback.<customer>.<version>`.
    pub fn queue(&self) -> String {
        crate::QueueName::new(crate::Stage::Feedback, &self.customer, &self.version).to_string()
    }

    /// What feedback is sent once for: the build job and the request that asked for it
    /// (`<job id>` or `<job id>.<request time in microseconds>`).
    pub fn request_key(&self) -> String {
        match self.requested_at {
            Some(at) => format!("{}.{}", self.job_id, at.timestamp_micros()),
            None => self.job_id.clone(),
        }
    }
}

impl Message for Feedback {
    const KIND: &'static str = "feedback";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_token("job id", &self.job_id))?;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        name(k, check_token("package", &self.package))?;
        name(k, check_token("distro", &self.distro))?;
        check_target(k, &self.target)
    }
}

/// Sent on `mirror.<customer>.<version>` after each switch of the public tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorAnnouncement {
    pub schema_version: u32,
    pub customer: String,
    pub version: String,
    /// The snapshot that is now live.
    pub snapshot: String,
    /// Increases with every switch of this release; a mirror skips announcements older than
    /// what it already has. 0 means the tree was taken down (a retired review repository).
    pub generation: u64,
    /// Path of the release's tree relative to the public root (`<customer>/<version>`, or
    /// `<customer>/review/<name>`).
    pub tree: String,
    pub published_at: DateTime<Utc>,
}

impl Message for MirrorAnnouncement {
    const KIND: &'static str = "mirror announcement";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        name(k, check_token("snapshot", &self.snapshot))?;
        name(k, check_project(&self.tree))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(project: &str, c: char) -> GitSource {
        GitSource {
            project: project.into(),
            url: format!("ssh://gerrit/{project}"),
            branch: "openstack-ci/fuel-9.0/mitaka".into(),
            commit: c.to_string().repeat(40),
            fetch_ref: None,
        }
    }

    fn job(kind: TriggerKind, rebuild: u32) -> BuildJob {
        BuildJob::new(
            "acme",
            "9.0",
            "nova",
            Family::Deb,
            "bookworm",
            Sources::Split {
                code: src("acme/openstack/nova", 'a'),
                packaging: src("acme/openstack-build/nova", 'b'),
            },
            Target::Release,
            rebuild,
            Trigger {
                kind,
                change: Some(7),
                patchset: Some(1),
                event_time: None,
            },
        )
    }

    #[test]
    fn review_trees_name_their_customer() {
        assert_eq!(review_tree_customer("acme/review/42"), Some("acme"));
        assert_eq!(review_tree_customer("acme/review/shared-fix"), Some("acme"));
        assert_eq!(review_tree_customer("acme/9.0"), None);
        assert_eq!(review_tree_customer("acme"), None);
        for target in [
            Target::Review { change: 1 },
            Target::Topic { topic: "t".into() },
        ] {
            assert_eq!(
                review_tree_customer(&target.tree("acme", "9.0")),
                Some("acme")
            );
        }
        assert_eq!(
            review_tree_customer(&Target::Release.tree("acme", "9.0")),
            None
        );
    }

    #[test]
    fn job_id_is_deterministic_and_ignores_the_trigger() {
        let merged = job(TriggerKind::ChangeMerged, 0);
        let caught_up = job(TriggerKind::CatchUp, 0);
        assert_eq!(merged.job_id, caught_up.job_id);
        assert_eq!(merged.job_id.len(), 24);
        assert_ne!(merged.job_id, job(TriggerKind::Manual, 1).job_id);
    }

    #[test]
    fn round_trip_and_checks() {
        let j = job(TriggerKind::ChangeMerged, 0);
        let back = BuildJob::from_bytes(&j.to_bytes()).unwrap();
        assert_eq!(back, j);

        let mut tampered = j.clone();
        tampered.rebuild = 3;
        let err = BuildJob::from_bytes(&tampered.to_bytes()).unwrap_err();
        assert!(matches!(err, MessageError::JobId { .. }), "{err}");

        let mut evil = j.clone();
        evil.package = "../../etc".into();
        evil.job_id = evil.compute_id();
        let err = BuildJob::from_bytes(&evil.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("package"), "{err}");
    }

    #[test]
    fn unknown_schema_is_refused() {
        let mut v = serde_json::to_value(job(TriggerKind::Manual, 0)).unwrap();
        v["schema_version"] = 99.into();
        let err = BuildJob::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("schema_version 99"), "{err}");
        let err = BuildJob::from_bytes(b"{not json").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn artifact_names_are_checked() {
        let p = PublishJob {
            schema_version: SCHEMA_VERSION,
            job_id: "abc".into(),
            customer: "acme".into(),
            version: "9.0".into(),
            distro: "bookworm".into(),
            family: Family::Deb,
            package: "hello".into(),
            package_version: "1:2.10-3".into(),
            target: Target::Review { change: 12 },
            sources: Sources::Combined {
                repo: src("acme/packages/deb/bookworm/hello", 'a'),
            },
            artifacts: vec![Artifact {
                name: "../x.deb".into(),
                sha256: "0".repeat(64),
                size: 1,
            }],
            log: None,
            requested_at: None,
            trigger: None,
            outcome: BuildOutcome::Succeeded,
        };
        assert!(PublishJob::from_bytes(&p.to_bytes()).is_err());
        let mut ok = p.clone();
        ok.artifacts[0].name = "hello_2.10-3_amd64.deb".into();
        assert!(PublishJob::from_bytes(&ok.to_bytes()).is_ok());
        // The log is a build log, by name.
        let mut log = ok.clone();
        log.log = Some(Artifact {
            name: "KEY.asc".into(),
            ..ok.artifacts[0].clone()
        });
        assert!(PublishJob::from_bytes(&log.to_bytes()).is_err());
        log.log.as_mut().unwrap().name = LOG_NAME.into();
        assert!(PublishJob::from_bytes(&log.to_bytes()).is_ok());
    }
}
