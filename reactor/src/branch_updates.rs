//! One submit, one release build. Gerrit reports a submit twice: `ref-updated` for the branch
//! and `change-merged` for the change (usually in that order, within milliseconds), both
//! naming the branch's new state. The change's event is the one to build from — it carries
//! the change number that feedback needs — so a branch update waits a moment for it, and
//! whichever comes second is recognised as the same update.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use perestroika_gerrit::events::Stamped;

/// How long a built branch state is remembered (far longer than Gerrit takes between the two
/// events of one submit).
const REMEMBER: Duration = Duration::from_secs(3600);

/// A branch of a project at one commit.
pub type BranchState = (String, String, String);

/// The branch updates seen lately: built ones, and `ref-updated` events waiting for their
/// change.
#[derive(Debug)]
pub struct BranchUpdates {
    wait: Duration,
    /// `ref-updated` events held until their deadline, oldest first.
    held: Vec<(Instant, BranchState, Stamped)>,
    /// Branch states a build was planned for, and when.
    built: HashMap<BranchState, Instant>,
}

impl BranchUpdates {
    /// `wait`: how long a `ref-updated` waits for a `change-merged` of the same state.
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            held: Vec::new(),
            built: HashMap::new(),
        }
    }

    /// Whether a build of this state was planned already.
    pub fn was_built(&self, state: &BranchState) -> bool {
        self.built.contains_key(state)
    }

    /// Records that a build of this state is planned, and drops a `ref-updated` held for it.
    /// Returns whether one was held.
    pub fn building(&mut self, state: BranchState, now: Instant) -> bool {
        let before = self.held.len();
        self.held.retain(|(_, held, _)| *held != state);
        self.built
            .retain(|_, at| now.duration_since(*at) < REMEMBER);
        self.built.insert(state, now);
        self.held.len() < before
    }

    /// Holds a `ref-updated` until its change's event comes or the wait is over; `false`
    /// when there is no wait (it is planned at once).
    pub fn hold(&mut self, state: BranchState, event: Stamped, now: Instant) -> bool {
        if self.wait.is_zero() {
            return false;
        }
        self.held.push((now + self.wait, state, event));
        true
    }

    /// When the oldest held event is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.first().map(|(due, _, _)| *due)
    }

    /// The held events whose wait is over, oldest first.
    pub fn due(&mut self, now: Instant) -> Vec<Stamped> {
        let cut = self
            .held
            .iter()
            .position(|(due, _, _)| *due > now)
            .unwrap_or(self.held.len());
        self.held.drain(..cut).map(|(_, _, event)| event).collect()
    }

    /// How many events are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The state key of `branch` (without `refs/heads/`) of `project` at `rev`.
pub fn state(project: &str, branch: &str, rev: &str) -> BranchState {
    (project.to_owned(), branch.to_owned(), rev.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perestroika_gerrit::events::Event;

    fn pushed(rev: &str) -> Stamped {
        Stamped {
            event: Event::RefUpdated {
                project: "p".into(),
                refname: "refs/heads/9.0".into(),
                new_rev: rev.into(),
            },
            created_on: None,
        }
    }

    #[test]
    fn a_held_update_is_dropped_by_its_merge_and_released_after_the_wait_otherwise() {
        let t0 = Instant::now();
        let mut u = BranchUpdates::new(Duration::from_secs(2));
        assert!(u.hold(state("p", "9.0", "a"), pushed("a"), t0));
        assert!(u.hold(
            state("p", "9.0", "b"),
            pushed("b"),
            t0 + Duration::from_secs(1)
        ));
        assert_eq!(u.next_due(), Some(t0 + Duration::from_secs(2)));
        // The change that made "a" arrives: its update is the same, no longer held.
        assert!(u.building(state("p", "9.0", "a"), t0));
        assert!(u.was_built(&state("p", "9.0", "a")));
        assert_eq!(u.held(), 1);
        assert!(u.due(t0 + Duration::from_secs(2)).is_empty());
        // "b" had no change (a direct push): it is planned when its wait is over.
        assert_eq!(u.due(t0 + Duration::from_secs(3)), [pushed("b")]);
        assert_eq!(u.held(), 0);
        // Without a wait nothing is held.
        assert!(!BranchUpdates::new(Duration::ZERO).hold(state("p", "9.0", "c"), pushed("c"), t0));
    }
}
