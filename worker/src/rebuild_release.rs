//! `perestroika-worker rebuild-release`: every package of a release snapshot rebuilt on this
//! host (see [`crate::rebuild`]), each printed as it ends, then whether all were identical.

use std::path::PathBuf;
use std::time::Duration;

use perestroika_config::settings::Release;
use perestroika_config::FarmConfig;

use crate::container::SandboxError;
use crate::rebuild::{self, PackageReport, RebuildError, Rebuilt};
use crate::steps::BuildEnv;

/// A release snapshot was not rebuilt identically, or not at all.
#[derive(Debug, thiserror::Error)]
pub enum RebuildReleaseError {
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Report(#[from] serde_json::Error),
    /// The snapshot could not be read from `[public] url`, or is not what the keys signed.
    #[error("reading the snapshot from [public] url: {0}")]
    Published(#[from] perestroika_published::ReadError),
    #[error("{customer} {version}: {reason}")]
    Remote {
        customer: String,
        version: String,
        reason: String,
    },
    /// Some packages failed or differ from the published ones (each is reported).
    #[error("{bad} of {total} packages did not rebuild identically")]
    NotIdentical { bad: usize, total: usize },
}

/// Which snapshot of which release to rebuild, and where to.
#[derive(Debug, Clone)]
pub struct Request {
    /// The customer (as in `[[customers]] name`).
    pub customer: String,
    /// The release series.
    pub version: String,
    /// The snapshot; the live one when `None`.
    pub snapshot: Option<u64>,
    /// Where the rebuilds go; `<state>/rebuild/<customer>/<version>/<snapshot>` when `None`.
    pub out: Option<PathBuf>,
}

/// Rebuilds every distro of `release` from the snapshot asked for, printing each package as
/// it ends (or, with `json`, every report at the end). Fails unless every package rebuilt
/// identically.
pub async fn run(
    farm: &FarmConfig,
    release: &Release,
    request: Request,
    json: bool,
) -> Result<(), RebuildReleaseError> {
    let Request {
        customer,
        version,
        snapshot,
        out,
    } = request;
    let timeout = Duration::from_secs(farm.build.timeout_secs);
    let env = BuildEnv::local(&farm.build, farm.build.package_cache.as_deref(), timeout)?
        .with_registry_of(farm);
    // Over http the snapshot is first copied here, verified; removed when done.
    let copies = env
        .scratch
        .join(format!("published-rebuild-{}", std::process::id()));
    let found = match farm.public.url {
        None => rebuild::snapshot_dir(&farm.paths.public_root, &customer, &version, snapshot)
            .map_err(RebuildReleaseError::from),
        Some(_) => {
            let _ = fs_err::remove_dir_all(&copies);
            let copied = copy_snapshot(farm, release, &customer, &version, snapshot, &copies).await;
            if copied.is_err() {
                let _ = fs_err::remove_dir_all(&copies);
            }
            copied
        }
    };
    let (number, dir) = found?;
    let result = rebuild_from(
        farm, release, &env, &customer, &version, number, &dir, out, json,
    )
    .await;
    let _ = fs_err::remove_dir_all(&copies);
    result
}

/// Copies snapshot `snapshot` (the live one when `None`) of a release from `[public] url`
/// below `dest`, every suite of its deb distros verified by the snapshot's own signed
/// `InRelease` (see `perestroika_published::Reader::live_snapshot`): its number and the copy.
async fn copy_snapshot(
    farm: &FarmConfig,
    release: &Release,
    customer: &str,
    version: &str,
    snapshot: Option<u64>,
    dest: &std::path::Path,
) -> Result<(u64, PathBuf), RebuildReleaseError> {
    let failed = |reason: String| RebuildReleaseError::Remote {
        customer: customer.to_owned(),
        version: version.to_owned(),
        reason,
    };
    let reader = perestroika_published::Reader::of_farm(farm)?;
    let name = perestroika_tree::TreeName::parse(&format!("{customer}/{version}"))
        .map_err(|e| failed(e.to_string()))?;
    let number = match snapshot {
        Some(n) => n,
        None => reader.live_snapshot(&name).await?.ok_or_else(|| {
            failed(format!(
                "{} serves no live snapshot (nothing was published yet?)",
                reader.source()
            ))
        })?,
    };
    let tree = name.generation(number);
    let mut wanted = Vec::new();
    for (family, distro) in release.distros() {
        if family == perestroika_config::Family::Rpm {
            return Err(failed(format!(
                "rebuilding rpm distro {distro} from [public] url is not supported: run \
                 rebuild-release on a host with the public tree"
            )));
        }
        wanted.push((tree.clone(), distro.to_owned()));
    }
    let cache = dest.join(".cache");
    let copied = crate::steps::remote::copy_deb_suites(
        &reader,
        &wanted,
        dest,
        &cache,
        crate::steps::remote::Contents::WithSources,
    )
    .await?;
    if copied.is_empty() {
        let suites: Vec<String> = wanted.into_iter().map(|(_, suite)| suite).collect();
        let there = reader.snapshots(&name, &suites).await?;
        let there: Vec<String> = there.iter().map(u64::to_string).collect();
        return Err(failed(format!(
            "snapshot {number} does not exist at {} (no signed suite of it there); snapshots \
             there whose signature holds: {}",
            reader.source(),
            if there.is_empty() {
                "none".to_owned()
            } else {
                there.join(", ")
            }
        )));
    }
    Ok((number, dest.join(&tree)))
}

/// Rebuilds every distro of `release` from the snapshot in `dir`.
#[allow(clippy::too_many_arguments)]
async fn rebuild_from(
    farm: &FarmConfig,
    release: &Release,
    env: &BuildEnv,
    customer: &str,
    version: &str,
    number: u64,
    dir: &std::path::Path,
    out: Option<PathBuf>,
    json: bool,
) -> Result<(), RebuildReleaseError> {
    let out = out.unwrap_or_else(|| {
        farm.paths
            .state
            .join("rebuild")
            .join(customer)
            .join(version)
            .join(number.to_string())
    });
    if !json {
        println!(
            "rebuilding snapshot {number} of {customer} {version} into {}",
            out.display()
        );
    }
    let mut reports = Vec::new();
    for (family, distro) in release.distros() {
        let pinned = release.base_digests.get(distro).map(String::as_str);
        let made = rebuild::rebuild(env, dir, family, distro, pinned, &out.join(distro), |r| {
            if !json {
                println!("{:<32} {:<28} {}", r.source, r.version, outcome(r));
            }
        })
        .await?;
        reports.extend(made);
    }
    let bad = reports.iter().filter(|r| !identical(r)).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!(
            "{} of {} packages rebuilt bit-identically",
            reports.len() - bad,
            reports.len()
        );
    }
    if bad > 0 {
        return Err(RebuildReleaseError::NotIdentical {
            bad,
            total: reports.len(),
        });
    }
    Ok(())
}

fn identical(r: &PackageReport) -> bool {
    matches!(
        r.outcome,
        Rebuilt::Succeeded {
            identical: true,
            ..
        }
    )
}

/// One package's outcome in words: `rebuilt, identical`, `rebuilt, DIFFERS: …`, `FAILED at …`.
fn outcome(r: &PackageReport) -> String {
    match &r.outcome {
        Rebuilt::Succeeded {
            identical: true, ..
        } => "rebuilt, identical".to_owned(),
        Rebuilt::Succeeded {
            differing,
            unmatched,
            ..
        } => format!(
            "rebuilt, DIFFERS: {}",
            differing
                .iter()
                .chain(unmatched)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Rebuilt::Failed { step, missing, .. } if !missing.is_empty() => {
            format!("FAILED at {step}: the release lacks {}", missing.join(", "))
        }
        Rebuilt::Failed { step, reason, .. } => format!("FAILED at {step}: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Rebuilt) -> PackageReport {
        PackageReport {
            source: "greet".into(),
            version: "1.0".into(),
            distro: "bookworm".into(),
            outcome,
            out_dir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn each_outcome_reads_as_it_is() {
        let same = report(Rebuilt::Succeeded {
            identical: true,
            differing: vec![],
            unmatched: vec![],
        });
        assert!(identical(&same));
        assert_eq!(outcome(&same), "rebuilt, identical");
        let differs = report(Rebuilt::Succeeded {
            identical: false,
            differing: vec!["greet_1.0_amd64.deb".into()],
            unmatched: vec!["greet-doc_1.0_all.deb".into()],
        });
        assert!(!identical(&differs));
        assert_eq!(
            outcome(&differs),
            "rebuilt, DIFFERS: greet_1.0_amd64.deb, greet-doc_1.0_all.deb"
        );
        let lacking = report(Rebuilt::Failed {
            step: "build-deps".into(),
            reason: "unsatisfiable".into(),
            missing: vec!["libfoo-dev".into()],
        });
        assert_eq!(
            outcome(&lacking),
            "FAILED at build-deps: the release lacks libfoo-dev"
        );
        let failed = report(Rebuilt::Failed {
            step: "build".into(),
            reason: "make: *** Error 2".into(),
            missing: vec![],
        });
        assert_eq!(outcome(&failed), "FAILED at build: make: *** Error 2");
    }
}
