//! The reactor proper: one SSH session with Gerrit at a time, its stream of events turned
//! into jobs, a catch-up query after every (re)connect, and the state that makes both safe.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use perestroika_config::project::branch_name;
use perestroika_config::settings::{FarmConfig, GerritSettings};
use perestroika_config::Mapping;
use perestroika_gerrit::events::{parse_event, Event, Skip, Stamped, NULL_REV};
use perestroika_gerrit::plan::{Action, NotPlanned, Planner};
use perestroika_gerrit::session::{GerritSession, SshError};
use perestroika_host::backoff::Backoff;
use perestroika_protocol::messages::{Message, ReviewRetirement, TriggerKind};
use perestroika_protocol::queues::{QueueName, Stage};
use tracing::{debug, info, warn};

use crate::branch_updates::{self, BranchUpdates};
use crate::catch_up::{self, Missed};
use crate::describe::{describe, short};
use crate::feedback::Notice;
use crate::outbox::{Batch, Outbox, Outgoing};
use crate::recheck::{refusal_message, Decision, RecheckLimit};
use crate::state::{State, StateError};

/// Why the reactor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// How often the state is written while events flow.
const SAVE_EVERY: Duration = Duration::from_millis(250);

/// The running reactor.
pub struct Reactor {
    farm: FarmConfig,
    gerrit: GerritSettings,
    mapping: Mapping,
    state_path: PathBuf,
    state: State,
    dirty: bool,
    /// A state write running off the event loop, so that fsync never delays events.
    saving: Option<tokio::task::JoinHandle<Result<(), StateError>>>,
    outbox: Outbox,
    /// Branch states built lately, and branch updates waiting for their change's merge.
    updates: BranchUpdates,
    /// How many rechecks of a change are built within what time.
    limit: RecheckLimit,
    /// Where refused rechecks' notices go to be posted on their changes (none without
    /// `feedback`).
    notices: Option<tokio::sync::mpsc::UnboundedSender<Notice>>,
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The live stream.
    Live,
    /// A catch-up query after a gap.
    CatchUp,
    /// A branch update that waited for its change's merge in vain: a direct push.
    Held,
}

impl Reactor {
    /// Loads the state and connects to the broker (waiting for it if it is down).
    pub async fn start(
        farm: FarmConfig,
        gerrit: GerritSettings,
        mapping: Mapping,
    ) -> Result<Self, ReactorError> {
        let state_path = State::path(&farm.paths.state);
        let state = State::load(&state_path)?;
        info!(state = %state_path.display(), last_event_time = state.last_event_time.map_or_else(|| "none yet".to_owned(), |t| t.to_string()), remembered_jobs = state.queued.len(), "reactor state loaded");
        let outbox = Outbox::connect(&farm).await;
        let updates = BranchUpdates::new(Duration::from_millis(gerrit.submit_wait_ms));
        let notices = gerrit.feedback.then(|| {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(crate::feedback::post_notices(gerrit.clone(), receiver));
            sender
        });
        Ok(Self {
            limit: RecheckLimit::of(&gerrit),
            notices,
            updates,
            farm,
            gerrit,
            mapping,
            state_path,
            state,
            dirty: false,
            saving: None,
            outbox,
        })
    }

    /// Runs for ever; returns only when the operator must act (host key, credentials, state).
    pub async fn run(mut self) -> ReactorError {
        let mut backoff = Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(self.farm.broker.reconnect_max_secs.max(1)),
        );
        loop {
            let ended = self.session(&mut backoff).await;
            self.finish_batches().await;
            if let Err(e) = self.save().await {
                return e;
            }
            match ended {
                Err(ReactorError::Ssh(e)) if !e.is_fatal() => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "Gerrit session lost; reconnecting, then catching up");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return e,
                Ok(()) => {}
            }
        }
    }

    async fn session(&mut self, backoff: &mut Backoff) -> Result<(), ReactorError> {
        let session = GerritSession::connect(&self.gerrit).await?;
        // Listen first, then catch up: whatever happens meanwhile waits in the stream.
        let mut lines = session.stream_events().await?;
        info!(host = %self.gerrit.host, port = self.gerrit.port, "listening to gerrit stream-events");
        self.catch_up(&session).await?;
        backoff.reset();
        let mut tick = tokio::time::interval(SAVE_EVERY);
        loop {
            let due = self.updates.next_due();
            tokio::select! {
                biased;
                settled = self.outbox.settle(), if !self.outbox.is_empty() => match settled {
                    Ok(batch) => self.handled(batch),
                    Err(e) => {
                        warn!(error = %e, "broker did not confirm; holding events and reconnecting");
                        self.outbox.recover().await;
                    }
                },
                line = lines.next_line(), if self.outbox.has_room() => {
                    let line = line?;
                    self.on_line(&session, &line).await?;
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() && self.outbox.has_room() => {
                    for held in self.updates.due(Instant::now()) {
                        self.on_event(&session, &held, Origin::Held).await?;
                    }
                }
                _ = tick.tick() => self.save_in_background()?,
            }
        }
    }

    async fn on_line(&mut self, session: &GerritSession, line: &str) -> Result<(), ReactorError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        match parse_event(line) {
            Ok(Stamped {
                event: Event::DroppedOutput,
                ..
            }) => {
                warn!("Gerrit dropped events of this stream (dropped-output): catching up now");
                self.catch_up(session).await
            }
            Ok(stamped) => self.on_event(session, &stamped, Origin::Live).await,
            Err(Skip::Ignored(kind)) => {
                info!(%kind, "skipped event: the farm does not act on this type");
                Ok(())
            }
            Err(e @ Skip::Malformed(_)) => {
                let shown: String = line.chars().take(200).collect();
                warn!(reason = %e, line = %shown, "skipped event");
                Ok(())
            }
        }
    }

    /// Plans an event and hands its messages to the outbox, skipping work already queued.
    async fn on_event(
        &mut self,
        session: &GerritSession,
        stamped: &Stamped,
        origin: Origin,
    ) -> Result<(), ReactorError> {
        let planner = Planner {
            farm: &self.farm,
            mapping: &self.mapping,
            gerrit: &self.gerrit,
        };
        // One submit is one build: the branch state it made is built once, from whichever of
        // its change-merged and ref-updated events comes first — preferably the change's.
        let mut resolved;
        let mut stamped = stamped;
        match &stamped.event {
            Event::RefUpdated {
                project,
                refname,
                new_rev,
            } if new_rev != NULL_REV => {
                if let Ok(branch) = branch_name(refname) {
                    let key = branch_updates::state(project, branch, new_rev);
                    if self.updates.was_built(&key) {
                        info!(event = %describe(&stamped.event), "skipped event: the same branch update as a merged change, already built");
                        return Ok(());
                    }
                    let mapped = self.mapping.resolve(&self.farm, project, branch).is_ok();
                    if mapped
                        && origin == Origin::Live
                        && self
                            .updates
                            .hold(key.clone(), stamped.clone(), Instant::now())
                    {
                        debug!(event = %describe(&stamped.event), "waiting for the change-merged of this branch update");
                        return Ok(());
                    }
                    if mapped {
                        self.updates.building(key, Instant::now());
                    }
                }
            }
            Event::ChangeMerged {
                change,
                patch_set,
                new_rev,
            } if self
                .mapping
                .resolve(&self.farm, &change.project, &change.branch)
                .is_ok() =>
            {
                let head = match planner
                    .merged_state(session, change, new_rev.as_deref())
                    .await
                {
                    Ok(head) => head,
                    Err(NotPlanned::Nothing(why)) => {
                        info!(event = %describe(&stamped.event), reason = %why, "skipped event");
                        return Ok(());
                    }
                    Err(NotPlanned::Lookup(e)) => return Err(e.into()),
                };
                let key = branch_updates::state(&change.project, &change.branch, &head);
                resolved = stamped.clone();
                if self.updates.was_built(&key) {
                    // Another change of the same submit (a topic or a chain) built it.
                    info!(event = %describe(&stamped.event), rev = %short(&head), "branch state already built for this submit; retiring the change's review repository only");
                    resolved.event = Event::ChangeClosed {
                        change: change.clone(),
                    };
                } else {
                    if self.updates.building(key, Instant::now()) {
                        info!(event = %describe(&stamped.event), "the ref-updated heard before this merge is the same branch update: one build");
                    }
                    resolved.event = Event::ChangeMerged {
                        change: change.clone(),
                        patch_set: patch_set.clone(),
                        new_rev: Some(head),
                    };
                }
                stamped = &resolved;
            }
            _ => {}
        }
        // A recheck counts against its change's limit, once however often it is heard of.
        let (mut recheck, mut repeat) = (None, false);
        if let Some((change, patch_set)) = planner.recheck(&stamped.event) {
            let at = stamped.created_on.unwrap_or_else(|| Utc::now().timestamp());
            let decision = self.state.rechecks.decide(self.limit, change.number, at);
            self.dirty = true;
            match decision {
                Decision::Accepted => recheck = Some((change.number, at)),
                Decision::Repeat { confirmed: true } => {
                    info!(event = %describe(&stamped.event), change = change.number, "skipped event: the same recheck, heard of before and queued");
                    return Ok(());
                }
                Decision::Repeat { confirmed: false } => {
                    (recheck, repeat) = (Some((change.number, at)), true);
                }
                Decision::Refused { next, notify } => {
                    let next_at = next.and_then(|t| Utc.timestamp_opt(t, 0).single());
                    info!(
                        change = change.number,
                        patchset = patch_set.number,
                        limit = self.limit.max,
                        window_secs = self.limit.window_secs,
                        next = next_at.map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339()),
                        notify,
                        "recheck refused: the change reached its recheck limit"
                    );
                    if let (true, Some(notices)) = (notify, &self.notices) {
                        let _ = notices.send(Notice {
                            change: change.number,
                            patch_set: patch_set.number,
                            message: refusal_message(self.limit, next),
                        });
                    }
                    return Ok(());
                }
            }
        }
        let actions = match planner
            .plan(session, stamped, origin == Origin::CatchUp)
            .await
        {
            Ok(actions) => actions,
            Err(NotPlanned::Nothing(why)) => {
                info!(event = %describe(&stamped.event), reason = %why, "skipped event");
                return Ok(());
            }
            Err(NotPlanned::Lookup(e)) => return Err(e.into()),
        };
        let mut messages = Vec::new();
        for action in actions {
            let (queue, id, payload, what, forced) = match action {
                Action::Build(job) => {
                    let queue = QueueName::new(Stage::Build, &job.customer, &job.version);
                    // A recheck is queued again, unless it is a repeat still on its way.
                    let forced = match job.trigger.kind {
                        TriggerKind::Manual => true,
                        TriggerKind::Recheck => !(repeat && self.outbox.holds(&job.job_id)),
                        _ => false,
                    };
                    let what = format!(
                        "build {} for {} into {}",
                        job.package, job.distro, job.target
                    );
                    (queue, job.job_id.clone(), job.to_bytes(), what, forced)
                }
                Action::Retire {
                    customer,
                    version,
                    change,
                } => {
                    let retire = ReviewRetirement::new(&customer, &version, change);
                    let queue = QueueName::new(Stage::Publish, &customer, &version);
                    let what = format!("retire the review repository of change {change}");
                    (queue, retire.job_id.clone(), retire.to_bytes(), what, false)
                }
            };
            if !forced && (self.state.was_queued(&id) || self.outbox.holds(&id)) {
                debug!(job = %id, %what, "already queued");
                continue;
            }
            info!(event = %describe(&stamped.event), job = %id, queue = %queue, stage = "queued", %what, "queueing");
            messages.push(Outgoing {
                queue: queue.to_string(),
                id,
                payload,
            });
        }
        let event_time = Some(stamped.created_on.unwrap_or_else(|| Utc::now().timestamp()));
        self.outbox
            .push(Batch {
                messages,
                event_time,
                recheck,
            })
            .await;
        Ok(())
    }

    fn handled(&mut self, batch: Batch) {
        let ids: Vec<String> = batch.messages.into_iter().map(|m| m.id).collect();
        self.state
            .record(&ids, batch.event_time, Utc::now().timestamp());
        if let Some((change, at)) = batch.recheck {
            self.state.rechecks.confirm(change, at);
        }
        self.dirty = true;
    }

    async fn finish_batches(&mut self) {
        for batch in self.outbox.drain().await {
            self.handled(batch);
        }
    }

    /// Forgets job ids and rechecks too old to matter.
    fn prune(&mut self) {
        let now = Utc::now().timestamp();
        self.state.prune(now);
        self.state.rechecks.prune(self.limit, now);
    }

    /// Starts writing the state if it changed and no write is running; reports the error of
    /// a finished write.
    fn save_in_background(&mut self) -> Result<(), ReactorError> {
        if self.saving.as_ref().is_some_and(|h| !h.is_finished()) || !self.dirty {
            return Ok(());
        }
        if let Some(done) = self.saving.take() {
            if let Some(Ok(Err(e))) = futures_util::FutureExt::now_or_never(done) {
                return Err(e.into());
            }
        }
        self.prune();
        let (state, path) = (self.state.clone(), self.state_path.clone());
        self.saving = Some(tokio::task::spawn_blocking(move || state.save(&path)));
        self.dirty = false;
        Ok(())
    }

    /// Writes the state now (after any write still running).
    async fn save(&mut self) -> Result<(), ReactorError> {
        if let Some(running) = self.saving.take() {
            running.await.expect("state writer panicked")?;
        }
        if self.dirty {
            self.prune();
            self.state.save(&self.state_path)?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Plans what happened while the session was down (see [`catch_up::missed`]), oldest
    /// first.
    async fn catch_up(&mut self, session: &GerritSession) -> Result<(), ReactorError> {
        let Some(last) = self.state.last_event_time else {
            info!("first start: nothing to catch up on");
            return Ok(());
        };
        let Missed { events, after } = catch_up::missed(session, &self.gerrit, last).await?;
        info!(since = %after, changes = events.len(), "catching up");
        for stamped in &events {
            self.on_event(session, stamped, Origin::CatchUp).await?;
        }
        info!(since = %after, "caught up");
        Ok(())
    }
}
