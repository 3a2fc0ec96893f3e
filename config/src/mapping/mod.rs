//! From a Gerrit project and branch to customer, version, package and role.
//!
//! A rule is a set of templates with `{placeholder}` path elements. `{customer}`, `{package}`,
//! `{version}`, `{distro}` and `{family}` carry meaning; any other name matches one path element
//! and is ignored (e.g. `{series}` for the OpenStack release name in a branch).

use serde::{Deserialize, Serialize};

pub(crate) mod rule;
pub(crate) mod template;
#[cfg(test)]
mod tests;

pub(crate) use rule::Rule;
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

/// The compiled mapping rules, tried in order.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub(crate) rules: Vec<Rule>,
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
}
