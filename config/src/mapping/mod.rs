//! From a Gerrit project and branch to customer, version, package and role.
//!
//! A rule is a set of templates with `{placeholder}` path elements. `{customer}`, `{package}`,
//! `{version}`, `{distro}` and `{family}` carry meaning; any other name matches one path element
//! and is ignored (e.g. `{series}` for the OpenStack release name in a branch).

use serde::{Deserialize, Serialize};

use crate::names::NameError;
use crate::settings::{Family, FarmConfig};

mod rule;
mod template;
#[cfg(test)]
mod tests;

use rule::Rule;
pub use rule::RuleError;
pub use template::TemplateError;

/// A mapping rule as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// Project holding the code, when code and packaging live apart.
    #[serde(default)]
    pub code: Option<String>,
    /// Project holding the packaging (`debian/` or the spec), when code and packaging live apart.
    #[serde(default)]
    pub packaging: Option<String>,
    /// Project holding code and packaging together.
    #[serde(default)]
    pub combined: Option<String>,
    /// Branch template; must contain `{version}` unless the project template does.
    pub branch: String,
}

/// The seed farm's rules: split OpenStack projects on `openstack-ci/fuel-<version>/<series>`
/// branches, and combined package projects on `<version>` branches.
pub fn default_rules() -> Vec<RuleSpec> {
    vec![
        RuleSpec {
            name: "openstack".into(),
            code: Some("{customer}/openstack/{package}".into()),
            packaging: Some("{customer}/openstack-build/{package}".into()),
            combined: None,
            branch: "openstack-ci/fuel-{version}/{series}".into(),
        },
        RuleSpec {
            name: "packages".into(),
            code: None,
            packaging: None,
            combined: Some("{customer}/packages/{family}/{distro}/{package}".into()),
            branch: "{version}".into(),
        },
    ]
}

/// What a project holds for the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Code,
    Packaging,
    /// Code and packaging in one project.
    Combined,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Code => "code",
            Role::Packaging => "packaging",
            Role::Combined => "combined code and packaging",
        })
    }
}

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

/// The compiled mapping rules, tried in order.
#[derive(Debug, Clone)]
pub struct Mapping {
    rules: Vec<Rule>,
}

impl Mapping {
    /// Compiles rules; `None` means the defaults. An error carries the rule's index.
    pub fn compile(specs: Option<&[RuleSpec]>) -> Result<Self, (usize, RuleError)> {
        let defaults;
        let specs = match specs {
            Some(specs) => specs,
            None => {
                defaults = default_rules();
                &defaults
            }
        };
        let rules = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| Rule::compile(spec).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

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
            return rule.resolve(farm, role, &values, branch);
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
