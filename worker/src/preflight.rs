//! What the worker needs to run, checked by `check` and before `run` takes a job.

use std::collections::BTreeSet;

use perestroika_config::preflight::Report;
use perestroika_config::{Family, FarmConfig};
use perestroika_protocol::Stage;

use crate::container::{self, relay};
use crate::image;

/// A package cache URL the build relay can use, Docker, and (without `[images] registry`) a
/// base image for every distro of every release. A missing image is a warning: `perestroika-worker image build` makes it,
/// and until then builds for that distro fail with the same advice.
pub async fn preflight(farm: &FarmConfig) -> Report {
    let mut report = perestroika_protocol::queues::consuming_report(farm, "worker", Stage::Build);
    if let Some(url) = &farm.build.package_cache {
        if let Err(e) = relay::cache_address(url) {
            report.error(Some("build.package_cache"), e.to_string());
        }
    }
    if farm.worker.serve_staging.is_some() {
        for tool in ["rsync", "setpriv"] {
            if !perestroika_host::command::on_path(tool) {
                report.error(
                    Some("worker.serve_staging"),
                    format!("{tool} is not installed; the staging daemon needs it (apt-get install rsync util-linux)"),
                );
            }
        }
    }
    let distros: BTreeSet<(Family, &str)> =
        farm.releases().flat_map(|(_, r)| r.distros()).collect();
    let docker = match container::connect() {
        Ok(docker) => docker,
        Err(e) => {
            report.error(None, format!("{e}; the worker builds in Docker containers"));
            return report;
        }
    };
    if let Some(registry) = &farm.images.registry {
        // Resolved when a job is taken: a registry down now must not keep the worker from
        // building with the digests it resolved before.
        report.note(format!(
            "base images come from the registry {registry}, pulled by digest as jobs arrive"
        ));
        return report;
    }
    for (family, distro) in distros {
        let users: Vec<String> = farm
            .releases()
            .filter(|(_, r)| r.family_of(distro).is_some())
            .map(|(c, r)| format!("{} {}", c.name, r.name))
            .collect();
        match image::latest(&docker, distro).await {
            Ok(Some(img)) if img.family == family => {
                report.note(format!("{family} distro {distro} builds in {}", img.tag))
            }
            Ok(Some(img)) => report.error(
                None,
                format!(
                    "distro {distro} is a {family} distro of {}, but its base image {} builds \
                     {}; list it under `{}` or rebuild the image",
                    users.join(", "),
                    img.tag,
                    img.family,
                    img.family
                ),
            ),
            Ok(None) => {
                let rpm = if family == Family::Rpm { " --rpm" } else { "" };
                report.warn(
                    None,
                    format!(
                        "no base image for {family} distro {distro} (of {}): its builds fail \
                         until `perestroika-worker image build --distro {distro}{rpm}` makes \
                         one (or fix the distro's name)",
                        users.join(", ")
                    ),
                )
            }
            Err(e) => {
                report.error(None, format!("{e}; the worker builds in Docker containers"));
                break;
            }
        }
    }
    report
}
