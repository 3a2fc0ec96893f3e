//! From a Gerrit event to the work it asks for: build jobs per distro, or retiring a change's
//! review repository. Events the farm does not act on come back with the reason.

use perestroika_config::mapping::{Mapping, Role};
use perestroika_config::project::{branch_name, ProjectMatch, Unmapped};
use perestroika_config::settings::{FarmConfig, GerritSettings};
use perestroika_protocol::messages::{BuildJob, GitSource, Sources, Target, Trigger, TriggerKind};

use crate::events::{Change, Event, PatchSet, Stamped, NULL_REV};
use crate::session::{GerritSession, SshError};

/// What an event asks the farm to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Build(Box<BuildJob>),
    /// The change was merged, abandoned or deleted: its review repository goes.
    Retire {
        customer: String,
        version: String,
        change: u64,
    },
}

/// Why an event leads to nothing, or could not be planned now.
#[derive(Debug, thiserror::Error)]
pub enum NotPlanned {
    /// The event is valid but asks for nothing (unmapped project, a tag, a plain comment…).
    #[error(transparent)]
    Nothing(Box<NothingToDo>),
    /// Looking up a branch head failed on the way; try again on a new session.
    #[error(transparent)]
    Lookup(SshError),
}

/// Why a valid event asks the farm for nothing.
#[derive(Debug, thiserror::Error)]
pub enum NothingToDo {
    /// No mapping rule builds the project and branch.
    #[error(transparent)]
    Unmapped(#[from] Unmapped),
    /// A ref that is not a branch (a tag, a change ref) was updated.
    #[error("{0}; only branch updates are built")]
    NotABranch(#[source] Unmapped),
    #[error("branch {branch:?} of {project:?} was deleted")]
    BranchDeleted { project: String, branch: String },
    #[error("comment on change {change} does not ask for a rebuild ({phrase:?})")]
    NoRebuildAsked { change: u64, phrase: String },
    #[error("recheck on change {change} ignored: the change is {status}")]
    Closed { change: u64, status: String },
    #[error("Gerrit dropped events of this stream; they are caught up")]
    DroppedOutput,
    #[error("change {change} was merged into {branch:?} of {project:?}, which no longer exists")]
    MergedBranchGone {
        change: u64,
        project: String,
        branch: String,
    },
    /// The other project of a split package (code or packaging) lacks the branch.
    #[error("{project:?} has no branch {branch:?} to build {package} with")]
    NoPartnerBranch {
        project: String,
        branch: String,
        package: String,
    },
    #[error("{customer} {version} is not configured")]
    NotConfigured { customer: String, version: String },
    #[error("{customer} {version} has no distro to build {package} for")]
    NoDistro {
        customer: String,
        version: String,
        package: String,
    },
    /// Gerrit ran a command for the event and refused it (a project that does not exist, one
    /// the farm's account may not read).
    #[error(transparent)]
    Refused(SshError),
}

impl From<NothingToDo> for NotPlanned {
    fn from(why: NothingToDo) -> Self {
        NotPlanned::Nothing(Box::new(why))
    }
}

impl From<SshError> for NotPlanned {
    /// A command Gerrit ran and refused (a project that does not exist, one the farm's
    /// account may not read) is an answer about the event, not a broken session.
    fn from(e: SshError) -> Self {
        match e {
            SshError::Command { .. } => NothingToDo::Refused(e).into(),
            other => NotPlanned::Lookup(other),
        }
    }
}

/// Where branch heads come from (the Gerrit session; a table in unit tests).
pub trait Heads {
    /// The commit `branch` of `project` points at, if the branch exists.
    fn branch_head(
        &self,
        project: &str,
        branch: &str,
    ) -> impl std::future::Future<Output = Result<Option<String>, SshError>> + Send;
}

impl Heads for GerritSession {
    async fn branch_head(&self, project: &str, branch: &str) -> Result<Option<String>, SshError> {
        GerritSession::branch_head(self, project, branch).await
    }
}

/// Turns events into actions with the farm's mapping rules.
pub struct Planner<'a> {
    pub farm: &'a FarmConfig,
    pub mapping: &'a Mapping,
    pub gerrit: &'a GerritSettings,
}

/// Whether a review comment asks for a rebuild: one of its lines is the phrase.
pub fn asks_for_rebuild(comment: &str, phrase: &str) -> bool {
    let phrase = phrase.trim();
    !phrase.is_empty()
        && comment
            .lines()
            .any(|line| line.trim().eq_ignore_ascii_case(phrase))
}

impl Planner<'_> {
    /// The change and patch set of a recheck the farm would build: a comment with the
    /// recheck phrase on an open change of a project the mapping rules build.
    pub fn recheck<'e>(&self, event: &'e Event) -> Option<(&'e Change, &'e PatchSet)> {
        match event {
            Event::CommentAdded {
                change,
                patch_set,
                comment,
            } if asks_for_rebuild(comment, &self.gerrit.recheck_phrase)
                && change.status.as_deref().is_none_or(|s| s == "NEW")
                && self.map(&change.project, &change.branch).is_ok() =>
            {
                Some((change, patch_set))
            }
            _ => None,
        }
    }

    /// Plans an event. `catch_up` marks events recovered by a query after a gap.
    pub async fn plan<H: Heads>(
        &self,
        heads: &H,
        stamped: &Stamped,
        catch_up: bool,
    ) -> Result<Vec<Action>, NotPlanned> {
        let time = stamped.created_on;
        let kind = |live| if catch_up { TriggerKind::CatchUp } else { live };
        match &stamped.event {
            Event::ChangeMerged {
                change,
                patch_set,
                new_rev,
            } => {
                let found = self.map(&change.project, &change.branch)?;
                let head = self.merged_state(heads, change, new_rev.as_deref()).await?;
                let trigger = trigger(kind(TriggerKind::ChangeMerged), change, patch_set, time);
                let mut actions = self
                    .builds(heads, &found, &head, None, Target::Release, trigger)
                    .await?;
                actions.push(retire(&found, change));
                Ok(actions)
            }
            Event::PatchsetCreated { change, patch_set } => {
                let trigger = trigger(kind(TriggerKind::PatchsetCreated), change, patch_set, time);
                self.review(heads, change, patch_set, trigger).await
            }
            Event::CommentAdded {
                change,
                patch_set,
                comment,
            } => {
                if !asks_for_rebuild(comment, &self.gerrit.recheck_phrase) {
                    return Err(NothingToDo::NoRebuildAsked {
                        change: change.number,
                        phrase: self.gerrit.recheck_phrase.clone(),
                    }
                    .into());
                }
                if change.status.as_deref().is_some_and(|s| s != "NEW") {
                    return Err(NothingToDo::Closed {
                        change: change.number,
                        status: change.status.clone().unwrap_or_default(),
                    }
                    .into());
                }
                let trigger = trigger(TriggerKind::Recheck, change, patch_set, time);
                self.review(heads, change, patch_set, trigger).await
            }
            Event::RefUpdated {
                project,
                refname,
                new_rev,
            } => {
                let branch = branch_name(refname).map_err(NothingToDo::NotABranch)?;
                if new_rev == NULL_REV {
                    return Err(NothingToDo::BranchDeleted {
                        project: project.clone(),
                        branch: branch.to_owned(),
                    }
                    .into());
                }
                let found = self.map(project, branch)?;
                let trigger = Trigger {
                    kind: kind(TriggerKind::RefUpdated),
                    change: None,
                    patchset: None,
                    event_time: time,
                };
                self.builds(heads, &found, new_rev, None, Target::Release, trigger)
                    .await
            }
            Event::ChangeClosed { change } => {
                let found = self.map(&change.project, &change.branch)?;
                Ok(vec![retire(&found, change)])
            }
            Event::DroppedOutput => Err(NothingToDo::DroppedOutput.into()),
        }
    }

    /// What the branch of a merged change holds after the submit: `new_rev` (Gerrit's
    /// `newRev`) when the server said, else — before Gerrit 2.13 — its head from Gerrit's ref
    /// advertisement. That is the patch set's revision after a fast-forward, the merge or
    /// rebased commit otherwise, or a later state still, which holds the change too.
    pub async fn merged_state<H: Heads>(
        &self,
        heads: &H,
        change: &Change,
        new_rev: Option<&str>,
    ) -> Result<String, NotPlanned> {
        if let Some(rev) = new_rev {
            return Ok(rev.to_owned());
        }
        heads
            .branch_head(&change.project, &change.branch)
            .await?
            .ok_or_else(|| {
                NothingToDo::MergedBranchGone {
                    change: change.number,
                    project: change.project.clone(),
                    branch: change.branch.clone(),
                }
                .into()
            })
    }

    fn map(&self, project: &str, branch: &str) -> Result<ProjectMatch, NotPlanned> {
        self.mapping
            .resolve(self.farm, project, branch)
            .map_err(|e| NothingToDo::Unmapped(e).into())
    }

    async fn review<H: Heads>(
        &self,
        heads: &H,
        change: &Change,
        patch_set: &PatchSet,
        trigger: Trigger,
    ) -> Result<Vec<Action>, NotPlanned> {
        let found = self.map(&change.project, &change.branch)?;
        let target = review_target(change);
        self.builds(
            heads,
            &found,
            &patch_set.revision,
            Some(&patch_set.fetch_ref),
            target,
            trigger,
        )
        .await
    }

    /// One build job per distro the project builds for, with `commit` for the event's project
    /// and the other project (code or packaging) at the same branch's head.
    async fn builds<H: Heads>(
        &self,
        heads: &H,
        found: &ProjectMatch,
        commit: &str,
        fetch_ref: Option<&str>,
        target: Target,
        trigger: Trigger,
    ) -> Result<Vec<Action>, NotPlanned> {
        let source = |project: &str, commit: &str, fetch_ref: Option<&str>| GitSource {
            project: project.to_owned(),
            url: self.gerrit.clone_url(project),
            branch: found.branch.clone(),
            commit: commit.to_owned(),
            fetch_ref: fetch_ref.map(str::to_owned),
        };
        let sources = match found.role {
            Role::Combined => Sources::Combined {
                repo: source(&found.code_project, commit, fetch_ref),
            },
            Role::Code | Role::Packaging => {
                let other = if found.role == Role::Code {
                    &found.packaging_project
                } else {
                    &found.code_project
                };
                let Some(head) = heads.branch_head(other, &found.branch).await? else {
                    return Err(NothingToDo::NoPartnerBranch {
                        project: other.clone(),
                        branch: found.branch.clone(),
                        package: found.package.clone(),
                    }
                    .into());
                };
                let this = source(
                    if found.role == Role::Code {
                        &found.code_project
                    } else {
                        &found.packaging_project
                    },
                    commit,
                    fetch_ref,
                );
                let other = source(other, &head, None);
                let (code, packaging) = if found.role == Role::Code {
                    (this, other)
                } else {
                    (other, this)
                };
                Sources::Split { code, packaging }
            }
        };
        let release = self
            .farm
            .release(&found.customer, &found.version)
            .ok_or_else(|| NothingToDo::NotConfigured {
                customer: found.customer.clone(),
                version: found.version.clone(),
            })?;
        let distros: Vec<_> = release
            .distros()
            .filter(|(family, distro)| {
                found.distro.as_deref().is_none_or(|d| d == *distro)
                    && found.family.is_none_or(|f| f == *family)
            })
            .collect();
        if distros.is_empty() {
            return Err(NothingToDo::NoDistro {
                customer: found.customer.clone(),
                version: found.version.clone(),
                package: found.package.clone(),
            }
            .into());
        }
        // A review build's rebuild number is its patch set: a later patch set (often with the
        // same commit counts as the one it replaces) sorts higher in the review repository and
        // never collides with an earlier patch set's files.
        let rebuild = match target {
            Target::Release => 0,
            Target::Review { .. } | Target::Topic { .. } => trigger.patchset.unwrap_or(0),
        };
        Ok(distros
            .into_iter()
            .map(|(family, distro)| {
                Action::Build(Box::new(BuildJob::new(
                    &found.customer,
                    &found.version,
                    &found.package,
                    family,
                    distro,
                    sources.clone(),
                    target.clone(),
                    rebuild,
                    trigger.clone(),
                )))
            })
            .collect())
    }
}

/// Where a change's review builds publish: its topic's shared repository when it has a topic
/// usable as a name (not all digits, which would collide with a change's own repository),
/// else its own.
fn review_target(change: &Change) -> Target {
    let usable = |t: &&str| {
        perestroika_config::names::check_token("topic", t).is_ok()
            && !t.bytes().all(|b| b.is_ascii_digit())
    };
    match change.topic.as_deref().filter(usable) {
        Some(topic) => Target::Topic {
            topic: topic.to_owned(),
        },
        None => Target::Review {
            change: change.number,
        },
    }
}

fn trigger(kind: TriggerKind, change: &Change, patch_set: &PatchSet, time: Option<i64>) -> Trigger {
    Trigger {
        kind,
        change: Some(change.number),
        patchset: Some(patch_set.number),
        event_time: time,
    }
}

fn retire(found: &ProjectMatch, change: &Change) -> Action {
    Action::Retire {
        customer: found.customer.clone(),
        version: found.version.clone(),
        change: change.number,
    }
}

#[cfg(test)]
mod tests;
