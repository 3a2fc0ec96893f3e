//! Catching up after a gap: what happened on Gerrit while the reactor's session was down,
//! read with `gerrit query` and turned into the events the stream would have carried.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use perestroika_config::settings::GerritSettings;
use perestroika_gerrit::events::{parse_query_line, Event, QueryLine, QueryRow, Stamped};
use perestroika_gerrit::session::{shell_quote, GerritSession, SshError};
use tracing::warn;

/// Rows per catch-up query page.
const QUERY_PAGE: u32 = 200;

/// The events missed during a gap, oldest first, and the query's `after:` time.
#[derive(Debug)]
pub struct Missed {
    pub events: Vec<Stamped>,
    /// Gerrit's time the query started from, for the log.
    pub after: String,
}

/// Queries what changed since `last`, the last handled event's time (minus the safety
/// margin). For each branch with merged changes, one change-merged of the newest (its branch
/// head now is built once: it holds every one of them; the newest change gets the feedback)
/// and a change-closed of each older one (their review repositories are retired); a
/// patchset-created of every open change's current patch set; and a comment-added of every
/// review message written after `last` (a `recheck` made while the session was down).
pub async fn missed(
    session: &GerritSession,
    gerrit: &GerritSettings,
    last: i64,
) -> Result<Missed, SshError> {
    let since = last - gerrit.catchup_margin_secs as i64;
    let after = Utc
        .timestamp_opt(since, 0)
        .single()
        .unwrap_or_else(Utc::now)
        .format("%Y-%m-%d %H:%M:%S +0000")
        .to_string();
    let mut events = Vec::new();
    let mut merged: BTreeMap<(String, String), Vec<QueryRow>> = BTreeMap::new();
    for status in ["merged", "open"] {
        let mut start = 0;
        let comments = if status == "open" { " --comments" } else { "" };
        loop {
            let command = format!(
                "gerrit query --format=JSON --current-patch-set{comments} --start {start} {} {} limit:{QUERY_PAGE}",
                shell_quote(&format!("status:{status}")),
                shell_quote(&format!("after:\"{after}\""))
            );
            let out = session.run(&command).await?;
            let (mut rows, mut more) = (0, false);
            for line in String::from_utf8_lossy(&out)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                match parse_query_line(line) {
                    Ok(QueryLine::Row(row)) => {
                        rows += 1;
                        let Some(patch_set) = row.current_patch_set.clone() else {
                            warn!(
                                change = row.change.number,
                                "query row without current patch set; skipped"
                            );
                            continue;
                        };
                        // Messages up to the last handled event were seen live.
                        for comment in &row.comments {
                            let Some(written) = comment.timestamp.filter(|t| *t > last) else {
                                continue;
                            };
                            events.push(Stamped {
                                event: Event::CommentAdded {
                                    change: row.change.clone(),
                                    patch_set: patch_set.clone(),
                                    comment: comment.message.clone(),
                                },
                                created_on: Some(written),
                            });
                        }
                        if status == "merged" {
                            merged
                                .entry((row.change.project.clone(), row.change.branch.clone()))
                                .or_default()
                                .push(*row);
                            continue;
                        }
                        events.push(Stamped {
                            event: Event::PatchsetCreated {
                                change: row.change,
                                patch_set,
                            },
                            created_on: row.last_updated,
                        });
                    }
                    Ok(QueryLine::Stats { more_changes, .. }) => more = more_changes,
                    Err(e) => warn!(reason = %e, "skipped query line"),
                }
            }
            if !more || rows == 0 {
                break;
            }
            start += rows;
        }
    }
    for mut rows in merged.into_values() {
        // Merged in the same second: the later change number is taken as the newer.
        rows.sort_by_key(|r| (r.last_updated, r.change.number));
        let newest = rows.pop().expect("a group has a row");
        for older in rows {
            events.push(Stamped {
                event: Event::ChangeClosed {
                    change: older.change,
                },
                created_on: older.last_updated,
            });
        }
        let Some(patch_set) = newest.current_patch_set else {
            continue;
        };
        // The branch head, read when this is planned: what the branch holds now.
        events.push(Stamped {
            event: Event::ChangeMerged {
                change: newest.change,
                patch_set,
                new_rev: None,
            },
            created_on: newest.last_updated,
        });
    }
    events.sort_by_key(|e| e.created_on);
    Ok(Missed { events, after })
}
