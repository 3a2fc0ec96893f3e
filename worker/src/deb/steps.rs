//! The deb steps inside a build container: the source tree laid out as the builder (a `.dsc`
//! unpacked by `dpkg-source`) and its control file checked, build dependencies installed by apt
//! through the package cache relay, then the network off and `dpkg-buildpackage` as the
//! builder.

use std::time::Instant;

use super::source::PreparedSource;
use crate::container::buildlog::BuildLog;
use crate::container::sandbox::{As, Sandbox};
use crate::steps::deps::install_deps;
use crate::steps::failure::Step;
use crate::steps::input::send_input;
use crate::steps::results::{build_offline, record_build_root, Built, Offline};
use crate::steps::{BuildEnv, BuildRequest};

const PREPARE: &str = include_str!("../../scripts/deb/prepare.sh");
const DEPS: &str = include_str!("../../scripts/deb/deps.sh");
const BUILD: &str = include_str!("../../scripts/deb/build.sh");
const COLLECT: &str = include_str!("../../scripts/deb/collect.sh");

/// The deb steps inside the container.
pub(crate) async fn in_container(
    env: &BuildEnv,
    req: &BuildRequest,
    sandbox: &Sandbox,
    prepared: &PreparedSource,
    log: &mut BuildLog,
    timings: &mut Vec<(&'static str, f64)>,
) -> Result<Built, Step> {
    let t = Instant::now();
    send_input(sandbox, &prepared.dir, log).await?;
    let dsc = prepared.dsc.as_deref().unwrap_or("");
    let code = sandbox
        .exec(
            As::Builder,
            &["sh", "-c", PREPARE, "prepare", prepared.layout, dsc],
            &[],
            None,
            log,
        )
        .await?;
    if code != 0 {
        let step = if code == 3 { "control" } else { "unpack" };
        return Err(Step::failed(step, log, "preparing the source tree failed"));
    }
    timings.push(("unpack", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    install_deps(env, req, sandbox, DEPS, log).await?;
    timings.push(("build-deps", t.elapsed().as_secs_f64()));
    let root_list = record_build_root(
        sandbox,
        &[
            "dpkg-query",
            "-W",
            "-f=${Package} ${Version} ${Architecture}\\n",
        ],
        &req.out_dir,
        log,
    )
    .await?;

    let artifacts = build_offline(
        sandbox,
        Offline {
            build: &["sh", "-c", BUILD, "build", prepared.build_type],
            env: &[],
            step: "dpkg-buildpackage",
            collect: &["sh", "-c", COLLECT],
            out_dir: &req.out_dir,
            root_list: &root_list,
        },
        &env.settings,
        log,
        timings,
    )
    .await?;
    Ok(Built {
        artifacts,
        version: prepared.version.clone(),
    })
}
