//! The recheck limit: at most `recheck_limit` rechecks of one change are built within
//! `recheck_window_secs`, judged by the rechecks' own Gerrit times, so that a recheck seen
//! live and again in a catch-up is one recheck and a decision does not depend on when the
//! reactor heard of it. What was accepted, and when the change was last told of a refusal,
//! is kept in the reactor's state and so survives a restart.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use perestroika_config::settings::GerritSettings;
use serde::{Deserialize, Serialize};

/// How long past its window an accepted recheck is remembered, in seconds: a catch-up
/// reaching back to it still recognises it.
pub(crate) const KEEP_PAST_WINDOW: i64 = 24 * 3600;

/// At most `max` rechecks of a change within `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecheckLimit {
    pub max: u32,
    pub window_secs: i64,
}

impl RecheckLimit {
    /// The limit of the `[gerrit]` settings.
    pub fn of(gerrit: &GerritSettings) -> Self {
        Self {
            max: gerrit.recheck_limit,
            window_secs: i64::try_from(gerrit.recheck_window_secs).unwrap_or(i64::MAX / 4),
        }
    }
}

/// What becomes of a recheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Within the limit: build it (it is counted now).
    Accepted,
    /// The same recheck (change and time) seen before, counted once already; `confirmed`
    /// when its build was confirmed by the broker.
    Repeat { confirmed: bool },
    /// Over the limit. `next`: from when a recheck is accepted again (none while rechecks
    /// are off); `notify`: whether the change is told (once per window).
    Refused { next: Option<i64>, notify: bool },
}

/// One accepted recheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Accepted {
    /// Gerrit time of the recheck, seconds since the epoch.
    at: i64,
    /// Its build was confirmed by the broker.
    #[serde(default)]
    confirmed: bool,
}

/// One change's rechecks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    #[serde(default)]
    accepted: Vec<Accepted>,
    /// Gerrit time of the refused recheck the change was last told about.
    #[serde(default)]
    noticed: Option<i64>,
}

/// The accepted rechecks and refusal notices of every change lately rechecked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rechecks(BTreeMap<u64, Change>);

impl Rechecks {
    /// Decides on a recheck of `change` written at `at` and records the decision.
    pub fn decide(&mut self, limit: RecheckLimit, change: u64, at: i64) -> Decision {
        let entry = self.0.entry(change).or_default();
        if let Some(seen) = entry.accepted.iter().find(|a| a.at == at) {
            return Decision::Repeat {
                confirmed: seen.confirmed,
            };
        }
        // Those later than `at` count too: a recheck caught up late never exceeds the limit
        // of a window that holds it.
        let mut counted: Vec<i64> = entry
            .accepted
            .iter()
            .map(|a| a.at)
            .filter(|t| *t > at - limit.window_secs)
            .collect();
        if counted.len() < limit.max as usize {
            entry.accepted.push(Accepted {
                at,
                confirmed: false,
            });
            entry.accepted.sort_by_key(|a| a.at);
            return Decision::Accepted;
        }
        counted.sort_unstable();
        let next = (limit.max > 0)
            .then(|| counted[counted.len() - limit.max as usize] + limit.window_secs);
        let notify = entry.noticed.is_none_or(|n| at - n >= limit.window_secs);
        if notify {
            entry.noticed = Some(at);
        }
        Decision::Refused { next, notify }
    }

    /// Marks the recheck of `change` at `at` as confirmed by the broker.
    pub fn confirm(&mut self, change: u64, at: i64) {
        if let Some(a) = self
            .0
            .get_mut(&change)
            .and_then(|c| c.accepted.iter_mut().find(|a| a.at == at))
        {
            a.confirmed = true;
        }
    }

    /// Forgets what lies more than a window and a day before `now`.
    pub fn prune(&mut self, limit: RecheckLimit, now: i64) {
        let cut = now - limit.window_secs.saturating_add(KEEP_PAST_WINDOW);
        self.0.retain(|_, c| {
            c.accepted.retain(|a| a.at > cut);
            c.noticed = c.noticed.filter(|n| *n > cut);
            !c.accepted.is_empty() || c.noticed.is_some()
        });
    }

    /// How many changes are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no change is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The review message that tells a change its recheck was refused. No line of it is a
/// recheck phrase, so that Gerrit's `comment-added` of it asks for nothing.
pub fn refusal_message(limit: RecheckLimit, next: Option<i64>) -> String {
    let Some(next) = next else {
        return "Perestroika: recheck refused: rechecks are turned off on this farm \
                (recheck_limit = 0). Ask the farm's operators to retrigger the build."
            .into();
    };
    let when = Utc.timestamp_opt(next, 0).single().map_or_else(
        || next.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    let times = if limit.max == 1 { "once" } else { "times" };
    let count = if limit.max == 1 {
        String::new()
    } else {
        format!("{} ", limit.max)
    };
    format!(
        "Perestroika: recheck refused: a change is rebuilt on request at most {count}{times} \
         within {} seconds, and this change has reached that limit.\n\n\
         The next recheck is accepted from {when}; rechecks refused until then get no \
         further answer.",
        limit.window_secs
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use perestroika_gerrit::plan::asks_for_rebuild;

    pub(crate) const HOUR: RecheckLimit = RecheckLimit {
        max: 3,
        window_secs: 3600,
    };

    pub(crate) fn refused(next: i64, notify: bool) -> Decision {
        Decision::Refused {
            next: Some(next),
            notify,
        }
    }

    #[test]
    fn the_limit_holds_within_the_window_and_frees_up_after_it() {
        let mut r = Rechecks::default();
        for at in [1000, 1010, 1020] {
            assert_eq!(r.decide(HOUR, 7, at), Decision::Accepted);
        }
        assert_eq!(r.decide(HOUR, 7, 1030), refused(4600, true));
        assert_eq!(r.decide(HOUR, 7, 1040), refused(4600, false), "told once");
        assert_eq!(r.decide(HOUR, 8, 1040), Decision::Accepted, "per change");
        assert_eq!(r.decide(HOUR, 7, 4599), refused(4600, false));
        assert_eq!(r.decide(HOUR, 7, 4600), Decision::Accepted);
        assert_eq!(
            r.decide(HOUR, 7, 4601),
            refused(4610, false),
            "the window slides"
        );
        assert_eq!(r.decide(HOUR, 7, 4620), Decision::Accepted);
        assert_eq!(r.decide(HOUR, 7, 4621), Decision::Accepted);
        // A window after the first notice: told again.
        assert_eq!(r.decide(HOUR, 7, 4630), refused(8200, true));
    }

    #[test]
    fn a_recheck_seen_twice_counts_once() {
        let mut r = Rechecks::default();
        assert_eq!(r.decide(HOUR, 7, 1000), Decision::Accepted);
        assert_eq!(
            r.decide(HOUR, 7, 1000),
            Decision::Repeat { confirmed: false }
        );
        r.confirm(7, 1000);
        assert_eq!(
            r.decide(HOUR, 7, 1000),
            Decision::Repeat { confirmed: true }
        );
        assert_eq!(r.decide(HOUR, 7, 1001), Decision::Accepted);
        assert_eq!(r.decide(HOUR, 7, 1002), Decision::Accepted);
        assert!(matches!(r.decide(HOUR, 7, 1003), Decision::Refused { .. }));
    }

    #[test]
    fn a_late_recheck_counts_the_later_ones_of_its_window() {
        let mut r = Rechecks::default();
        for at in [2000, 2001, 2002] {
            assert_eq!(r.decide(HOUR, 7, at), Decision::Accepted);
        }
        // Written before them, heard of after them (a catch-up).
        assert!(matches!(r.decide(HOUR, 7, 1990), Decision::Refused { .. }));
    }

    #[test]
    fn a_limit_of_zero_refuses_every_recheck() {
        let off = RecheckLimit {
            max: 0,
            window_secs: 3600,
        };
        let mut r = Rechecks::default();
        assert_eq!(
            r.decide(off, 7, 1000),
            Decision::Refused {
                next: None,
                notify: true
            }
        );
        assert_eq!(
            r.decide(off, 7, 1001),
            Decision::Refused {
                next: None,
                notify: false
            }
        );
        assert!(refusal_message(off, None).contains("turned off"));
    }

    #[test]
    fn the_refusal_says_limit_window_and_when_and_asks_for_nothing() {
        let text = refusal_message(HOUR, Some(1_700_003_600));
        assert!(
            text.contains("at most 3 times within 3600 seconds"),
            "{text}"
        );
        assert!(text.contains("2023-11-14 23:13:20 UTC"), "{text}");
        assert!(!asks_for_rebuild(&text, "recheck"), "{text}");
        let once = RecheckLimit {
            max: 1,
            window_secs: 60,
        };
        assert!(refusal_message(once, Some(0)).contains("at most once within 60 seconds"));
    }
}
