//! Build dependencies: the release's repositories mounted read-only into the container, and
//! a family's dependency script run as root with the package cache relay open.

use perestroika_tree::GenerationDir;
use std::path::Path;

use perestroika_config::Family;

use super::env::BuildEnv;
use super::failure::Step;
use super::request::{BuildRequest, DepRepo};
use crate::container::buildlog::BuildLog;
use crate::container::sandbox::{As, Sandbox};

/// Where the dependency repositories are seen inside the build container.
pub(crate) struct DepMount {
    /// (host directory, container directory), read-only.
    pub bind: (String, String),
    /// (tree inside the container, suite) of each repository that exists.
    pub repos: Vec<(String, String)>,
}

/// Where the container sees the directory holding the customer's public trees.
const RELEASES_INSIDE: &str = "/srv/releases";

/// The repositories of `req` that hold a signed repository of `family` now. Looked at once,
/// before the container is made: what is mounted and what the dependency step lists must be
/// the same (a release's first generation may appear in between).
pub(crate) fn present_repos(req: &BuildRequest, family: Family) -> Vec<DepRepo> {
    req.dep_repos
        .iter()
        .filter(|r| has_repo(&r.tree, family, &r.suite))
        .cloned()
        .collect()
}

/// Where `present` ([`present_repos`]) are seen in the container. The customer's directory is
/// mounted read-only, not each tree alone: a tree is a link to its current generation, and a
/// generation's package files link to the pool beside the generations. A snapshot
/// (`<customer>/.<version>.gen/<N>`) and a review tree (`<customer>/review/<name>`) are seen
/// below the same mount.
pub(crate) fn dep_mount(present: &[DepRepo]) -> Option<DepMount> {
    let parent = present.first()?.tree.parent()?;
    let parent_name = parent.file_name()?.to_str()?;
    let snapshot = perestroika_tree::is_generations_dir_name(parent_name);
    let customer_dir = if snapshot || parent_name == "review" {
        parent.parent()?
    } else {
        parent
    };
    let repos = present
        .iter()
        .filter_map(|r| {
            let rel = r.tree.strip_prefix(customer_dir).ok()?;
            Some((
                format!("{RELEASES_INSIDE}/{}", rel.display()),
                r.suite.clone(),
            ))
        })
        .collect();
    Some(DepMount {
        bind: (
            customer_dir.display().to_string(),
            RELEASES_INSIDE.to_owned(),
        ),
        repos,
    })
}

/// Whether `tree` holds a signed repository of `family` for `suite`.
fn has_repo(tree: &Path, family: Family, suite: &str) -> bool {
    if !GenerationDir::new(tree).key().is_file() {
        return false;
    }
    match family {
        Family::Deb => GenerationDir::new(tree)
            .deb_suite(suite)
            .join("InRelease")
            .is_file(),
        Family::Rpm => fs_err::read_dir(GenerationDir::new(tree).rpm().join(suite))
            .map(|arches| {
                arches
                    .filter_map(Result::ok)
                    .any(|a| a.path().join("repodata/repomd.xml").is_file())
            })
            .unwrap_or(false),
    }
}

/// Runs a family's dependency script as root with the package cache relay open (closed again
/// before anything else runs), as
/// `deps <distro> <relay's proxy URL or ""> [<tree inside the container> <suite>]…`.
pub(crate) async fn install_deps(
    env: &BuildEnv,
    req: &BuildRequest,
    sandbox: &Sandbox,
    script: &str,
    log: &mut BuildLog,
) -> Result<(), Step> {
    // `req.dep_repos` are those found present when the container was made.
    let repos = dep_mount(&req.dep_repos)
        .map(|m| m.repos)
        .unwrap_or_default();
    let relay = match &env.package_cache {
        Some(cache) => Some(sandbox.relay(cache).await?),
        None => {
            log.note("no package cache (build.package_cache): no network while the build dependencies are installed");
            None
        }
    };
    let proxy = relay.as_ref().map(|r| r.proxy_url()).unwrap_or_default();
    let mut args = vec!["sh", "-c", script, "deps", &req.distro, &proxy];
    for (tree, suite) in &repos {
        args.push(tree);
        args.push(suite);
    }
    let code = sandbox.exec(As::Root, &args, &[], None, log).await;
    // Closed before anything else of the build runs.
    drop(relay);
    let code = code?;
    if code != 0 {
        return Err(Step::failed(
            "build-deps",
            log,
            "the build dependencies could not be installed",
        ));
    }
    Ok(())
}
