//! The refusal of a promotion whose package is not in its `from` suite: every suite that
//! has it, and what to do instead.

use perestroika_tree::suite_name;
use std::path::Path;

use perestroika_config::settings::{Release, ReleaseState};
use perestroika_config::Family;
use perestroika_formats::versions::rpm_compare;
use perestroika_protocol::messages::Promotion;

use super::deb_selection::{deb_versions, newest_deb};
use super::rpm_selection::{rpm_origin, suite_rpms, RPM_IDENTITY};
use crate::error::PublishError;
use crate::suite_contents::suite_stanzas;

/// One suite that has the package a promotion asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    distro: String,
    /// The suite's name from `[publish] suites`; `None` for the release suite `<distro>`.
    name: Option<String>,
    /// The version there: the one asked for, else the newest.
    version: String,
}

impl Found {
    fn suite(&self) -> String {
        suite_name(&self.distro, self.name.as_deref())
    }
}

/// Every suite of `distros` — the release suite and `<distro>-<name>` for each of `suites` —
/// that publishes the promotion's package (its version, when one is asked for).
pub(super) fn whereabouts(
    generation: &Path,
    distros: &[(Family, String)],
    suites: &[String],
    p: &Promotion,
) -> Result<Vec<Found>, PublishError> {
    let mut out = Vec::new();
    for (family, distro) in distros {
        for name in std::iter::once(None).chain(suites.iter().map(Some)) {
            let suite = suite_name(distro, name.map(String::as_str));
            let versions: Vec<String> = match family {
                Family::Deb => deb_versions(
                    &suite_stanzas(generation, &suite, true),
                    &suite_stanzas(generation, &suite, false),
                    &p.package,
                )
                .into_iter()
                .collect(),
                Family::Rpm => suite_rpms(generation, &suite, RPM_IDENTITY)?
                    .iter()
                    .filter_map(|(_, _, h)| rpm_origin(h))
                    .filter(|(source, _)| *source == p.package)
                    .map(|(_, v)| v)
                    .collect(),
            };
            let version = match (&p.package_version, family) {
                (Some(wanted), _) => versions.iter().find(|v| *v == wanted).cloned(),
                (None, Family::Deb) => newest_deb(versions.iter().map(String::as_str)),
                (None, Family::Rpm) => versions.into_iter().max_by(|a, b| rpm_compare(a, b)),
            };
            if let Some(version) = version {
                out.push(Found {
                    distro: distro.clone(),
                    name: name.cloned(),
                    version,
                });
            }
        }
    }
    Ok(out)
}

/// The refusal of a promotion whose package is not in its `from` suite: where the package is
/// (`found`), and what to do instead.
pub(super) fn not_in_from(
    p: &Promotion,
    release: &Release,
    tree_name: &str,
    proposed: &str,
    found: &[Found],
) -> PublishError {
    let (what, arg) = match &p.package_version {
        Some(v) => (format!("{} {v}", p.package), format!("{}={v}", p.package)),
        None => (p.package.clone(), p.package.clone()),
    };
    let refusal = |advice: String| PublishError::NotInSuite {
        what: what.clone(),
        from: p.from.clone(),
        tree: tree_name.to_owned(),
        advice,
    };
    if found.is_empty() {
        return refusal(format!(
            "; no suite of {tree_name} has it: a build publishes it first (a merge, or `perestroika-queue retrigger`)"
        ));
    }
    let places: Vec<String> = found
        .iter()
        .map(|f| match f.name {
            Some(_) => format!("{} ({})", f.suite(), f.version),
            None => format!("{} ({}, the release suite)", f.suite(), f.version),
        })
        .collect();
    let mut text = format!("; it is published in {}", places.join(", "));
    let promote = format!(
        "perestroika-queue promote {} {} {arg}",
        p.customer, p.version
    );
    let mut distros: Vec<&str> = found.iter().map(|f| f.distro.as_str()).collect();
    distros.dedup();
    let proposed_suites = distros
        .iter()
        .map(|d| suite_name(d, Some(proposed)))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(other) = found
        .iter()
        .filter_map(|f| f.name.as_deref())
        .find(|name| *name != p.to)
    {
        text.push_str(&format!(
            ". To promote it from there: {promote} --from {other} --to {}",
            p.to
        ));
    } else if found
        .iter()
        .any(|f| f.name.as_deref() == Some(p.to.as_str()))
    {
        text.push_str(&format!(". It is already in {}: nothing to promote", p.to));
    } else if release.state == ReleaseState::Development {
        text.push_str(&format!(
            ". {} {} is in development: its merges publish into the release suite, which every client of the release reads, so there is nothing to promote. Once the release ships, set state = \"maintenance\" for it in [[customers.versions]] and restart the farm's daemons: merges then publish into {proposed_suites}, from where `{promote} --to {}` promotes them",
            p.customer, p.version, p.to
        ));
    } else {
        text.push_str(&format!(
            ". The release suite is read by every client of the release, so there is nothing to promote; the next build of {} (a merge, or `perestroika-queue retrigger`) publishes into {proposed_suites}, from where `{promote} --to {}` promotes it",
            p.package, p.to
        ));
    }
    refusal(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(package: &str, version: Option<&str>) -> Promotion {
        Promotion::new(
            "demo",
            "1.0",
            package,
            version,
            "proposed",
            "updates",
            &[],
            false,
        )
    }

    fn release(state: ReleaseState) -> Release {
        Release {
            name: "1.0".into(),
            state,
            deb: vec!["bookworm".into()],
            rpm: Vec::new(),
            arches: vec!["amd64".into()],
            base_digests: Default::default(),
        }
    }

    fn found(name: Option<&str>, version: &str) -> Found {
        Found {
            distro: "bookworm".into(),
            name: name.map(str::to_owned),
            version: version.into(),
        }
    }

    /// The demo's first promotion: a development release has its packages in the release
    /// suite only; the refusal says so and says how promotion starts.
    #[test]
    fn a_refusal_in_development_names_the_release_suite_and_the_maintenance_state() {
        let text = not_in_from(
            &promotion("greet", None),
            &release(ReleaseState::Development),
            "demo/1.0",
            "proposed",
            &[found(None, "1.0+git1-1+p1.0")],
        )
        .to_string();
        assert!(
            text.starts_with("greet is not published in the proposed suite of demo/1.0; it is published in bookworm (1.0+git1-1+p1.0, the release suite)."),
            "{text}"
        );
        assert!(text.contains("demo 1.0 is in development"), "{text}");
        assert!(text.contains("state = \"maintenance\""), "{text}");
        assert!(text.contains("bookworm-proposed"), "{text}");
        assert!(
            text.contains("`perestroika-queue promote demo 1.0 greet --to updates`"),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_names_another_suite_to_promote_from() {
        let text = not_in_from(
            &promotion("greet", Some("1.1")),
            &release(ReleaseState::Maintenance),
            "demo/1.0",
            "proposed",
            &[found(None, "1.1"), found(Some("holdback"), "1.1")],
        )
        .to_string();
        assert!(
            text.contains(
                "it is published in bookworm (1.1, the release suite), bookworm-holdback (1.1)"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("To promote it from there: perestroika-queue promote demo 1.0 greet=1.1 --from holdback --to updates"),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_says_what_is_already_promoted_or_not_built() {
        let p = promotion("greet", None);
        let maintenance = release(ReleaseState::Maintenance);
        let text = not_in_from(
            &p,
            &maintenance,
            "demo/1.0",
            "proposed",
            &[found(Some("updates"), "1.1")],
        )
        .to_string();
        assert!(
            text.ends_with("It is already in updates: nothing to promote"),
            "{text}"
        );
        let text = not_in_from(
            &p,
            &maintenance,
            "demo/1.0",
            "proposed",
            &[found(None, "1.0")],
        )
        .to_string();
        assert!(text.contains("the next build of greet"), "{text}");
        assert!(text.contains("publishes into bookworm-proposed"), "{text}");
        let text = not_in_from(&p, &maintenance, "demo/1.0", "proposed", &[]).to_string();
        assert!(text.contains("no suite of demo/1.0 has it"), "{text}");
    }
}
