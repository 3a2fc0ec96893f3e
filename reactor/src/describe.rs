//! Events in words, for the log.

use perestroika_gerrit::events::Event;

/// A short description of an event for the log.
pub fn describe(event: &Event) -> String {
    match event {
        Event::ChangeMerged {
            change,
            patch_set,
            new_rev,
        } => {
            let rev = new_rev.as_deref().map(short).unwrap_or("?");
            format!(
                "change-merged {} {},{} -> {rev}",
                change.project, change.number, patch_set.number
            )
        }
        Event::PatchsetCreated { change, patch_set } => {
            format!(
                "patchset-created {} {},{}",
                change.project, change.number, patch_set.number
            )
        }
        Event::CommentAdded {
            change, patch_set, ..
        } => {
            format!(
                "comment-added {} {},{}",
                change.project, change.number, patch_set.number
            )
        }
        Event::RefUpdated {
            project,
            refname,
            new_rev,
        } => format!("ref-updated {project} {refname} {}", short(new_rev)),
        Event::ChangeClosed { change } => {
            format!("change-closed {} {}", change.project, change.number)
        }
        Event::DroppedOutput => "dropped-output".into(),
    }
}

/// The first twelve characters of a revision (whatever it holds: it came from the wire).
pub fn short(rev: &str) -> &str {
    rev.char_indices().nth(12).map_or(rev, |(at, _)| &rev[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_shortened_on_a_character_boundary() {
        assert_eq!(short(&"a".repeat(40)), "aaaaaaaaaaaa");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short("ééééééééééééé"), "éééééééééééé");
    }
}
