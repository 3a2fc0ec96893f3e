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
    let (number, dir) =
        rebuild::snapshot_dir(&farm.paths.public_root, &customer, &version, snapshot)?;
    let out = out.unwrap_or_else(|| {
        farm.paths
            .state
            .join("rebuild")
            .join(&customer)
            .join(&version)
            .join(number.to_string())
    });
    let timeout = Duration::from_secs(farm.build.timeout_secs);
    let env = BuildEnv::local(&farm.build, farm.build.package_cache.as_deref(), timeout)?
        .with_registry_of(farm);
    if !json {
        println!(
            "rebuilding snapshot {number} of {customer} {version} into {}",
            out.display()
        );
    }
    let mut reports = Vec::new();
    for (family, distro) in release.distros() {
        let pinned = release.base_digests.get(distro).map(String::as_str);
        let made = rebuild::rebuild(&env, &dir, family, distro, pinned, &out.join(distro), |r| {
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
