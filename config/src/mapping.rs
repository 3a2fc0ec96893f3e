//! From a Gerrit project and branch to customer, version, package and role.
//!
//! A rule is a set of templates with `{placeholder}` path elements. `{customer}`, `{package}`,
//! `{version}`, `{distro}` and `{family}` carry meaning; any other name matches one path element
//! and is ignored (e.g. `{series}` for the OpenStack release name in a branch).

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::names::{check_token, NameError};
use crate::settings::{Family, FarmConfig};

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

#[derive(Debug, Clone)]
struct Template {
    source: String,
    regex: Regex,
    placeholders: BTreeSet<String>,
}

impl Template {
    fn compile(source: &str) -> Result<Self, String> {
        let mut pattern = String::from("^");
        let mut placeholders = BTreeSet::new();
        for (i, part) in source.split('/').enumerate() {
            if i > 0 {
                pattern.push('/');
            }
            let mut rest = part;
            while let Some(open) = rest.find('{') {
                pattern.push_str(&regex::escape(&rest[..open]));
                let close = rest[open..]
                    .find('}')
                    .ok_or_else(|| format!("template {source:?} has an unclosed `{{`"))?
                    + open;
                let name = &rest[open + 1..close];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "template {source:?}: placeholder {{{name}}} must be letters, digits or _"
                    ));
                }
                if !placeholders.insert(name.to_owned()) {
                    return Err(format!("template {source:?} uses {{{name}}} twice"));
                }
                pattern.push_str(&format!("(?P<{name}>[^/]+)"));
                rest = &rest[close + 1..];
            }
            if rest.contains('}') {
                return Err(format!("template {source:?} has a stray `}}`"));
            }
            pattern.push_str(&regex::escape(rest));
        }
        pattern.push('$');
        let regex = Regex::new(&pattern).map_err(|e| format!("template {source:?}: {e}"))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
            placeholders,
        })
    }

    fn captures(&self, text: &str) -> Option<BTreeMap<String, String>> {
        let caps = self.regex.captures(text)?;
        Some(
            self.placeholders
                .iter()
                .map(|name| (name.clone(), caps[name.as_str()].to_owned()))
                .collect(),
        )
    }

    fn render(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = self.source.clone();
        for name in &self.placeholders {
            out = out.replace(&format!("{{{name}}}"), &values[name]);
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Projects {
    Split { code: Template, packaging: Template },
    Combined(Template),
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    projects: Projects,
    branch: Template,
}

/// The compiled mapping rules, tried in order.
#[derive(Debug, Clone)]
pub struct Mapping {
    rules: Vec<Rule>,
}

impl Mapping {
    /// Compiles rules; `None` means the defaults. An error carries the rule's index.
    pub fn compile(specs: Option<&[RuleSpec]>) -> Result<Self, (usize, String)> {
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

impl Rule {
    fn compile(spec: &RuleSpec) -> Result<Self, String> {
        check_token("rule name", &spec.name).map_err(|e| e.to_string())?;
        let projects = match (&spec.code, &spec.packaging, &spec.combined) {
            (Some(code), Some(packaging), None) => {
                let code = Template::compile(code)?;
                let packaging = Template::compile(packaging)?;
                if code.placeholders != packaging.placeholders {
                    return Err(format!(
                        "rule {:?}: `code` and `packaging` must use the same placeholders",
                        spec.name
                    ));
                }
                Projects::Split { code, packaging }
            }
            (None, None, Some(combined)) => Projects::Combined(Template::compile(combined)?),
            _ => {
                return Err(format!(
                    "rule {:?}: expected either `code` and `packaging`, or `combined`",
                    spec.name
                ))
            }
        };
        let branch = Template::compile(&spec.branch)?;
        let project = match &projects {
            Projects::Split { code, .. } => code,
            Projects::Combined(t) => t,
        };
        for needed in ["customer", "package"] {
            if !project.placeholders.contains(needed) {
                return Err(format!(
                    "rule {:?}: the project template must contain {{{needed}}}",
                    spec.name
                ));
            }
        }
        if !project.placeholders.contains("version") && !branch.placeholders.contains("version") {
            return Err(format!(
                "rule {:?}: the branch or project template must contain {{version}}",
                spec.name
            ));
        }
        Ok(Self {
            name: spec.name.clone(),
            projects,
            branch,
        })
    }

    fn match_project(&self, project: &str) -> Option<(Role, BTreeMap<String, String>)> {
        match &self.projects {
            Projects::Split { code, packaging } => code
                .captures(project)
                .map(|v| (Role::Code, v))
                .or_else(|| packaging.captures(project).map(|v| (Role::Packaging, v))),
            Projects::Combined(t) => t.captures(project).map(|v| (Role::Combined, v)),
        }
    }

    fn resolve(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn farm() -> FarmConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/farm.toml");
        FarmConfig::load_with_env(&path, Vec::new()).unwrap()
    }

    fn resolve(project: &str, branch: &str) -> Result<ProjectMatch, Unmapped> {
        let farm = farm();
        farm.mapping().unwrap().resolve(&farm, project, branch)
    }

    #[test]
    fn split_code_project() {
        let m = resolve("acme/openstack/nova", "openstack-ci/fuel-9.0/mitaka").unwrap();
        assert_eq!(m.rule, "openstack");
        assert_eq!((m.customer.as_str(), m.version.as_str()), ("acme", "9.0"));
        assert_eq!(m.package, "nova");
        assert_eq!(m.role, Role::Code);
        assert_eq!(m.code_project, "acme/openstack/nova");
        assert_eq!(m.packaging_project, "acme/openstack-build/nova");
        assert_eq!(m.distro, None);
        assert_eq!(m.branch, "openstack-ci/fuel-9.0/mitaka");
    }

    #[test]
    fn split_packaging_project_with_full_ref() {
        let m = resolve(
            "acme/openstack-build/nova",
            "refs/heads/openstack-ci/fuel-10.0/newton",
        )
        .unwrap();
        assert_eq!(m.role, Role::Packaging);
        assert_eq!(m.version, "10.0");
        assert_eq!(m.code_project, "acme/openstack/nova");
        assert_eq!(m.branch, "openstack-ci/fuel-10.0/newton");
    }

    #[test]
    fn combined_project() {
        let m = resolve("acme/packages/deb/bookworm/hello", "9.0").unwrap();
        assert_eq!(m.rule, "packages");
        assert_eq!(m.role, Role::Combined);
        assert_eq!(m.distro.as_deref(), Some("bookworm"));
        assert_eq!(m.family, Some(Family::Deb));
        assert_eq!(m.code_project, m.packaging_project);
        let m = resolve("acme/packages/centos/el9/hello", "refs/heads/9.0").unwrap();
        assert_eq!(m.family, Some(Family::Rpm));
    }

    #[test]
    fn unknown_projects_and_branches_say_why() {
        let e = resolve("other/thing", "master").unwrap_err();
        assert!(e.to_string().contains("no mapping rule matches"), "{e}");
        let e = resolve("acme/openstack/nova", "master").unwrap_err();
        assert!(
            e.to_string().contains("branch \"master\" does not match"),
            "{e}"
        );
        let e = resolve("initech/openstack/nova", "openstack-ci/fuel-9.0/mitaka").unwrap_err();
        assert!(
            e.to_string()
                .contains("customer \"initech\" is not configured"),
            "{e}"
        );
        let e = resolve("acme/openstack/nova", "openstack-ci/fuel-8.0/liberty").unwrap_err();
        assert!(
            e.to_string().contains("version \"8.0\"") && e.to_string().contains("9.0, 10.0"),
            "{e}"
        );
        let e = resolve("acme/packages/deb/trusty/hello", "9.0").unwrap_err();
        assert!(e.to_string().contains("distro \"trusty\""), "{e}");
        let e = resolve("acme/packages/rpm/bookworm/hello", "9.0").unwrap_err();
        assert!(e.to_string().contains("family rpm"), "{e}");
        let e = resolve("acme/openstack/nova", "refs/tags/9.0").unwrap_err();
        assert!(e.to_string().contains("not a branch"), "{e}");
    }

    #[test]
    fn bad_rules_are_refused() {
        let spec = |code: Option<&str>, combined: Option<&str>, branch: &str| RuleSpec {
            name: "r".into(),
            code: code.map(Into::into),
            packaging: code.map(|c| c.replace("code", "pkg")),
            combined: combined.map(Into::into),
            branch: branch.into(),
        };
        let compile = |s: RuleSpec| Mapping::compile(Some(&[s])).map(|_| ()).unwrap_err().1;
        assert!(compile(spec(None, None, "{version}")).contains("either"));
        assert!(compile(spec(None, Some("{customer}/{package"), "{version}")).contains("unclosed"));
        assert!(compile(spec(None, Some("{customer}/x"), "{version}")).contains("{package}"));
        assert!(compile(spec(
            None,
            Some("{customer}/{package}/{customer}"),
            "{version}"
        ))
        .contains("twice"));
        let mut mismatched = spec(Some("{customer}/code/{package}"), None, "{version}");
        mismatched.packaging = Some("{customer}/pkg/{package}/{distro}".into());
        assert!(compile(mismatched).contains("same placeholders"));
    }

    #[test]
    fn literal_parts_are_not_patterns() {
        let rules = [RuleSpec {
            name: "dots".into(),
            code: None,
            packaging: None,
            combined: Some("{customer}/pkg.{package}".into()),
            branch: "rel-{version}".into(),
        }];
        let mut farm = farm();
        farm.mapping = Some(rules.to_vec());
        let mapping = farm.mapping().unwrap();
        assert!(mapping.resolve(&farm, "acme/pkg.hello", "rel-9.0").is_ok());
        assert!(mapping.resolve(&farm, "acme/pkgXhello", "rel-9.0").is_err());
    }
}
