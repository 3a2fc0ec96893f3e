//! One compiled mapping rule: which projects it matches and what they resolve to.

use std::collections::BTreeMap;

use super::template::{Template, TemplateError};
use super::{ProjectMatch, Role, RuleSpec, Unmapped};
use crate::names::{check_token, NameError};
use crate::settings::{Family, FarmConfig};

/// What is wrong with a mapping rule of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("rule {rule:?}: `code` and `packaging` must use the same placeholders")]
    Placeholders { rule: String },
    #[error("rule {rule:?}: expected either `code` and `packaging`, or `combined`")]
    Projects { rule: String },
    #[error("rule {rule:?}: the project template must contain {{{needed}}}")]
    Needs { rule: String, needed: &'static str },
    #[error("rule {rule:?}: the branch or project template must contain {{version}}")]
    NoVersion { rule: String },
}

#[derive(Debug, Clone)]
pub(super) enum Projects {
    Split { code: Template, packaging: Template },
    Combined(Template),
}

#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) name: String,
    projects: Projects,
    pub(super) branch: Template,
}

impl Rule {
    pub(super) fn compile(spec: &RuleSpec) -> Result<Self, RuleError> {
        check_token("rule name", &spec.name)?;
        let projects = match (&spec.code, &spec.packaging, &spec.combined) {
            (Some(code), Some(packaging), None) => {
                let code = Template::compile(code)?;
                let packaging = Template::compile(packaging)?;
                if code.placeholders != packaging.placeholders {
                    return Err(RuleError::Placeholders {
                        rule: spec.name.clone(),
                    });
                }
                Projects::Split { code, packaging }
            }
            (None, None, Some(combined)) => Projects::Combined(Template::compile(combined)?),
            _ => {
                return Err(RuleError::Projects {
                    rule: spec.name.clone(),
                })
            }
        };
        let branch = Template::compile(&spec.branch)?;
        let project = match &projects {
            Projects::Split { code, .. } => code,
            Projects::Combined(t) => t,
        };
        for needed in ["customer", "package"] {
            if !project.placeholders.contains(needed) {
                return Err(RuleError::Needs {
                    rule: spec.name.clone(),
                    needed,
                });
            }
        }
        if !project.placeholders.contains("version") && !branch.placeholders.contains("version") {
            return Err(RuleError::NoVersion {
                rule: spec.name.clone(),
            });
        }
        Ok(Self {
            name: spec.name.clone(),
            projects,
            branch,
        })
    }

    pub(super) fn match_project(&self, project: &str) -> Option<(Role, BTreeMap<String, String>)> {
        match &self.projects {
            Projects::Split { code, packaging } => code
                .captures(project)
                .map(|v| (Role::Code, v))
                .or_else(|| packaging.captures(project).map(|v| (Role::Packaging, v))),
            Projects::Combined(t) => t.captures(project).map(|v| (Role::Combined, v)),
        }
    }

    pub(super) fn resolve(
        &self,
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
                rule: self.name.clone(),
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
        let (code_project, packaging_project) = match &self.projects {
            Projects::Split { code, packaging } => (code.render(values), packaging.render(values)),
            Projects::Combined(t) => (t.render(values), t.render(values)),
        };
        Ok(ProjectMatch {
            rule: self.name.clone(),
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
}
