//! Build jobs and their results: what a worker is asked to build and what it hands over.

use chrono::{DateTime, Utc};
use perestroika_config::names::{check_file_name, check_token, NameError};
use perestroika_config::settings::Family;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::*;

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
pub(super) fn check_id(
    kind: &'static str,
    found: &str,
    expected: String,
) -> Result<(), MessageError> {
    if found == expected {
        return Ok(());
    }
    Err(MessageError::JobId {
        kind,
        found: found.to_owned(),
        expected,
    })
}

pub(super) fn check_target(kind: &'static str, target: &Target) -> Result<(), MessageError> {
    match target {
        Target::Topic { topic } => name(kind, check_token("topic", topic)),
        _ => Ok(()),
    }
}

impl Message for BuildJob {
    message_kind!("build job");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        let k = n.0;
        n.token("job id", &self.job_id)?;
        n.release(&self.customer, &self.version)?;
        n.token("package", &self.package)?;
        n.token("distro", &self.distro)?;
        check_target(k, &self.target)?;
        for repo in self.sources.repos() {
            n.project(&repo.project)?;
            n.commit(&repo.commit)?;
            n.project(&repo.branch)?;
            if let Some(r) = &repo.fetch_ref {
                n.project(r)?;
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

pub(super) fn check_artifacts(
    kind: &'static str,
    artifacts: &[Artifact],
) -> Result<(), MessageError> {
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
    /// The registry digest of that base (`sha256:…`), when it came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl Message for BuildResult {
    message_kind!("build result");
    fn check(&self) -> Result<(), MessageError> {
        name(Self::KIND, check_token("job id", &self.job_id))?;
        check_artifacts(Self::KIND, &self.artifacts)?;
        check_artifacts(Self::KIND, self.log.as_slice())
    }
}
