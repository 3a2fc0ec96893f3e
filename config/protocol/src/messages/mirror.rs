//! Mirror announcements: a tree changed and mirrors should copy it.

use chrono::{DateTime, Utc};
use perestroika_config::names::{check_customer, check_project, check_token, check_version};
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
    const KIND: &'static str = "mirror announcement";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn check(&self) -> Result<(), MessageError> {
        let k = Self::KIND;
        name(k, check_customer(&self.customer))?;
        name(k, check_version(&self.version))?;
        name(k, check_token("snapshot", &self.snapshot))?;
        name(k, check_project(&self.tree))
    }
}
