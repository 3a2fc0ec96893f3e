//! Which snapshot (generation) of a tree to read. Over http the number is only a pointer:
//! the live tree's `snapshot.json` names it, and nothing signs that record. What makes a
//! snapshot trusted is its own signed `InRelease` below its generation path
//! (`<customer>/.<version>.gen/<N>/deb/dists/<suite>/InRelease`), which every reader of it
//! verifies against the pinned keys: a forged number can only point at another snapshot the
//! farm signed, or at none (refused).

use perestroika_tree::TreeName;

use crate::{ReadError, Reader};

/// Bound of a snapshot's record.
const MAX_RECORD_BYTES: u64 = 1 << 20;

impl Reader {
    /// The number of the live snapshot of `tree`, as its record (`snapshot.json`) names it;
    /// `None` when the tree has none. Not verified: read the snapshot's files through its
    /// generation path ([`TreeName::generation`]), whose `InRelease` is.
    pub async fn live_snapshot(&self, tree: &TreeName) -> Result<Option<u64>, ReadError> {
        let path = format!("{}/snapshot.json", tree.link());
        let Some(bytes) = self.get(&path, MAX_RECORD_BYTES).await? else {
            return Ok(None);
        };
        let bad = |reason: String| ReadError::Index {
            file: path.clone(),
            reason,
        };
        let record: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        record
            .get("generation")
            .and_then(serde_json::Value::as_u64)
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad("names no generation number".into()))
    }
}
