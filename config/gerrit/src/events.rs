//! Gerrit's `stream-events` and `query` JSON, read the way real servers write it.
//!
//! Servers differ: numbers arrive as strings on 2.x, `refName` is sometimes a short branch
//! name, fields go missing, and plugins add event types of their own. Parsing keeps what a
//! build farm needs and says why a line is skipped.

use perestroika_config::names::check_commit;
use serde_json::Value;

/// A change as an event or query row names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub project: String,
    /// Branch without `refs/heads/`.
    pub branch: String,
    pub number: u64,
    pub topic: Option<String>,
    /// `NEW`, `MERGED`, `ABANDONED` when the server says.
    pub status: Option<String>,
}

/// A patch set of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchSet {
    pub number: u32,
    pub revision: String,
    /// `refs/changes/NN/CHANGE/PS`.
    pub fetch_ref: String,
}

/// The events the farm acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A change was submitted. What the branch holds now is `new_rev` (Gerrit's `newRev`: a
    /// merge commit, a rebased or cherry-picked commit, or the patch set's own revision);
    /// servers older than 2.13 do not send it.
    ChangeMerged {
        change: Change,
        patch_set: PatchSet,
        new_rev: Option<String>,
    },
    /// A new patch set to build for review.
    PatchsetCreated { change: Change, patch_set: PatchSet },
    /// A direct push to a branch.
    RefUpdated {
        project: String,
        /// Full ref name (`refs/heads/…` added when the server sent a short name).
        refname: String,
        new_rev: String,
    },
    /// A review comment; a rebuild request when it holds the recheck phrase.
    CommentAdded {
        change: Change,
        patch_set: PatchSet,
        comment: String,
    },
    /// A change was abandoned or deleted: its review repository goes.
    ChangeClosed { change: Change },
    /// Gerrit dropped events of this stream (its queue for the stream overflowed): whatever
    /// happened meanwhile must be caught up.
    DroppedOutput,
}

/// An event with Gerrit's time stamp (seconds since the epoch), when the server sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub event: Event,
    pub created_on: Option<i64>,
}

/// Why a line was not turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Not JSON, or JSON without the fields its type needs.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A valid event of a type the farm does not act on.
    #[error("event type {0:?} is not acted on")]
    Ignored(String),
}

/// The all-zero revision Gerrit uses for a created or deleted ref.
pub const NULL_REV: &str = "0000000000000000000000000000000000000000";

/// Parses one `stream-events` line.
pub fn parse_event(line: &str) -> Result<Stamped, Skip> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| Skip::Malformed(format!("not JSON: {e}")))?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(Skip::Malformed("no \"type\" field".into()));
    };
    let created_on = value.get("eventCreatedOn").and_then(int);
    let event = match kind {
        "change-merged" => Event::ChangeMerged {
            change: change(&value, "change")?,
            patch_set: patch_set(&value, "patchSet")?,
            new_rev: match value.get("newRev").and_then(Value::as_str) {
                None | Some("" | NULL_REV) => None,
                Some(rev) => Some(revision(rev, "newRev")?),
            },
        },
        "dropped-output" => Event::DroppedOutput,
        "patchset-created" => Event::PatchsetCreated {
            change: change(&value, "change")?,
            patch_set: patch_set(&value, "patchSet")?,
        },
        "comment-added" => Event::CommentAdded {
            change: change(&value, "change")?,
            patch_set: patch_set(&value, "patchSet")?,
            comment: value
                .get("comment")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        "change-abandoned" | "change-deleted" => Event::ChangeClosed {
            change: change(&value, "change")?,
        },
        "ref-updated" => {
            let update = value
                .get("refUpdate")
                .ok_or_else(|| Skip::Malformed("ref-updated without \"refUpdate\"".into()))?;
            let project = text(update, "project", "refUpdate")?;
            let name = text(update, "refName", "refUpdate")?;
            let refname = if name.starts_with("refs/") {
                name
            } else {
                format!("refs/heads/{name}")
            };
            Event::RefUpdated {
                project,
                refname,
                new_rev: revision(&text(update, "newRev", "refUpdate")?, "refUpdate.newRev")?,
            }
        }
        other => return Err(Skip::Ignored(other.to_owned())),
    };
    Ok(Stamped { event, created_on })
}

/// One row of `gerrit query --format=JSON --current-patch-set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRow {
    pub change: Change,
    pub current_patch_set: Option<PatchSet>,
    /// Every patch set, when the query asked for them (`--patch-sets`).
    pub patch_sets: Vec<PatchSet>,
    /// `lastUpdated`, seconds since the epoch.
    pub last_updated: Option<i64>,
    /// The change's review messages, when the query asked for them (`--comments`).
    pub comments: Vec<QueryComment>,
}

/// A review message of a change, as `gerrit query --comments` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryComment {
    /// When it was written, seconds since the epoch.
    pub timestamp: Option<i64>,
    /// Its text (`Patch Set 2:\n\nrecheck`).
    pub message: String,
}

/// A line of a query answer: a change, or the closing stats line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryLine {
    Row(Box<QueryRow>),
    Stats { rows: u64, more_changes: bool },
}

/// Parses one line of a `gerrit query --format=JSON` answer.
pub fn parse_query_line(line: &str) -> Result<QueryLine, Skip> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| Skip::Malformed(format!("not JSON: {e}")))?;
    match value.get("type").and_then(Value::as_str) {
        Some("stats") => Ok(QueryLine::Stats {
            rows: value.get("rowCount").and_then(int).unwrap_or(0) as u64,
            more_changes: value
                .get("moreChanges")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        Some("error") => Err(Skip::Malformed(format!(
            "query error: {}",
            value.get("message").and_then(Value::as_str).unwrap_or("")
        ))),
        _ => Ok(QueryLine::Row(Box::new(QueryRow {
            change: change_fields(&value)?,
            current_patch_set: match value.get("currentPatchSet") {
                Some(ps) => Some(patch_set_fields(ps)?),
                None => None,
            },
            patch_sets: value
                .get("patchSets")
                .and_then(Value::as_array)
                .map(|all| all.iter().map(patch_set_fields).collect())
                .transpose()?
                .unwrap_or_default(),
            last_updated: value.get("lastUpdated").and_then(int),
            comments: value
                .get("comments")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .map(|c| QueryComment {
                            timestamp: c.get("timestamp").and_then(int),
                            message: c
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }))),
    }
}

/// A number that may arrive as a JSON number or a string.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A commit id the event names, which becomes part of a job: 40 or 64 lower-case hex digits.
fn revision(rev: &str, field: &str) -> Result<String, Skip> {
    check_commit(rev)
        .map(|()| rev.to_owned())
        .map_err(|e| Skip::Malformed(format!("\"{field}\": {e}")))
}

fn text(v: &Value, key: &str, within: &str) -> Result<String, Skip> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Skip::Malformed(format!("no \"{within}.{key}\"")))
}

fn change(event: &Value, key: &str) -> Result<Change, Skip> {
    let v = event
        .get(key)
        .ok_or_else(|| Skip::Malformed(format!("no \"{key}\" object")))?;
    change_fields(v)
}

fn change_fields(v: &Value) -> Result<Change, Skip> {
    let branch = text(v, "branch", "change")?;
    Ok(Change {
        project: text(v, "project", "change")?,
        branch: branch
            .strip_prefix("refs/heads/")
            .map(str::to_owned)
            .unwrap_or(branch),
        number: v
            .get("number")
            .and_then(int)
            .filter(|n| *n > 0)
            .ok_or_else(|| Skip::Malformed("no \"change.number\"".into()))? as u64,
        topic: v.get("topic").and_then(Value::as_str).map(str::to_owned),
        status: v.get("status").and_then(Value::as_str).map(str::to_owned),
    })
}

fn patch_set(event: &Value, key: &str) -> Result<PatchSet, Skip> {
    let v = event
        .get(key)
        .ok_or_else(|| Skip::Malformed(format!("no \"{key}\" object")))?;
    patch_set_fields(v)
}

fn patch_set_fields(v: &Value) -> Result<PatchSet, Skip> {
    Ok(PatchSet {
        number: v
            .get("number")
            .and_then(int)
            .filter(|n| *n > 0 && *n <= u32::MAX as i64)
            .ok_or_else(|| Skip::Malformed("no \"patchSet.number\"".into()))?
            as u32,
        revision: text(v, "revision", "patchSet")?,
        fetch_ref: text(v, "ref", "patchSet")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = include_str!("../../../tests/data/gerrit/events.jsonl");
    const QUERY: &str = include_str!("../../../tests/data/gerrit/query.jsonl");

    fn kind(line: &str) -> String {
        match parse_event(line) {
            Ok(s) => match s.event {
                Event::ChangeMerged { .. } => "merged".into(),
                Event::PatchsetCreated { .. } => "patchset".into(),
                Event::RefUpdated { .. } => "ref".into(),
                Event::CommentAdded { .. } => "comment".into(),
                Event::ChangeClosed { .. } => "closed".into(),
                Event::DroppedOutput => "dropped".into(),
            },
            Err(Skip::Ignored(t)) => format!("ignored {t}"),
            Err(Skip::Malformed(why)) => format!("malformed: {why}"),
        }
    }

    #[test]
    fn every_real_event_line_is_acted_on_or_skipped_by_type() {
        let kinds: Vec<String> = REAL.lines().map(kind).collect();
        assert_eq!(
            kinds,
            [
                "comment",
                "merged",
                "ref",
                "patchset",
                "ignored reviewer-added",
                "ignored change-restored",
                "closed",
                "ignored draft-published",
                "ignored merge-failed",
                "ignored change-deferred",
                "ignored reviewer-deleted",
                "comment",
                "merged",
                "ignored change-restored",
                "ignored hashtags-changed",
                "closed",
            ]
        );
    }

    #[test]
    fn string_numbers_and_short_ref_names() {
        let lines: Vec<&str> = REAL.lines().collect();
        let merged = parse_event(lines[1]).unwrap();
        let Event::ChangeMerged {
            change,
            patch_set,
            new_rev,
        } = merged.event
        else {
            panic!("{merged:?}")
        };
        assert_eq!((change.number, patch_set.number), (235677, 1));
        // A Gerrit 2 server: no newRev; the branch head is read instead.
        assert_eq!(new_rev, None);
        assert_eq!(change.project, "qt/qtbase");
        assert_eq!(patch_set.fetch_ref, "refs/changes/77/235677/1");
        let pushed = parse_event(lines[2]).unwrap();
        assert_eq!(
            pushed.event,
            Event::RefUpdated {
                project: "qtqa/tqtc-coin-ci".into(),
                refname: "refs/heads/master".into(),
                new_rev: "a80ed61a98fd0a1d13eab95252db189cdeb0fe96".into(),
            }
        );
        assert_eq!(pushed.created_on, None);
        let abandoned = parse_event(lines[6]).unwrap();
        assert!(matches!(abandoned.event, Event::ChangeClosed { .. }));
        let ignored = parse_event(lines[9]).unwrap_err();
        assert_eq!(ignored, Skip::Ignored("change-deferred".into()));
    }

    #[test]
    fn integer_numbers_of_newer_servers() {
        let line = r#"{"type":"patchset-created","change":{"project":"p","branch":"refs/heads/9.0","number":12,"topic":"t"},"patchSet":{"number":3,"revision":"abc","ref":"refs/changes/12/12/3"},"eventCreatedOn":1700000000}"#;
        let s = parse_event(line).unwrap();
        let Event::PatchsetCreated { change, patch_set } = s.event else {
            panic!()
        };
        assert_eq!(change.branch, "9.0");
        assert_eq!(change.topic.as_deref(), Some("t"));
        assert_eq!(patch_set.number, 3);
        assert_eq!(s.created_on, Some(1_700_000_000));
    }

    #[test]
    fn a_merge_names_the_branch_state_after_it_and_dropped_output_is_an_event() {
        let line = format!(
            r#"{{"type":"change-merged","change":{{"project":"p","branch":"9.0","number":5}},"patchSet":{{"number":2,"revision":"{}","ref":"refs/changes/05/5/2"}},"newRev":"{}","eventCreatedOn":1700000000}}"#,
            "a".repeat(40),
            "b".repeat(40)
        );
        let Event::ChangeMerged { new_rev, .. } = parse_event(&line).unwrap().event else {
            panic!()
        };
        assert_eq!(new_rev, Some("b".repeat(40)));
        // An empty or all-zero newRev names nothing.
        let zero = line.replace(&"b".repeat(40), NULL_REV);
        let Event::ChangeMerged { new_rev, .. } = parse_event(&zero).unwrap().event else {
            panic!()
        };
        assert_eq!(new_rev, None);
        // A forged one is no commit id: the event is malformed, nothing is built from it.
        for forged in [
            "../../etc/passwd",
            "é",
            "ABCDEF0123456789ABCDEF0123456789ABCDEF01",
        ] {
            let line = line.replace(&"b".repeat(40), forged);
            assert!(
                matches!(parse_event(&line), Err(Skip::Malformed(why)) if why.contains("newRev")),
                "{forged}"
            );
            let pushed = format!(
                r#"{{"type":"ref-updated","refUpdate":{{"project":"p","refName":"9.0","oldRev":"{NULL_REV}","newRev":"{forged}"}}}}"#
            );
            assert!(
                matches!(parse_event(&pushed), Err(Skip::Malformed(_))),
                "{forged}"
            );
        }
        let dropped = parse_event(r#"{"type":"dropped-output","eventCreatedOn":1700000001}"#);
        assert_eq!(dropped.unwrap().event, Event::DroppedOutput);
    }

    #[test]
    fn broken_lines_say_why() {
        assert!(matches!(parse_event("{"), Err(Skip::Malformed(_))));
        let e = parse_event(r#"{"type":"change-merged","change":{"project":"p","branch":"b"}}"#)
            .unwrap_err();
        assert_eq!(e, Skip::Malformed("no \"change.number\"".into()));
        let e = parse_event(r#"{"type":"ref-updated"}"#).unwrap_err();
        assert!(e.to_string().contains("refUpdate"), "{e}");
    }

    #[test]
    fn query_rows_carry_their_review_messages() {
        let line = r#"{"project":"p","branch":"master","number":"7","status":"NEW","comments":[{"timestamp":1700000000,"reviewer":{"name":"Dev"},"message":"Patch Set 1:\n\nrecheck"},{"timestamp":"1700000060","message":"Uploaded patch set 2."}]}"#;
        let QueryLine::Row(row) = parse_query_line(line).unwrap() else {
            panic!("not a row")
        };
        assert_eq!(
            row.comments,
            [
                QueryComment {
                    timestamp: Some(1_700_000_000),
                    message: "Patch Set 1:\n\nrecheck".into()
                },
                QueryComment {
                    timestamp: Some(1_700_000_060),
                    message: "Uploaded patch set 2.".into()
                }
            ]
        );
    }

    #[test]
    fn real_query_answer() {
        let lines: Vec<_> = QUERY
            .lines()
            .map(|l| parse_query_line(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        let QueryLine::Row(row) = &lines[0] else {
            panic!()
        };
        assert_eq!(row.change.number, 26655);
        assert_eq!(row.change.status.as_deref(), Some("NEW"));
        assert_eq!(row.last_updated, Some(1_445_901_578));
        assert_eq!(
            lines[5],
            QueryLine::Stats {
                rows: 5,
                more_changes: false
            }
        );
    }
}
