//! Manual rebuilds: the operator names a Gerrit project and branch (at its head or a commit)
//! or a change and patch set; the jobs are planned exactly as for the matching event, with a
//! rebuild number above every one published, so the rebuilt version sorts higher.

use perestroika_config::names::{check_commit, NameError};
use perestroika_config::settings::{FarmConfig, GerritSettings};
use perestroika_config::Mapping;
use perestroika_formats::build_version::{BuildVersion, RpmRelease};
use perestroika_formats::release_index::stanzas;
use perestroika_protocol::messages::{BuildJob, TriggerKind};
use perestroika_published::{ReadError, Reader};
use perestroika_tree::suite_name;

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
    /// The published state the rebuild number is read from cannot be read or trusted.
    #[error("reading the published versions: {0}")]
    Published(#[from] ReadError),
}

/// The jobs of a manual rebuild, not yet queued.
#[allow(clippy::too_many_arguments)]
pub async fn plan(
    farm: &FarmConfig,
    reader: &Reader,
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
            None => next_rebuild(farm, reader, job).await?,
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
/// (read through [`Reader`] — the public root on this host, or `[public] url` over http,
/// verified against the pinned keys — from the live tree's deb source indexes and its
/// source rpms); 1 when nothing is published yet. A tree that is not what the keys signed
/// is an error, never a guess.
pub async fn next_rebuild(
    farm: &FarmConfig,
    reader: &Reader,
    job: &BuildJob,
) -> Result<u32, ReadError> {
    let tree = job.target.tree(&job.customer, &job.version);
    let suites = candidate_suites(farm, job);
    Ok(highest_rebuild(reader, &tree, &suites, &job.package)
        .await?
        .map_or(1, |n| n + 1))
}

/// The suites a job's package may be published in: each distro of its release (the job's
/// own when the release is not configured), alone and with each of `[publish] suites` and
/// `proposed`. Over http nothing can be listed, so the configuration names them.
fn candidate_suites(farm: &FarmConfig, job: &BuildJob) -> Vec<String> {
    let distros: Vec<String> = match farm.release(&job.customer, &job.version) {
        Some(release) => release.distros().map(|(_, d)| d.to_owned()).collect(),
        None => vec![job.distro.clone()],
    };
    let mut out = Vec::new();
    for distro in &distros {
        out.push(distro.clone());
        for s in farm.publish.suites.iter().chain([&farm.publish.proposed]) {
            out.push(suite_name(distro, Some(s)));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The highest rebuild number among the published versions of a source package, deb or
/// rpm, in the `suites` of `tree` (relative to the public root).
async fn highest_rebuild(
    reader: &Reader,
    tree: &str,
    suites: &[String],
    package: &str,
) -> Result<Option<u32>, ReadError> {
    let mut best = None;
    for suite in suites {
        best = best.max(highest_deb_rebuild(reader, tree, suite, package).await?);
        if let Some(repo) = reader.rpm_repo(tree, suite, "source").await? {
            for srpm in &repo.packages {
                let location = &srpm.location;
                let file = location.rsplit('/').next().unwrap_or(location);
                best = best.max(rpm_rebuild(file, package));
            }
        }
    }
    Ok(best)
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

/// The highest rebuild number among the deb source packages of `package` in a suite, read
/// from the `Sources` index of each component its signed `Release` names.
async fn highest_deb_rebuild(
    reader: &Reader,
    tree: &str,
    suite: &str,
    package: &str,
) -> Result<Option<u32>, ReadError> {
    let Some(verified) = reader.deb_suite(tree, suite).await? else {
        return Ok(None);
    };
    let mut best = None;
    for component in verified.components() {
        let index = format!("{component}/source/Sources");
        let Some(text) = reader.deb_index(&verified, &index).await? else {
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
    Ok(best)
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

    /// A reader of the public root `root` on this host, without pinned keys.
    fn local(root: &std::path::Path) -> Reader {
        Reader::new(
            perestroika_published::Source::Dir(root.to_owned()),
            &[],
            &[],
            std::time::Duration::from_secs(5),
        )
        .unwrap()
    }

    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn highest_rebuild_from_source_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let suite = dir.path().join("acme/9.0/deb/dists/bookworm");
        fs_err::create_dir_all(suite.join("main/source")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        gz.write_all(
            b"Package: greet\nVersion: 1.0+git3-1+p2.0\n\nPackage: greet\nVersion: 1.0+git3-1+p2.4\n\nPackage: other\nVersion: 1.0+p1.9\n",
        )
        .unwrap();
        let gz = gz.finish().unwrap();
        fs_err::write(suite.join("main/source/Sources.gz"), &gz).unwrap();
        // The suite's Release names the index by size and sha256, as the publisher writes it.
        fs_err::write(
            suite.join("Release"),
            format!(
                "Suite: bookworm\nComponents: main\nSHA256:\n {} {} main/source/Sources.gz\n",
                sha256(&gz),
                gz.len()
            ),
        )
        .unwrap();
        let reader = local(dir.path());
        let suites = ["bookworm".to_owned(), "bookworm-proposed".to_owned()];
        let highest = |tree: &'static str, package: &'static str| {
            let (reader, suites) = (&reader, &suites);
            async move {
                highest_rebuild(reader, tree, suites, package)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(highest("acme/9.0", "greet").await, Some(4));
        assert_eq!(highest("acme/9.0", "other").await, Some(9));
        assert_eq!(highest("acme/9.0", "missing").await, None);
        assert_eq!(highest("acme/nothing", "greet").await, None);
        // An index that is not what the Release names is refused, not read.
        fs_err::write(suite.join("main/source/Sources.gz"), b"forged").unwrap();
        assert!(matches!(
            highest_rebuild(&reader, "acme/9.0", &suites, "greet").await,
            Err(ReadError::Hash { .. })
        ));
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

    #[tokio::test]
    async fn highest_rebuild_from_source_rpms() {
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
            // The repository's metadata names the packages, as createrepo_c writes it.
            let source = dir.path().join("acme/9.0/rpm").join(repo).join("source");
            fs_err::create_dir_all(source.join("repodata")).unwrap();
            let primary: String = names
                .iter()
                .map(|n| {
                    format!(
                        "<package type=\"rpm\"><checksum type=\"sha256\" pkgid=\"YES\">{}</checksum><size package=\"1\"/><location href=\"Packages/{n}\"/></package>\n",
                        "0".repeat(64)
                    )
                })
                .collect();
            fs_err::write(source.join("repodata/primary.xml"), &primary).unwrap();
            fs_err::write(
                source.join("repodata/repomd.xml"),
                format!(
                    "<repomd><data type=\"primary\"><checksum type=\"sha256\">{}</checksum><location href=\"repodata/primary.xml\"/><size>{}</size></data></repomd>",
                    sha256(primary.as_bytes()),
                    primary.len()
                ),
            )
            .unwrap();
        }
        let reader = local(dir.path());
        let suites = ["el9".to_owned(), "el9-proposed".to_owned()];
        for (package, want) in [("greet", Some(6)), ("greet-motd", Some(11)), ("motd", None)] {
            let found = highest_rebuild(&reader, "acme/9.0", &suites, package)
                .await
                .unwrap();
            assert_eq!(found, want, "{package}");
        }
    }
}
