//! One compiled mapping rule: which projects it matches and what they resolve to.

use std::collections::BTreeMap;

use super::template::{Template, TemplateError};
use super::{Role, RuleSpec};
use crate::names::{check_token, NameError};

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
pub(crate) enum Projects {
    Split { code: Template, packaging: Template },
    Combined(Template),
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) projects: Projects,
    pub(crate) branch: Template,
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

    pub(crate) fn match_project(&self, project: &str) -> Option<(Role, BTreeMap<String, String>)> {
        match &self.projects {
            Projects::Split { code, packaging } => code
                .captures(project)
                .map(|v| (Role::Code, v))
                .or_else(|| packaging.captures(project).map(|v| (Role::Packaging, v))),
            Projects::Combined(t) => t.captures(project).map(|v| (Role::Combined, v)),
        }
    }
}
