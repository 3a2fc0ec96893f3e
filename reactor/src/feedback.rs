//! Feedback to Gerrit: consumes `feedback.<customer>.<version>` and reports each build's
//! outcome on its change with `gerrit review` over SSH — a vote and the result for a review
//! build (with the log link and how to install from the review repository), a message with
//! the published version and suite for a merge.
//!
//! Once per build: a build request's feedback is marked sent
//! (`<state>/reactor/feedback/<job id>.<request time>`) after Gerrit accepted it, and a
//! redelivered or redone job's feedback is dropped; a recheck is a new request and reports. While
//! Gerrit cannot be reached the message stays unacknowledged and is tried again with backoff,
//! so an outage delays feedback but never loses it. A command Gerrit refuses (the change is
//! gone, the label does not exist) is dead-lettered with Gerrit's answer.
//!
//! The reactor's own notices (a refused recheck) go the same way, from [`post_notices`].
//!
//! The same queues carry the publisher's rebuild requests ([`crate::rebuild`]), so they are
//! consumed also with `gerrit.feedback` off (the builds' feedback is then dropped).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use perestroika_config::client::{self, AptClient};
use perestroika_config::settings::GerritSettings;
use perestroika_config::{Family, FarmConfig};
use perestroika_gerrit::session::{shell_quote, GerritSession, SshError};
use perestroika_host::backoff::Backoff;
use perestroika_protocol::broker::{run_consumer, Disposition};
use perestroika_protocol::messages::{
    BuildOutcome, Feedback, Message, RebuildRequest, Target, LOG_NAME,
};
use perestroika_protocol::{QueueName, Stage};
use tokio::sync::Mutex;
use tracing::{info, warn};

/// Where the marks of feedback already sent are kept.
pub fn sent_dir(state: &Path) -> PathBuf {
    state.join("reactor").join("feedback")
}

/// How long a mark of feedback sent is kept: longer than any redelivery takes.
const MARK_KEEP: Duration = Duration::from_secs(crate::state::REMEMBER_SECS as u64);

/// Removes the marks in `dir` older than `keep` (the reactor uses [`MARK_KEEP`]); returns how
/// many went.
pub fn prune_marks(dir: &Path, keep: Duration) -> usize {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return 0;
    };
    let old = |e: &fs_err::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > keep)
    };
    entries
        .filter_map(Result::ok)
        .filter(old)
        .filter(|e| fs_err::remove_file(e.path()).is_ok())
        .count()
}

/// Consumes every feedback queue of the configuration until the process is stopped.
pub async fn run(farm: Arc<FarmConfig>, gerrit: GerritSettings) {
    let pruned = prune_marks(&sent_dir(&farm.paths.state), MARK_KEEP);
    if pruned > 0 {
        info!(pruned, "removed old marks of feedback sent");
    }
    let session: Arc<Mutex<Option<GerritSession>>> = Arc::new(Mutex::new(None));
    let mut tasks = Vec::new();
    for (customer, release) in farm.releases() {
        let queue = QueueName::new(Stage::Feedback, &customer.name, &release.name);
        let (farm, gerrit, session) = (farm.clone(), gerrit.clone(), session.clone());
        tasks.push(tokio::spawn(async move {
            let settings = farm.broker.clone();
            run_consumer(&settings, &queue.clone(), 1, |delivery| {
                let (farm, gerrit, session, queue) =
                    (farm.clone(), gerrit.clone(), session.clone(), queue.clone());
                async move {
                    let disposition =
                        handle(&farm, &gerrit, &session, &queue, &delivery.data).await;
                    (delivery, disposition)
                }
            })
            .await
        }));
    }
    futures_util::future::join_all(tasks).await;
}

async fn handle(
    farm: &FarmConfig,
    gerrit: &GerritSettings,
    session: &Mutex<Option<GerritSession>>,
    queue: &QueueName,
    data: &[u8],
) -> Disposition {
    if RebuildRequest::is_one(data) {
        return crate::rebuild::handle(farm, queue, data).await;
    }
    if !gerrit.feedback {
        info!("feedback to Gerrit is off (gerrit.feedback); dropping a build's feedback");
        return Disposition::Ack;
    }
    let feedback = match Feedback::from_bytes(data) {
        Ok(f) => f,
        Err(e) => return Disposition::DeadLetter(format!("not valid feedback: {e}")),
    };
    if let Err(e) = perestroika_protocol::validate::feedback(farm, queue, &feedback) {
        warn!(job = %feedback.job_id, reason = %e, "refusing feedback");
        return Disposition::DeadLetter(e.to_string());
    }
    let mark = sent_dir(&farm.paths.state).join(feedback.request_key());
    if mark.exists() {
        info!(job = %feedback.job_id, change = feedback.change, "feedback already sent; dropping the repeat");
        return Disposition::Ack;
    }
    let command = review_command(gerrit, &public_url(farm), &feedback);
    match send(gerrit, session, &command).await {
        Ok(()) => {}
        Err(SshError::Command { status, stderr, .. }) => {
            return Disposition::DeadLetter(format!(
                "Gerrit refused the review of change {},{} (exit {status}): {stderr}",
                feedback.change, feedback.patchset
            ));
        }
        Err(e) => {
            // Tried again with backoff, never counted against the delivery limit.
            warn!(job = %feedback.job_id, error = %e, "cannot reach Gerrit; the feedback waits");
            *session.lock().await = None;
            return Disposition::Later(format!("cannot reach Gerrit: {e}"));
        }
    }
    if let Err(e) = mark_sent(&mark) {
        warn!(error = %e, path = %mark.display(), "could not record the feedback as sent");
    }
    info!(job = %feedback.job_id, change = feedback.change, patchset = feedback.patchset, "feedback sent to Gerrit");
    Disposition::Ack
}

async fn send(
    gerrit: &GerritSettings,
    session: &Mutex<Option<GerritSession>>,
    command: &str,
) -> Result<(), SshError> {
    let mut guard = session.lock().await;
    if guard.is_none() {
        *guard = Some(GerritSession::connect(gerrit).await?);
    }
    let result = guard.as_ref().expect("connected").run(command).await;
    if result.is_err() {
        *guard = None;
    }
    result.map(drop)
}

/// A review message of the reactor's own (a refused recheck) for a patch set of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub change: u64,
    pub patch_set: u32,
    pub message: String,
}

/// How often a notice is tried while Gerrit cannot be reached before it is given up.
const NOTICE_TRIES: u32 = 8;

/// Posts the notices it is handed, in order, with `gerrit review --message` on an SSH
/// session of its own. One Gerrit refuses, or cannot take after [`NOTICE_TRIES`] tries, is
/// logged and dropped; those waiting when the reactor stops are lost.
pub async fn post_notices(
    gerrit: GerritSettings,
    mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
) {
    let session = Mutex::new(None);
    while let Some(notice) = notices.recv().await {
        let command = format!(
            "gerrit review {},{} --message {}",
            notice.change,
            notice.patch_set,
            shell_quote(&notice.message)
        );
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        for attempt in 1..=NOTICE_TRIES {
            match send(&gerrit, &session, &command).await {
                Ok(()) => {
                    info!(
                        change = notice.change,
                        patchset = notice.patch_set,
                        "notice sent to Gerrit"
                    );
                    break;
                }
                Err(e @ SshError::Command { .. }) => {
                    warn!(change = notice.change, error = %e, "Gerrit refused the notice; dropped");
                    break;
                }
                Err(e) if attempt == NOTICE_TRIES => {
                    warn!(change = notice.change, error = %e, "cannot reach Gerrit; the notice is dropped");
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(change = notice.change, error = %e, retry_in = ?delay, "cannot reach Gerrit; the notice waits");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn mark_sent(mark: &Path) -> std::io::Result<()> {
    fs_err::create_dir_all(mark.parent().expect("below the state directory"))?;
    perestroika_host::files::write_durable(mark, chrono::Utc::now().to_rfc3339().as_bytes())
}

/// The base URL links in feedback start with (see [`client::public_url`]); empty when the farm
/// has none (links are then paths below the public root).
pub fn public_url(farm: &FarmConfig) -> String {
    client::public_url(farm).unwrap_or_default()
}

/// The vote a build's feedback carries: review builds only (a merged change takes no vote).
pub fn vote(feedback: &Feedback) -> Option<i8> {
    match (&feedback.target, &feedback.outcome) {
        (Target::Release, _) => None,
        (_, BuildOutcome::Succeeded) => Some(1),
        (_, BuildOutcome::Failed { .. }) => Some(-1),
    }
}

/// The text of a build's feedback.
pub fn message(url: &str, feedback: &Feedback) -> String {
    let link = |path: &str| {
        if url.is_empty() {
            format!("{path} (below the farm's public root)")
        } else {
            format!("{url}/{path}")
        }
    };
    let f = feedback;
    let what = match &f.package_version {
        Some(v) => format!("{} {v}", f.package),
        None => f.package.clone(),
    };
    let mut lines = Vec::new();
    match &f.outcome {
        BuildOutcome::Failed { step, reason } => {
            lines.push(format!(
                "Perestroika: the build of {what} for {} ({}) FAILED at step {step}.",
                f.distro, f.family
            ));
            lines.push(String::new());
            lines.push(format!("Reason: {reason}"));
            match &f.log {
                Some(log) => lines.push(format!("Build log: {}", link(log))),
                None => lines.push(format!(
                    "Build log: kept by the farm as <staging>/{}/{LOG_NAME}",
                    f.job_id
                )),
            }
        }
        BuildOutcome::Succeeded => {
            let tree = f.target.tree(&f.customer, &f.version);
            let suite = f.suite.clone().unwrap_or_else(|| f.distro.clone());
            match &f.target {
                Target::Release => lines.push(format!(
                    "Perestroika: {what} is built and published into {suite} of {} {}.",
                    f.customer, f.version
                )),
                _ => lines.push(format!(
                    "Perestroika: the build of {what} for {} ({}) succeeded.",
                    f.distro, f.family
                )),
            }
            lines.push(String::new());
            if let Some(log) = &f.log {
                lines.push(format!("Build log: {}", link(log)));
            }
            let base = (!url.is_empty()).then_some(url);
            lines.push(match &f.target {
                Target::Release => format!("Install it from {suite} (as root):"),
                _ => "Try it from the review repository, with its own KEY.asc (as root):".into(),
            });
            match f.family {
                Family::Deb => {
                    let apt = AptClient::new(base, &tree, &suite);
                    lines.extend(apt.commands().into_iter().map(|c| format!("  {c}")));
                    lines.push(format!("  apt-get update && apt-get install {}", f.package));
                }
                Family::Rpm => lines.push(format!(
                    "  {}",
                    client::dnf_install(base, &tree, &suite, &f.package)
                )),
            }
        }
    }
    lines.push(format!("(job {})", f.job_id));
    lines.join("\n")
}

/// The `gerrit review` command for a build's feedback, every argument quoted for Gerrit's
/// command-line parser.
pub fn review_command(gerrit: &GerritSettings, url: &str, feedback: &Feedback) -> String {
    let mut command = format!(
        "gerrit review {},{} --message {}",
        feedback.change,
        feedback.patchset,
        shell_quote(&message(url, feedback))
    );
    if let Some(vote) = vote(feedback) {
        let value = format!("{vote:+}");
        match &gerrit.vote_label {
            Some(label) => {
                command.push_str(" --label ");
                command.push_str(&shell_quote(&format!("{label}={value}")));
            }
            None => {
                command.push_str(" --verified ");
                command.push_str(&value);
            }
        }
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use perestroika_protocol::messages::SCHEMA_VERSION;

    fn feedback(target: Target, outcome: BuildOutcome) -> Feedback {
        Feedback {
            schema_version: SCHEMA_VERSION,
            job_id: "abc123".into(),
            customer: "acme".into(),
            version: "9.0".into(),
            package: "greet".into(),
            family: Family::Deb,
            distro: "bookworm".into(),
            target,
            change: 301,
            patchset: 2,
            outcome,
            package_version: Some("1.0+git2.2-1+p1.2".into()),
            suite: Some("bookworm".into()),
            log: Some("acme/review/301/logs/abc123.log".into()),
            requested_at: None,
        }
    }

    fn gerrit(label: Option<&str>) -> GerritSettings {
        serde_json::from_value(serde_json::json!({
            "host": "h", "user": "farm", "key_file": "k", "known_hosts": "kh", "vote_label": label,
        }))
        .unwrap()
    }

    #[test]
    fn a_recheck_is_a_request_of_its_own() {
        let mut f = feedback(Target::Review { change: 301 }, BuildOutcome::Succeeded);
        assert_eq!(f.request_key(), "abc123");
        let first = chrono::Utc::now();
        f.requested_at = Some(first);
        let key = f.request_key();
        assert!(key.starts_with("abc123."), "{key}");
        let redelivered = Feedback::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(
            redelivered.request_key(),
            key,
            "a redelivery is the same request"
        );
        f.requested_at = Some(first + chrono::Duration::seconds(1));
        assert_ne!(f.request_key(), key, "a recheck is another");
    }

    #[test]
    fn old_marks_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("abc123");
        fs_err::write(&mark, "sent").unwrap();
        assert_eq!(prune_marks(dir.path(), Duration::from_secs(3600)), 0);
        assert!(mark.exists());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(prune_marks(dir.path(), Duration::from_millis(10)), 1);
        assert!(!mark.exists());
        assert_eq!(prune_marks(&dir.path().join("none"), Duration::ZERO), 0);
    }

    #[test]
    fn a_review_build_votes_and_says_how_to_install() {
        let f = feedback(Target::Review { change: 301 }, BuildOutcome::Succeeded);
        let cmd = review_command(&gerrit(None), "http://mirror:8642", &f);
        assert!(cmd.starts_with("gerrit review 301,2 --message '"), "{cmd}");
        assert!(cmd.ends_with(" --verified +1"), "{cmd}");
        let text = message("http://mirror:8642", &f);
        assert!(text.contains("Build log: http://mirror:8642/acme/review/301/logs/abc123.log"));
        assert!(text.contains("\n  install -d -m 0755 /etc/apt/keyrings\n  curl -fsSL -o /etc/apt/keyrings/acme-review-301.asc http://mirror:8642/acme/review/301/KEY.asc\n"), "{text}");
        assert!(text.contains("\n  echo 'deb [signed-by=/etc/apt/keyrings/acme-review-301.asc] http://mirror:8642/acme/review/301/deb bookworm main' > /etc/apt/sources.list.d/acme-review-301-bookworm.list\n"), "{text}");
        let words = shlex_split(&cmd);
        assert_eq!(words[4], text, "the message survives Gerrit's quoting");
    }

    #[test]
    fn a_failed_build_votes_minus_one_with_its_step() {
        let failed = BuildOutcome::Failed {
            step: "build-deps".into(),
            reason: "greet (>= 2) is not installable; it's missing".into(),
        };
        let mut f = feedback(Target::Review { change: 301 }, failed);
        f.log = None;
        let cmd = review_command(&gerrit(Some("Build-Verified")), "", &f);
        assert!(cmd.ends_with(" --label 'Build-Verified=-1'"), "{cmd}");
        let text = message("", &f);
        assert!(text.contains("FAILED at step build-deps"), "{text}");
        assert!(text.contains("it's missing"), "{text}");
        assert_eq!(shlex_split(&cmd)[4], text);
    }

    #[test]
    fn a_merge_gets_a_message_without_a_vote() {
        let mut f = feedback(Target::Release, BuildOutcome::Succeeded);
        f.suite = Some("bookworm-proposed".into());
        let cmd = review_command(&gerrit(None), "", &f);
        assert!(
            !cmd.contains("--verified") && !cmd.contains("--label"),
            "{cmd}"
        );
        assert!(message("", &f).contains("published into bookworm-proposed of acme 9.0"));
    }

    /// Gerrit's command-line splitting: single quotes literal, backslash escapes outside.
    fn shlex_split(line: &str) -> Vec<String> {
        let (mut out, mut word, mut quoted, mut chars) =
            (Vec::new(), String::new(), false, line.chars());
        let mut any = false;
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    any = true;
                }
                '\\' if !quoted => word.extend(chars.next()),
                ' ' if !quoted => {
                    if any || !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                c => word.push(c),
            }
        }
        if any || !word.is_empty() {
            out.push(word);
        }
        out
    }
}
