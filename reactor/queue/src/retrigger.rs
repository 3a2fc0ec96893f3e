//! Manual rebuilds: the operator names a Gerrit project and branch (at its head or a commit)
//! or a change and patch set; the jobs are planned exactly as for the matching event, with a
//! rebuild number above every one published, so the rebuilt version sorts higher.

use std::path::Path;

use perestroika_config::names::{check_commit, NameError};
use perestroika_config::settings::{FarmConfig, GerritSettings};
use perestroika_config::Mapping;
use perestroika_formats::build_version::{BuildVersion, RpmRelease};
use perestroika_formats::release_index::{read_index, stanzas};
use perestroika_protocol::messages::{BuildJob, TriggerKind};
use perestroika_tree::GenerationDir;

use perestroika_gerrit::events::{parse_query_line, Event, QueryLine, Stamped};
use perestroika_gerrit::plan::{Action, NotPlanned, NothingToDo, Planner};
use perestroika_gerrit::session::{shell_quote, GerritSession, SshError};

/// Where the rebuild takes its sources from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// A branch's current head.
    Head { project: String, branch: String },
    /// An exact commit of a project's branch.
    Commit {
        project: String,
        branch: String,
        commit: String,
    },
    /// A change's patch set (the current one when `None`): a review build while the change
    /// is open, a release build once it is merged.
    Change { number: u64, patch_set: Option<u32> },
}

/// A manual rebuild cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum RetriggerError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The project, branch or change asks the farm for nothing.
    #[error("nothing to build: {0}")]
    NothingToBuild(Box<NothingToDo>),
    #[error("{project:?} has no branch {branch:?}")]
    NoBranch { project: String, branch: String },
    #[error(transparent)]
    BadCommit(#[from] NameError),
    #[error("Gerrit knows no change {0}")]
    NoChange(u64),
    #[error("change {change} has no patch set {}", patch_set.map_or("(current)".into(), |n| n.to_string()))]
    NoPatchSet { change: u64, patch_set: Option<u32> },
    #[error("the package is not built for distro {distro}")]
    NotForDistro { distro: String },
}

/// The jobs of a manual rebuild, not yet queued.
pub async fn plan(
    farm: &FarmConfig,
    gerrit: &GerritSettings,
    mapping: &Mapping,
    session: &GerritSession,
    at: &At,
    rebuild: Option<u32>,
    distro: Option<&str>,
) -> Result<Vec<BuildJob>, RetriggerError> {
    if let At::Head { project, branch }
    | At::Commit {
        project, branch, ..
    } = at
    {
        mapping
            .resolve(farm, project, branch)
            .map_err(|e| RetriggerError::NothingToBuild(Box::new(NothingToDo::Unmapped(e))))?;
    }
    let event = match at {
        At::Head { project, branch } => {
            let Some(head) = session.branch_head(project, branch).await? else {
                return Err(RetriggerError::NoBranch {
                    project: project.clone(),
                    branch: branch.clone(),
                });
            };
            Event::RefUpdated {
                project: project.clone(),
                refname: format!("refs/heads/{branch}"),
                new_rev: head,
            }
        }
        At::Commit {
            project,
            branch,
            commit,
        } => {
            check_commit(commit)?;
            Event::RefUpdated {
                project: project.clone(),
                refname: format!("refs/heads/{branch}"),
                new_rev: commit.clone(),
            }
        }
        At::Change { number, patch_set } => change_event(session, *number, *patch_set).await?,
    };
    let planner = Planner {
        farm,
        mapping,
        gerrit,
    };
    let stamped = Stamped {
        event,
        created_on: None,
    };
    let actions = planner
        .plan(session, &stamped, false)
        .await
        .map_err(|e| match e {
            NotPlanned::Nothing(why) => RetriggerError::NothingToBuild(why),
            NotPlanned::Lookup(e) => RetriggerError::Ssh(e),
        })?;
    let mut jobs: Vec<BuildJob> = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Build(job) => Some(*job),
            Action::Retire { .. } => None,
        })
        .filter(|job| distro.is_none_or(|d| d == job.distro))
        .collect();
    if jobs.is_empty() {
        return Err(RetriggerError::NotForDistro {
            distro: distro.unwrap_or_default().to_owned(),
        });
    }
    for job in &mut jobs {
        job.rebuild = match rebuild {
            Some(n) => n,
            None => next_rebuild(farm, job),
        };
        job.trigger.kind = TriggerKind::Manual;
        job.job_id = job.compute_id();
    }
    Ok(jobs)
}

async fn change_event(
    session: &GerritSession,
    number: u64,
    patch_set: Option<u32>,
) -> Result<Event, RetriggerError> {
    let command = format!(
        "gerrit query --format=JSON --current-patch-set --patch-sets {}",
        shell_quote(&format!("change:{number}"))
    );
    let out = session.run(&command).await?;
    let row = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| parse_query_line(l).ok())
        .find_map(|l| match l {
            QueryLine::Row(row) if row.change.number == number => Some(row),
            _ => None,
        })
        .ok_or(RetriggerError::NoChange(number))?;
    let wanted = match patch_set {
        None => row.current_patch_set.clone(),
        Some(n) => row
            .patch_sets
            .iter()
            .chain(row.current_patch_set.iter())
            .find(|ps| ps.number == n)
            .cloned(),
    }
    .ok_or(RetriggerError::NoPatchSet {
        change: number,
        patch_set,
    })?;
    let merged = row.change.status.as_deref() == Some("MERGED");
    Ok(if merged {
        // What the branch holds now, which holds the change: a patch set that was merged
        // by a merge commit or rebased was never the branch's state itself.
        Event::ChangeMerged {
            change: row.change,
            patch_set: wanted,
            new_rev: None,
        }
    } else {
        Event::PatchsetCreated {
            change: row.change,
            patch_set: wanted,
        }
    })
}

/// One above the highest rebuild number published for the job's package in its repository
/// (read from the live tree's deb source indexes and its source rpms); 1 when nothing is
/// published yet.
pub fn next_rebuild(farm: &FarmConfig, job: &BuildJob) -> u32 {
    let tree = farm
        .paths
        .public_root
        .join(job.target.tree(&job.customer, &job.version));
    highest_rebuild(&tree, &job.package).map_or(1, |n| n + 1)
}

/// The highest rebuild number among the published versions of a source package, deb or rpm.
fn highest_rebuild(tree: &Path, package: &str) -> Option<u32> {
    let tree = GenerationDir::new(tree);
    highest_deb_rebuild(&tree, package).max(highest_rpm_rebuild(&tree, package))
}

/// The rebuild number of a source rpm of `package` named by the farm's rule
/// (`<package>-<version>-<release>.src.rpm`, the release `git<N>.p<M>.<r>` or `p<N>.<r>`, then
/// the spec's `%{?dist}`, if any); `None` for another package's.
fn rpm_rebuild(file: &str, package: &str) -> Option<u32> {
    let rest = file
        .strip_suffix(".src.rpm")?
        .strip_prefix(package)?
        .strip_prefix('-')?;
    let (version, release) = rest.split_once('-')?;
    if version.is_empty() || release.contains('-') {
        return None;
    }
    Some(RpmRelease::parse(release).ok()?.0.rebuild)
}

/// The highest rebuild number among the source rpms of `package` in every rpm repository of
/// the tree.
fn highest_rpm_rebuild(tree: &GenerationDir, package: &str) -> Option<u32> {
    let mut best = None;
    for repo in fs_err::read_dir(tree.rpm()).ok()?.flatten() {
        let packages = repo.path().join("source").join("Packages");
        for entry in fs_err::read_dir(&packages).into_iter().flatten().flatten() {
            best = best.max(rpm_rebuild(&entry.file_name().to_string_lossy(), package));
        }
    }
    best
}

/// The highest rebuild number among the deb source packages of `package` in the tree.
fn highest_deb_rebuild(tree: &GenerationDir, package: &str) -> Option<u32> {
    let mut best = None;
    for (_, _, index) in tree.deb_source_indexes() {
        let Some(text) = read_index(&index) else {
            continue;
        };
        for stanza in stanzas(&text) {
            if stanza.get("Package").map(String::as_str) != Some(package) {
                continue;
            }
            let Some(version) = stanza.get("Version") else {
                continue;
            };
            let n = BuildVersion::parse(version).map(|v| v.rebuild).ok();
            best = best.max(n);
        }
    }
    best
}

/// A one-line description of a planned job for people.
pub fn describe(job: &BuildJob) -> String {
    let commits: Vec<String> = job
        .sources
        .repos()
        .iter()
        .map(|r| format!("{}@{}", r.project, &r.commit[..r.commit.len().min(12)]))
        .collect();
    format!(
        "{} {} {} for {} into {}, rebuild {}: {}",
        job.customer,
        job.version,
        job.package,
        job.distro,
        job.target,
        job.rebuild,
        commits.join(" + ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn highest_rebuild_from_source_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("deb/dists/bookworm/main/source");
        fs_err::create_dir_all(&source).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        gz.write_all(
            b"Package: greet\nVersion: 1.0+git3-1+p2.0\n\nPackage: greet\nVersion: 1.0+git3-1+p2.4\n\nPackage: other\nVersion: 1.0+p1.9\n",
        )
        .unwrap();
        fs_err::write(source.join("Sources.gz"), gz.finish().unwrap()).unwrap();
        assert_eq!(highest_rebuild(dir.path(), "greet"), Some(4));
        assert_eq!(highest_rebuild(dir.path(), "other"), Some(9));
        assert_eq!(highest_rebuild(dir.path(), "missing"), None);
        assert_eq!(highest_rebuild(&dir.path().join("nothing"), "greet"), None);
    }

    #[test]
    fn rpm_rebuilds_by_the_rule() {
        assert_eq!(
            rpm_rebuild("greet-1.0-git3.p2.6.el9.src.rpm", "greet"),
            Some(6)
        );
        assert_eq!(rpm_rebuild("greet-1.0-p2.6.src.rpm", "greet"), Some(6));
        assert_eq!(rpm_rebuild("greet-motd-1.0-p2.6.src.rpm", "greet"), None);
        assert_eq!(rpm_rebuild("greet-1.0-1.el9.src.rpm", "greet"), None);
        assert_eq!(rpm_rebuild("greet-1.0-p2.6.x86_64.rpm", "greet"), None);
    }

    #[test]
    fn highest_rebuild_from_source_rpms() {
        let dir = tempfile::tempdir().unwrap();
        for (repo, names) in [
            (
                "el9",
                vec![
                    "greet-1.0-git3.p2.0.src.rpm",
                    "greet-1.0-git3.p2.6.el9.src.rpm",
                ],
            ),
            (
                "el9-proposed",
                vec![
                    "greet-1.0-git4.p2.3.src.rpm",
                    "greet-motd-1.0-p1.11.src.rpm",
                ],
            ),
        ] {
            let packages = dir.path().join("rpm").join(repo).join("source/Packages");
            fs_err::create_dir_all(&packages).unwrap();
            for name in names {
                fs_err::write(packages.join(name), "").unwrap();
            }
        }
        assert_eq!(highest_rebuild(dir.path(), "greet"), Some(6));
        assert_eq!(highest_rebuild(dir.path(), "greet-motd"), Some(11));
        assert_eq!(highest_rebuild(dir.path(), "motd"), None);
    }
}
