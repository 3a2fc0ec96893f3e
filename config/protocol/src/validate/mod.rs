//! What a message may ask for, judged against the configuration and the queue it arrived on.
//!
//! [`crate::messages::Message::check`] keeps names safe for paths and commands; the checks here
//! keep anyone holding broker credentials from asking for more than the farm would: another
//! customer's or release's work, sources from elsewhere than the configured Gerrit, a review
//! repository revived without the time its build was asked for, or the removal of a tree the
//! publisher did not retire. Every consumer calls these before acting on a message.

use crate::messages::{
    BuildJob, Feedback, MirrorAnnouncement, Promotion, PublishJob, RebuildRequest,
    ReviewRetirement, Sources, Target, Trigger,
};
use crate::queues::{QueueName, Stage};
use perestroika_config::mapping::Role;
use perestroika_config::settings::{Family, FarmConfig};

/// A message asks for something its queue or the configuration does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} refused: {why}")]
pub struct Refused {
    pub kind: &'static str,
    pub why: String,
}

fn refuse<T>(kind: &'static str, why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        kind,
        why: why.into(),
    })
}

/// The message's customer and version are the queue's, of the stage expected, and a release
/// of the configuration.
fn on_queue(
    kind: &'static str,
    farm: &FarmConfig,
    queue: &QueueName,
    stage: Stage,
    customer: &str,
    version: &str,
) -> Result<(), Refused> {
    if queue.stage != stage {
        return refuse(
            kind,
            format!("it arrived on {queue}, not a {} queue", stage.prefix()),
        );
    }
    if customer != queue.customer || version != queue.version {
        return refuse(
            kind,
            format!("it is for {customer} {version} but arrived on {queue}"),
        );
    }
    if farm.release(customer, version).is_none() {
        return refuse(
            kind,
            format!("{customer} {version} is not a release of the configuration"),
        );
    }
    Ok(())
}

/// `distro` is a distro of the release, of `family`.
fn distro_of(
    kind: &'static str,
    farm: &FarmConfig,
    customer: &str,
    version: &str,
    distro: &str,
    family: Family,
) -> Result<(), Refused> {
    let release = farm.release(customer, version);
    match release.and_then(|r| r.family_of(distro)) {
        Some(f) if f == family => Ok(()),
        Some(f) => refuse(
            kind,
            format!("{distro} is a {f} distro of {customer} {version}, not {family}"),
        ),
        None => refuse(
            kind,
            format!("{distro} is not a distro of {customer} {version}"),
        ),
    }
}

/// What a build's sources must be: each repository a project the mapping gives this customer,
/// version, package (and distro, when the project names one), in its role, cloned from the
/// configured Gerrit (`gerrit.git_url`, or `ssh://<user>@<host>:<port>`). Without a `[gerrit]`
/// section there is no Gerrit to compare with, and only the mapping is checked.
#[allow(clippy::too_many_arguments)]
pub fn sources(
    kind: &'static str,
    farm: &FarmConfig,
    customer: &str,
    version: &str,
    package: &str,
    family: Family,
    distro: &str,
    sources: &Sources,
) -> Result<(), Refused> {
    let roles: Vec<(Role, &crate::messages::GitSource)> = match sources {
        Sources::Split { code, packaging } => {
            vec![(Role::Code, code), (Role::Packaging, packaging)]
        }
        Sources::Combined { repo } => vec![(Role::Combined, repo)],
    };
    let mapping = farm.mapping().or_else(|e| refuse(kind, e.to_string()))?;
    for (role, repo) in roles {
        if let Some(gerrit) = &farm.gerrit {
            let expected = gerrit.clone_url(&repo.project);
            if repo.url != expected {
                return refuse(
                    kind,
                    format!(
                        "{} is to be cloned from {:?}, not the configured Gerrit's {expected:?}",
                        repo.project, repo.url
                    ),
                );
            }
        }
        let found = mapping
            .resolve(farm, &repo.project, &repo.branch)
            .or_else(|e| refuse(kind, e.to_string()))?;
        let want = (customer, version, package);
        let got = (
            found.customer.as_str(),
            found.version.as_str(),
            found.package.as_str(),
        );
        if got != want {
            return refuse(
                kind,
                format!(
                    "{} on {} maps to {} {} {}, not {customer} {version} {package}",
                    repo.project, repo.branch, got.0, got.1, got.2
                ),
            );
        }
        if found.distro.as_deref().is_some_and(|d| d != distro)
            || found.family.is_some_and(|f| f != family)
        {
            return refuse(
                kind,
                format!("{} does not build for {family} {distro}", repo.project),
            );
        }
        let in_role = match role {
            Role::Combined => found.role == Role::Combined,
            Role::Code => found.role != Role::Combined && repo.project == found.code_project,
            Role::Packaging => {
                found.role != Role::Combined && repo.project == found.packaging_project
            }
        };
        if !in_role {
            return refuse(
                kind,
                format!(
                    "{} is not the {role} repository of {package} in the mapping",
                    repo.project
                ),
            );
        }
    }
    Ok(())
}

/// A review or topic target names the change (and patch set) its trigger was about.
fn target(kind: &'static str, target: &Target, trigger: Option<&Trigger>) -> Result<(), Refused> {
    let about = trigger.and_then(|t| Some((t.change?, t.patchset?)));
    match (target, about) {
        (Target::Release, _) => Ok(()),
        (Target::Review { change }, Some((c, _))) if c == *change => Ok(()),
        (Target::Review { change }, Some((c, _))) => refuse(
            kind,
            format!("its target is review {change} but its trigger is change {c}"),
        ),
        (Target::Topic { .. }, Some(_)) => Ok(()),
        (Target::Review { .. } | Target::Topic { .. }, None) => refuse(
            kind,
            "a review or topic build must name its change and patch set in its trigger",
        ),
    }
}

/// What a build job, and the publish job made of it, say is built: both are judged alike.
struct Work<'a> {
    kind: &'static str,
    stage: Stage,
    customer: &'a str,
    version: &'a str,
    package: &'a str,
    distro: &'a str,
    family: Family,
    target: &'a Target,
    sources: &'a Sources,
}

impl Work<'_> {
    /// Judges the work against `queue` and the configuration; `trigger` gives the event
    /// behind it, or refuses the message (checked after the queue and the distro).
    fn judge<'t>(
        &self,
        farm: &FarmConfig,
        queue: &QueueName,
        trigger: impl FnOnce() -> Result<&'t Trigger, Refused>,
    ) -> Result<(), Refused> {
        let k = self.kind;
        on_queue(k, farm, queue, self.stage, self.customer, self.version)?;
        distro_of(
            k,
            farm,
            self.customer,
            self.version,
            self.distro,
            self.family,
        )?;
        target(k, self.target, Some(trigger()?))?;
        sources(
            k,
            farm,
            self.customer,
            self.version,
            self.package,
            self.family,
            self.distro,
            self.sources,
        )
    }
}

/// A build job a worker may take from `queue`.
pub fn build_job(farm: &FarmConfig, queue: &QueueName, job: &BuildJob) -> Result<(), Refused> {
    let work = Work {
        kind: "build job",
        stage: Stage::Build,
        customer: &job.customer,
        version: &job.version,
        package: &job.package,
        distro: &job.distro,
        family: job.family,
        target: &job.target,
        sources: &job.sources,
    };
    work.judge(farm, queue, || Ok(&job.trigger))
}

/// A publish job the publisher may act on from `queue`. It must say when its build was asked
/// for, since a review repository retired after that time stays retired.
pub fn publish_job(farm: &FarmConfig, queue: &QueueName, job: &PublishJob) -> Result<(), Refused> {
    let k = "publish job";
    let work = Work {
        kind: k,
        stage: Stage::Publish,
        customer: &job.customer,
        version: &job.version,
        package: &job.package,
        distro: &job.distro,
        family: job.family,
        target: &job.target,
        sources: &job.sources,
    };
    work.judge(farm, queue, || {
        if job.requested_at.is_none() {
            return refuse(
                k,
                "it does not say when its build was asked for (requested_at)",
            );
        }
        job.trigger.as_ref().map_or_else(
            || refuse(k, "it does not name the event behind its build (trigger)"),
            Ok,
        )
    })
}

/// A review retirement the publisher may act on from `queue`.
pub fn retirement(
    farm: &FarmConfig,
    queue: &QueueName,
    retire: &ReviewRetirement,
) -> Result<(), Refused> {
    let k = "review retirement";
    on_queue(
        k,
        farm,
        queue,
        Stage::Publish,
        &retire.customer,
        &retire.version,
    )
}

/// A promotion the publisher may act on from `queue`.
pub fn promotion(farm: &FarmConfig, queue: &QueueName, p: &Promotion) -> Result<(), Refused> {
    let k = "promotion";
    on_queue(k, farm, queue, Stage::Publish, &p.customer, &p.version)?;
    let suites = &farm.publish.suites;
    for suite in [&p.from, &p.to] {
        if !suites.contains(suite) {
            return refuse(k, format!("{suite} is not a suite of [publish] suites"));
        }
    }
    Ok(())
}

/// Feedback the reactor may report from `queue`.
pub fn feedback(farm: &FarmConfig, queue: &QueueName, f: &Feedback) -> Result<(), Refused> {
    let k = "feedback";
    on_queue(k, farm, queue, Stage::Feedback, &f.customer, &f.version)?;
    if let Target::Review { change } = f.target {
        if change != f.change {
            return refuse(
                k,
                format!(
                    "its target is review {change} but it is about change {}",
                    f.change
                ),
            );
        }
    }
    Ok(())
}

/// A rebuild request the reactor may act on from `queue` (a feedback queue): its build job
/// must be one a worker may take from the build queue of the same release.
pub fn rebuild_request(
    farm: &FarmConfig,
    queue: &QueueName,
    r: &RebuildRequest,
) -> Result<(), Refused> {
    let job = &r.rebuild;
    on_queue(
        "rebuild request",
        farm,
        queue,
        Stage::Feedback,
        &job.customer,
        &job.version,
    )?;
    let build = QueueName::new(Stage::Build, &job.customer, &job.version);
    build_job(farm, &build, job)
}

/// What the snapshot of an announcement that takes a tree down says.
pub const RETIRED_SNAPSHOT: &str = "retired";

/// An announcement the mirror may act on from `queue`: a tree of the queue's release
/// (`<customer>/<version>`) or a review tree of its customer (`<customer>/review/<name>`), in
/// the form the publisher sends. Generation 0 (take the tree down) is only ever sent for a
/// retired review tree, with snapshot `retired`; any other generation names itself as the
/// snapshot.
pub fn announcement(
    farm: &FarmConfig,
    queue: &QueueName,
    a: &MirrorAnnouncement,
) -> Result<(), Refused> {
    let k = "mirror announcement";
    on_queue(k, farm, queue, Stage::Mirror, &a.customer, &a.version)?;
    let release = Target::Release.tree(&a.customer, &a.version);
    let review_prefix = format!("{}/review/", a.customer);
    let review = a
        .tree
        .strip_prefix(&review_prefix)
        .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    if a.tree != release && !review {
        return refuse(
            k,
            format!(
                "tree {} is neither {release} nor a review tree {review_prefix}<name> of the queue {queue}",
                a.tree
            ),
        );
    }
    match a.generation {
        0 if !review => refuse(
            k,
            format!(
                "generation 0 (take down) names {}, which is not a review tree",
                a.tree
            ),
        ),
        0 if a.snapshot != RETIRED_SNAPSHOT => refuse(
            k,
            format!(
                "generation 0 must have snapshot {RETIRED_SNAPSHOT:?}, not {:?}",
                a.snapshot
            ),
        ),
        0 => Ok(()),
        n if a.snapshot != n.to_string() => {
            refuse(k, format!("generation {n} has snapshot {:?}", a.snapshot))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
