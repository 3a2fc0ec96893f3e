//! Review repositories taken down when their change is merged, abandoned or deleted, and kept
//! down against late builds of it.

use std::path::PathBuf;

use perestroika_protocol::messages::Target;

use crate::error::{io, PublishError};
use crate::publisher::Publisher;

impl Publisher<'_> {
    /// The mark a retired review repository leaves (holding the retirement's time), so that a
    /// build of its change asked for before the retirement but finishing after it does not
    /// bring the repository back.
    pub(super) fn retired_mark(&self, tree: &str) -> PathBuf {
        self.farm.paths.state.join("publisher/retired").join(tree)
    }

    /// Refuses a build asked for before its review repository was retired. A build asked for
    /// later (the change was restored), or at an unknown time (by hand), starts the repository
    /// afresh and clears the mark.
    pub(super) fn check_not_retired(
        &self,
        tree: &str,
        requested_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), PublishError> {
        let mark = self.retired_mark(tree);
        let Ok(text) = fs_err::read_to_string(&mark) else {
            return Ok(());
        };
        let retired = chrono::DateTime::parse_from_rfc3339(text.trim()).ok();
        if let (Some(asked), Some(retired)) = (requested_at, retired) {
            if asked <= retired {
                return Err(PublishError::Retired {
                    tree: tree.to_owned(),
                });
            }
        }
        fs_err::remove_file(&mark).map_err(io(&mark))
    }

    /// Takes down the review repository of a change with its private state. Returns the
    /// tree's path relative to the public root, and whether there was anything to remove.
    pub fn retire_review(
        &self,
        customer: &str,
        change: u64,
        requested_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, bool), PublishError> {
        let target = Target::Review { change };
        let (tree, tree_name, lock) = self.trees().lock_tree(customer, "", &target)?;
        let mark = self.retired_mark(&tree_name);
        fs_err::create_dir_all(mark.parent().expect("below the state")).map_err(io(&mark))?;
        perestroika_host::files::write_durable(&mark, requested_at.to_rfc3339().as_bytes())
            .map_err(io(&mark))?;
        let mut found = tree.remove(&lock)?;
        // The change may come back (a tree of the same name starts afresh and locks anew).
        lock.remove_file();
        for state in [self.state_dir(&tree_name), self.rpm_state(&tree_name)] {
            if state.exists() {
                fs_err::remove_dir_all(&state).map_err(io(&state))?;
                found = true;
            }
        }
        Ok((tree_name, found))
    }
}
