//! The rpm steps inside a build container, the way mock runs them: the source rpm first
//! (`rpmbuild -bs`, as the builder), build dependencies with `dnf builddep` from the source
//! rpm (root reads only its header) and, for dynamic ones, from what `rpmbuild -br` asks for,
//! then the network off and `rpmbuild -ba` as the builder with SOURCE_DATE_EPOCH set.

use std::time::Instant;

use super::source::PreparedRpm;
use crate::container::buildlog::BuildLog;
use crate::container::sandbox::{As, Sandbox};
use crate::steps::deps::install_deps;
use crate::steps::failure::{fail, Step};
use crate::steps::input::send_input;
use crate::steps::results::{build_offline, record_build_root, Built, Offline};
use crate::steps::{BuildEnv, BuildRequest};

const PREPARE: &str = include_str!("../../scripts/rpm/prepare.sh");
const BUILDREQS: &str = include_str!("../../scripts/rpm/buildreqs.sh");
const DEPS: &str = include_str!("../../scripts/rpm/deps.sh");
const BUILD: &str = include_str!("../../scripts/rpm/build.sh");
const COLLECT: &str = include_str!("../../scripts/rpm/collect.sh");
const INSTALLED: &str = include_str!("../../scripts/rpm/installed.sh");

/// rpmbuild's exit code when build dependencies are missing.
const MISSING_DEPS: i64 = 11;
/// Rounds of dynamic build dependencies before giving up (each round may reveal more).
const MAX_DEP_ROUNDS: usize = 5;

/// Runs the rpm build of `prepared` in `sandbox`.
pub(crate) async fn in_container(
    env: &BuildEnv,
    req: &BuildRequest,
    sandbox: &Sandbox,
    prepared: &PreparedRpm,
    log: &mut BuildLog,
    timings: &mut Vec<(&'static str, f64)>,
) -> Result<Built, Step> {
    let epoch = prepared.source_date_epoch.map(|e| e.to_string());
    let env_vars: Vec<(&str, &str)> = epoch
        .as_deref()
        .map(|e| vec![("SOURCE_DATE_EPOCH", e)])
        .unwrap_or_default();

    let t = Instant::now();
    send_input(sandbox, &prepared.dir, log).await?;
    let release = prepared.release.as_deref().unwrap_or("");
    let code = sandbox
        .exec(
            As::Builder,
            &[
                "sh",
                "-c",
                PREPARE,
                "prepare",
                prepared.layout,
                &prepared.file,
                release,
            ],
            &env_vars,
            None,
            log,
        )
        .await?;
    if code != 0 {
        let step = if code == 3 { "spec" } else { "unpack" };
        return Err(Step::failed(
            step,
            log,
            "preparing the spec and its sources failed",
        ));
    }
    let (_, nevr) = sandbox
        .exec_capture(As::Builder, &["cat", "/build/work/nevr"], 4096, log)
        .await?;
    let nevr = String::from_utf8_lossy(&nevr).trim().to_owned();
    let version = nevr
        .split_once(' ')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let ignores_release = prepared
        .release
        .as_deref()
        .is_some_and(|wanted| !version.contains(wanted));
    if ignores_release {
        return Err(Step::Failed(fail(
            "spec",
            format!(
                "the spec's Release gives {version:?}, not the farm's {release}: write \
                 `Release: %{{perestroika_release}}%{{?dist}}` (or `%autorelease`) in the spec"
            ),
        )));
    }
    timings.push(("unpack", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    install_build_deps(env, req, sandbox, &env_vars, log).await?;
    timings.push(("build-deps", t.elapsed().as_secs_f64()));
    let root_list = record_build_root(sandbox, &["sh", "-c", INSTALLED], &req.out_dir, log).await?;

    // -ba for a given source rpm too: rpmbuild writes the source rpm's build cookie into
    // the binaries only when it makes both (collect keeps the source rpm that was given).
    let what = "-ba";
    let artifacts = build_offline(
        sandbox,
        Offline {
            build: &["sh", "-c", BUILD, "build", what],
            env: &env_vars,
            step: "rpmbuild",
            collect: &["sh", "-c", COLLECT, "collect", prepared.layout],
            out_dir: &req.out_dir,
            root_list: &root_list,
        },
        &env.settings,
        log,
        timings,
    )
    .await?;
    Ok(Built { artifacts, version })
}

/// Asks rpmbuild what is missing and lets dnf install it, until nothing is.
async fn install_build_deps(
    env: &BuildEnv,
    req: &BuildRequest,
    sandbox: &Sandbox,
    env_vars: &[(&str, &str)],
    log: &mut BuildLog,
) -> Result<(), Step> {
    for _ in 0..MAX_DEP_ROUNDS {
        let code = sandbox
            .exec(As::Builder, &["sh", "-c", BUILDREQS], env_vars, None, log)
            .await?;
        match code {
            0 => return Ok(()),
            MISSING_DEPS => {}
            _ => return Err(Step::failed("spec", log, "rpmbuild -br failed")),
        }
        install_deps(env, req, sandbox, DEPS, log).await?;
    }
    Err(Step::failed(
        "build-deps",
        log,
        &format!("build dependencies still missing after {MAX_DEP_ROUNDS} rounds of dnf builddep"),
    ))
}
