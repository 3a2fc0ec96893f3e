//! `retrigger`: a manual rebuild of a package, planned as for the matching event and queued.

use anyhow::Context;
use clap::Args;
use perestroika_config::FarmConfig;
use perestroika_gerrit::session::GerritSession;
use perestroika_host::cli::UsageError;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::{QueueName, Stage};

use crate::retrigger::{self, At};

#[derive(Args)]
pub struct RetriggerArgs {
    /// Gerrit project (code or packaging), e.g. acme/openstack/nova.
    #[arg(required_unless_present = "change")]
    pub project: Option<String>,
    /// Its branch, e.g. openstack-ci/fuel-9.0/mitaka.
    #[arg(required_unless_present = "change")]
    pub branch: Option<String>,
    /// Build this commit of PROJECT instead of the branch head.
    #[arg(long, conflicts_with = "change")]
    pub commit: Option<String>,
    /// Build a change's patch set: 1234 (current patch set) or 1234/3.
    #[arg(long, conflicts_with_all = ["project", "branch"])]
    pub change: Option<String>,
    /// Rebuild number to use (default: one above the highest published).
    #[arg(long)]
    pub rebuild: Option<u32>,
    /// Only this distro (default: every distro the package builds for).
    #[arg(long)]
    pub distro: Option<String>,
    /// Show the jobs without queueing them.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--change N` or `--change N/PS`.
fn parse_change(text: &str) -> Result<At, UsageError> {
    let bad = || {
        UsageError(format!(
            "--change {text:?}: expected N or N/PS, e.g. 1234/3"
        ))
    };
    let (number, patch_set) = match text.split_once('/') {
        Some((n, ps)) => (n, Some(ps.parse::<u32>().map_err(|_| bad())?)),
        None => (text, None),
    };
    Ok(At::Change {
        number: number.parse().map_err(|_| bad())?,
        patch_set,
    })
}

/// Where the rebuild takes its sources from, as the arguments say.
fn at(args: RetriggerArgs) -> Result<At, UsageError> {
    match (args.change, args.project, args.branch, args.commit) {
        (Some(change), ..) => parse_change(&change),
        (None, Some(project), Some(branch), Some(commit)) => Ok(At::Commit {
            project,
            branch,
            commit,
        }),
        (None, Some(project), Some(branch), None) => Ok(At::Head { project, branch }),
        _ => Err(UsageError("give PROJECT BRANCH, or --change".into())),
    }
}

/// Plans the rebuild's jobs from Gerrit and queues them (or only shows them, with --dry-run).
pub async fn run(
    broker: &Broker,
    farm: &FarmConfig,
    args: RetriggerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let gerrit = farm.gerrit.clone().ok_or_else(|| {
        UsageError(format!(
            "configuration {} has no [gerrit] section; retrigger reads branch heads and changes from Gerrit",
            farm.source.display()
        ))
    })?;
    let (rebuild, distro, dry_run) = (args.rebuild, args.distro.clone(), args.dry_run);
    let at = at(args)?;
    let mapping = farm.mapping()?;
    let reader = perestroika_published::Reader::of_farm(farm)?;
    let session = GerritSession::connect(&gerrit).await?;
    let jobs = retrigger::plan(
        farm,
        &reader,
        &gerrit,
        &mapping,
        &session,
        &at,
        rebuild,
        distro.as_deref(),
    )
    .await?;
    for job in &jobs {
        if !dry_run {
            let queue = QueueName::new(Stage::Build, &job.customer, &job.version);
            broker
                .publish(&queue.to_string(), job, &job.job_id)
                .await
                .with_context(|| format!("queueing job {}", job.job_id))?;
        }
        if !json {
            let verb = if dry_run { "would queue" } else { "queued" };
            println!("{verb} {}: {}", job.job_id, retrigger::describe(job));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_a_number_with_or_without_its_patch_set() {
        assert_eq!(
            parse_change("1234/3").unwrap(),
            At::Change {
                number: 1234,
                patch_set: Some(3)
            }
        );
        assert_eq!(
            parse_change("1234").unwrap(),
            At::Change {
                number: 1234,
                patch_set: None
            }
        );
        for bad in ["", "x", "12/", "12/x", "/3"] {
            let e = parse_change(bad).unwrap_err();
            assert!(e.to_string().contains("expected N or N/PS"), "{bad}: {e}");
        }
    }
}
