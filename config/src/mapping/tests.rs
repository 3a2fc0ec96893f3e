use super::*;
use crate::project::{ProjectMatch, Unmapped};
use crate::settings::{Family, FarmConfig};
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
    let compile = |s: RuleSpec| {
        Mapping::compile(Some(&[s]))
            .map(|_| ())
            .unwrap_err()
            .1
            .to_string()
    };
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
