//! What the reactor remembers across restarts: the time of the last handled event (where a
//! catch-up starts) and the ids of recently queued jobs (so catch-up and live events never
//! queue the same work twice), and the rechecks counted against the recheck limit.

use perestroika_host::files::write_durable;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::recheck::Rechecks;

/// How long a queued job id is remembered, in seconds (longer than any catch-up reaches back).
pub const REMEMBER_SECS: i64 = 14 * 24 * 3600;
/// At most this many job ids are remembered; the oldest go first.
pub const REMEMBER_MAX: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the reactor state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the reactor state {path} is corrupt ({source}); move it away to start without catch-up"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the reactor state {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The reactor's persistent state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Gerrit time (seconds since the epoch) of the newest event handled so far.
    pub last_event_time: Option<i64>,
    /// Job id → when it was queued (seconds since the epoch).
    pub queued: BTreeMap<String, i64>,
    /// Rechecks accepted lately and refusals told, per change.
    #[serde(default)]
    pub rechecks: Rechecks,
}

impl State {
    /// The state file under the farm's state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("reactor").join("state.json")
    }

    /// Loads the state; a missing file is a fresh start.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        match fs_err::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(StateError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the state durably: a temporary file, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(self).expect("state serialises");
        write_durable(path, &bytes).map_err(|source| StateError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Whether a job with this id was queued recently.
    pub fn was_queued(&self, job_id: &str) -> bool {
        self.queued.contains_key(job_id)
    }

    /// Records a job as queued and an event as handled.
    pub fn record(&mut self, job_ids: &[String], event_time: Option<i64>, now: i64) {
        for id in job_ids {
            self.queued.insert(id.clone(), now);
        }
        if let Some(t) = event_time {
            self.last_event_time = Some(self.last_event_time.map_or(t, |old| old.max(t)));
        }
    }

    /// Forgets ids older than [`REMEMBER_SECS`] and beyond [`REMEMBER_MAX`].
    pub fn prune(&mut self, now: i64) {
        self.queued.retain(|_, at| now - *at < REMEMBER_SECS);
        if self.queued.len() > REMEMBER_MAX {
            let mut times: Vec<i64> = self.queued.values().copied().collect();
            times.sort_unstable();
            let cut = times[self.queued.len() - REMEMBER_MAX];
            self.queued.retain(|_, at| *at > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recheck::tests::{refused, HOUR};
    use crate::recheck::{Decision, KEEP_PAST_WINDOW};

    #[test]
    fn round_trip_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let path = State::path(dir.path());
        assert_eq!(State::load(&path).unwrap(), State::default());
        let mut state = State::default();
        state.record(&["a".into()], Some(100), 1_000);
        state.record(&["b".into()], Some(90), 1_000 + REMEMBER_SECS);
        assert_eq!(state.last_event_time, Some(100));
        state.save(&path).unwrap();
        let mut back = State::load(&path).unwrap();
        assert_eq!(back, state);
        back.prune(1_000 + REMEMBER_SECS);
        assert!(!back.was_queued("a") && back.was_queued("b"));
        fs_err::write(&path, b"{").unwrap();
        let e = State::load(&path).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
    }

    #[test]
    fn the_memory_survives_a_restart_and_old_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = State::path(dir.path());
        let mut state = State::default();
        for at in [1000, 1010, 1020] {
            assert_eq!(state.rechecks.decide(HOUR, 7, at), Decision::Accepted);
        }
        state.rechecks.confirm(7, 1010);
        assert_eq!(state.rechecks.decide(HOUR, 7, 1030), refused(4600, true));
        state.save(&path).unwrap();

        let mut back = State::load(&path).unwrap();
        assert_eq!(back.rechecks, state.rechecks);
        assert_eq!(back.rechecks.decide(HOUR, 7, 1040), refused(4600, false));
        assert_eq!(
            back.rechecks.decide(HOUR, 7, 1010),
            Decision::Repeat { confirmed: true }
        );
        back.rechecks.prune(HOUR, 1019 + 3600 + KEEP_PAST_WINDOW);
        assert_eq!(back.rechecks.len(), 1, "1020 and the notice are kept");
        back.rechecks.prune(HOUR, 1040 + 3600 + KEEP_PAST_WINDOW);
        assert!(back.rechecks.is_empty());
        // A state written before the limit existed loads.
        fs_err::write(&path, br#"{"last_event_time":5,"queued":{}}"#).unwrap();
        assert!(State::load(&path).unwrap().rechecks.is_empty());
    }
}
