//! Mirror announcements: a tree changed and mirrors should copy it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::*;

/// Sent on `mirror.<customer>.<version>` after each switch of the public tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorAnnouncement {
    pub schema_version: u32,
    pub customer: String,
    pub version: String,
    /// The snapshot that is now live.
    pub snapshot: String,
    /// Increases with every switch of this release; a mirror skips announcements older than
    /// what it already has. 0 means the tree was taken down (a retired review repository).
    pub generation: u64,
    /// Path of the release's tree relative to the public root (`<customer>/<version>`, or
    /// `<customer>/review/<name>`).
    pub tree: String,
    pub published_at: DateTime<Utc>,
}

impl Message for MirrorAnnouncement {
    message_kind!("mirror announcement");
    fn check(&self) -> Result<(), MessageError> {
        let n = Names(Self::KIND);
        n.release(&self.customer, &self.version)?;
        n.token("snapshot", &self.snapshot)?;
        n.project(&self.tree)
    }
}
