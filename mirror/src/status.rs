//! What each target should have and what it has: per target and tree, the generation wanted
//! (the newest announced; 0 for a retired tree), the generation synced, and the last error.
//! Kept in `<state>/mirror/status.json`, written atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use perestroika_host::files::write_durable;
use serde::{Deserialize, Serialize};

use crate::rsync::Moved;

/// One tree on one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeStatus {
    /// Newest announced generation; 0 when the tree was retired.
    pub wanted: u64,
    /// Generation live on the target (0 after a retirement was carried out).
    pub synced: Option<u64>,
    pub last_error: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// What the last successful sync moved.
    pub moved: Option<Moved>,
}

impl TreeStatus {
    pub fn in_sync(&self) -> bool {
        self.synced == Some(self.wanted)
    }

    /// The tree was taken down and the target no longer holds it.
    pub fn retired(&self) -> bool {
        self.wanted == 0 && self.synced == Some(0)
    }

    /// The state in words: "retired", "in sync", "behind", or "failing: <error>".
    pub fn state(&self) -> String {
        match (&self.last_error, self.in_sync()) {
            _ if self.retired() => "retired".to_owned(),
            (_, true) => "in sync".to_owned(),
            (Some(e), false) => format!("failing: {e}"),
            (None, false) if self.wanted == 0 => "retiring".to_owned(),
            (None, false) => "behind".to_owned(),
        }
    }
}

/// target name → tree → status.
pub type Targets = BTreeMap<String, BTreeMap<String, TreeStatus>>;

/// Every target's trees as JSON, each with its state in words (`state`).
pub fn to_json(targets: &Targets) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(targets)?;
    for (target, trees) in targets {
        for (tree, s) in trees {
            value[target][tree]["state"] = s.state().into();
        }
    }
    Ok(value)
}

/// Every target's trees as a table for people, a heading first: wanted and synced generation
/// (`-` for a retired tree) and the state in words.
pub fn table(targets: &Targets) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<16} {:<28} {:>7} {:>7}  STATE",
        "TARGET", "TREE", "WANTED", "SYNCED"
    )];
    for (target, trees) in targets {
        for (tree, s) in trees {
            let state = s.state();
            let number = |g: u64| {
                if s.retired() {
                    "-".to_owned()
                } else {
                    g.to_string()
                }
            };
            let synced = s.synced.map_or("-".into(), number);
            lines.push(format!(
                "{target:<16} {tree:<28} {:>7} {synced:>7}  {state}",
                number(s.wanted)
            ));
        }
    }
    lines
}

/// One tree's status on one target, made when first named.
fn entry<'a>(all: &'a mut Targets, target: &str, tree: &str) -> &'a mut TreeStatus {
    all.entry(target.to_owned())
        .or_default()
        .entry(tree.to_owned())
        .or_default()
}

/// The shared, persisted status.
pub struct Status {
    path: PathBuf,
    targets: Mutex<Targets>,
}

impl Status {
    /// `<state>/mirror/status.json`.
    pub fn path(state: &Path) -> PathBuf {
        state.join("mirror").join("status.json")
    }

    /// Loads the status file (empty when missing).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let targets = match fs_err::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Targets::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_owned(),
            targets: Mutex::new(targets),
        })
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> Targets {
        self.targets.lock().expect("status lock").clone()
    }

    fn change(&self, f: impl FnOnce(&mut Targets)) -> std::io::Result<()> {
        let mut targets = self.targets.lock().expect("status lock");
        f(&mut targets);
        let bytes = serde_json::to_vec_pretty(&*targets).expect("status serialises");
        write_durable(&self.path, &bytes)
    }

    /// Records an announcement for every target. An older generation than one already
    /// wanted is ignored (announcements can arrive twice or late); 0 retires the tree.
    pub fn want(&self, targets: &[String], tree: &str, generation: u64) -> std::io::Result<bool> {
        let mut newer = false;
        self.change(|all| {
            for name in targets {
                let entry = entry(all, name, tree);
                if generation == 0 || generation > entry.wanted {
                    entry.wanted = generation;
                    newer = true;
                }
            }
        })?;
        Ok(newer)
    }

    /// The tree a target should sync next, with the generation wanted.
    pub fn next_for(&self, target: &str) -> Option<(String, u64)> {
        self.next_for_except(target, |_| false)
    }

    /// [`Status::next_for`], passing over the trees `skip` names (those waiting to be
    /// retried), so that one tree that keeps failing holds up no other.
    pub fn next_for_except(
        &self,
        target: &str,
        skip: impl Fn(&str) -> bool,
    ) -> Option<(String, u64)> {
        let all = self.targets.lock().expect("status lock");
        all.get(target)?
            .iter()
            .find(|(tree, s)| !s.in_sync() && !skip(tree))
            .map(|(tree, s)| (tree.clone(), s.wanted))
    }

    /// Records a finished sync.
    pub fn synced(
        &self,
        target: &str,
        tree: &str,
        generation: u64,
        moved: Moved,
    ) -> std::io::Result<()> {
        self.change(|all| {
            let s = entry(all, target, tree);
            s.synced = Some(generation);
            s.last_error = None;
            s.last_attempt = Some(Utc::now());
            s.last_success = s.last_attempt;
            s.moved = Some(moved);
        })
    }

    /// Records a failed sync.
    pub fn failed(&self, target: &str, tree: &str, error: &str) -> std::io::Result<()> {
        self.change(|all| {
            let s = entry(all, target, tree);
            s.last_error = Some(error.to_owned());
            s.last_attempt = Some(Utc::now());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_announcement_wins_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = Status::path(dir.path());
        let status = Status::load(&path).unwrap();
        let targets = ["a".to_owned(), "b".to_owned()];
        assert!(status.want(&targets, "acme/9.0", 3).unwrap());
        assert!(!status.want(&targets, "acme/9.0", 2).unwrap());
        assert_eq!(status.next_for("a"), Some(("acme/9.0".into(), 3)));
        assert_eq!(status.next_for_except("a", |t| t == "acme/9.0"), None);
        status.synced("a", "acme/9.0", 3, Moved::default()).unwrap();
        assert_eq!(status.next_for("a"), None);
        status.failed("b", "acme/9.0", "down").unwrap();
        let again = Status::load(&path).unwrap();
        assert_eq!(again.next_for("b"), Some(("acme/9.0".into(), 3)));
        assert_eq!(
            again.snapshot()["b"]["acme/9.0"].last_error.as_deref(),
            Some("down")
        );
        assert!(again.want(&targets, "acme/9.0", 0).unwrap());
        assert_eq!(again.next_for("a"), Some(("acme/9.0".into(), 0)));
    }

    #[test]
    fn the_table_and_json_say_each_state() {
        let mut all = Targets::new();
        *entry(&mut all, "a", "acme/9.0") = TreeStatus {
            wanted: 3,
            synced: Some(2),
            last_error: Some("refused".into()),
            ..TreeStatus::default()
        };
        *entry(&mut all, "a", "acme/review/7") = TreeStatus {
            wanted: 0,
            synced: Some(0),
            ..TreeStatus::default()
        };
        let table = table(&all);
        assert_eq!(table.len(), 3, "{table:?}");
        assert!(table[0].starts_with("TARGET"), "{table:?}");
        assert!(
            table[1].contains("acme/9.0") && table[1].ends_with("3       2  failing: refused"),
            "{table:?}"
        );
        assert!(table[2].ends_with("-       -  retired"), "{table:?}");
        let json = to_json(&all).unwrap();
        assert_eq!(json["a"]["acme/9.0"]["state"], "failing: refused");
        assert_eq!(json["a"]["acme/9.0"]["wanted"], 3);
        assert_eq!(json["a"]["acme/review/7"]["state"], "retired");
    }
}
