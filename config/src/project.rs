//! What a Gerrit project and branch build: the mapping rules resolved against the
//! configuration's customers, releases and distros.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mapping::rule::{Projects, Rule};
use crate::mapping::{Mapping, Role};
use crate::names::{check_token, NameError};
use crate::settings::{Family, FarmConfig};

/// A project and branch the farm builds from, resolved against the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectMatch {
    /// Name of the rule that matched.
    pub rule: String,
    pub customer: String,
    pub version: String,
    pub package: String,
    pub role: Role,
    /// Set when the project names one distro; otherwise the package builds for every distro
    /// of the release.
    pub distro: Option<String>,
    pub family: Option<Family>,
    pub code_project: String,
    pub packaging_project: String,
    /// The branch, without `refs/heads/`.
    pub branch: String,
}

/// Why an event's project or branch is not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmapped {
    #[error("no mapping rule matches project {project:?}")]
    NoRule { project: String },
    #[error("project {project:?} matches rule {rule:?}, but branch {branch:?} does not match {pattern:?}")]
    Branch {
        project: String,
        rule: String,
        branch: String,
        pattern: String,
    },
    #[error(
        "project {project:?} says {name} {in_project:?} but branch {branch:?} says {in_branch:?}"
    )]
    Disagree {
        project: String,
        branch: String,
        name: String,
        in_project: String,
        in_branch: String,
    },
    #[error("ref {0:?} is not a branch")]
    NotBranch(String),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("customer {customer:?} is not configured (rule {rule:?})")]
    Customer { customer: String, rule: String },
    #[error(
        "version {version:?} of customer {customer:?} is not configured (configured: {known})"
    )]
    Version {
        customer: String,
        version: String,
        known: String,
    },
    #[error("distro {distro:?} is not configured for {customer} {version}")]
    Distro {
        customer: String,
        version: String,
        distro: String,
    },
    #[error("project names family {named} but distro {distro:?} is {family}")]
    Family {
        named: Family,
        distro: String,
        family: Family,
    },
}

impl Mapping {
    /// Maps a project and branch (`refs/heads/` optional) to what the farm builds.
    pub fn resolve(
        &self,
        farm: &FarmConfig,
        project: &str,
        branch: &str,
    ) -> Result<ProjectMatch, Unmapped> {
        let branch = branch_name(branch)?;
        let mut near_miss = None;
        for rule in &self.rules {
            let (role, mut values) = match rule.match_project(project) {
                Some(found) => found,
                None => continue,
            };
            let Some(branch_values) = rule.branch.captures(branch) else {
                near_miss.get_or_insert_with(|| Unmapped::Branch {
                    project: project.to_owned(),
                    rule: rule.name.clone(),
                    branch: branch.to_owned(),
                    pattern: rule.branch.source.clone(),
                });
                continue;
            };
            for (name, value) in branch_values {
                if let Some(old) = values.insert(name.clone(), value.clone()) {
                    if old != value {
                        return Err(Unmapped::Disagree {
                            project: project.to_owned(),
                            branch: branch.to_owned(),
                            name: name.clone(),
                            in_project: old,
                            in_branch: value.clone(),
                        });
                    }
                }
            }
            return resolve_rule(rule, farm, role, &values, branch);
        }
        Err(near_miss.unwrap_or_else(|| Unmapped::NoRule {
            project: project.to_owned(),
        }))
    }
}

/// The branch name of a ref, refusing refs that are not branches.
pub fn branch_name(refname: &str) -> Result<&str, Unmapped> {
    if let Some(branch) = refname.strip_prefix("refs/heads/") {
        return Ok(branch);
    }
    if refname.starts_with("refs/") {
        return Err(Unmapped::NotBranch(refname.to_owned()));
    }
    Ok(refname)
}

/// What `rule`'s match of a project and branch builds.
fn resolve_rule(
    rule: &Rule,
    farm: &FarmConfig,
    role: Role,
    values: &BTreeMap<String, String>,
    branch: &str,
) -> Result<ProjectMatch, Unmapped> {
    let get = |name: &str| values.get(name).cloned();
    let customer = get("customer").unwrap_or_default();
    let version = get("version").unwrap_or_default();
    let package = get("package").unwrap_or_default();
    check_token("package", &package)?;
    let Some(cust) = farm.customer(&customer) else {
        return Err(Unmapped::Customer {
            customer,
            rule: rule.name.clone(),
        });
    };
    let Some(release) = farm.release(&customer, &version) else {
        let known: Vec<_> = cust.versions.iter().map(|r| r.name.as_str()).collect();
        return Err(Unmapped::Version {
            customer,
            version,
            known: known.join(", "),
        });
    };
    let distro = get("distro");
    let mut family = match get("family").as_deref() {
        None => None,
        Some("deb") => Some(Family::Deb),
        Some("rpm") => Some(Family::Rpm),
        Some(_) => None, // a free-form family name (e.g. "ubuntu"): the distro decides
    };
    if let Some(distro) = &distro {
        match release.family_of(distro) {
            None => {
                return Err(Unmapped::Distro {
                    customer,
                    version,
                    distro: distro.clone(),
                })
            }
            Some(f) if family.is_some_and(|g| g != f) => {
                return Err(Unmapped::Family {
                    named: family.unwrap_or(f),
                    distro: distro.clone(),
                    family: f,
                })
            }
            Some(f) => family = Some(f),
        }
    }
    let (code_project, packaging_project) = match &rule.projects {
        Projects::Split { code, packaging } => (code.render(values), packaging.render(values)),
        Projects::Combined(t) => (t.render(values), t.render(values)),
    };
    Ok(ProjectMatch {
        rule: rule.name.clone(),
        customer,
        version,
        package,
        role,
        distro,
        family,
        code_project,
        packaging_project,
        branch: branch.to_owned(),
    })
}
