//! A build's packages included into their suite and switched live.

use std::path::PathBuf;

use perestroika_config::Family;
use perestroika_protocol::messages::Target;

use super::generation::Published;
use super::logs::keep_log;
use crate::error::{io, PublishError};
use crate::publisher::Publisher;

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The customer (`acme`).
    pub customer: String,
    /// The release series (`9.0`).
    pub version: String,
    /// The distro the files were built for (`bookworm`).
    pub distro: String,
    /// The release itself, or the review repository of a change or topic.
    pub target: Target,
    /// Verified files: .deb, .udeb, .dsc (with its tarballs beside it); others are ignored.
    pub files: Vec<PathBuf>,
    /// The build log to publish as `logs/<job id>.log`, if any.
    pub log: Option<(String, PathBuf)>,
    /// When the build was asked for, if known (see [`PublishError::Retired`]).
    pub requested_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Publisher<'_> {
    /// Includes the files and switches the tree to a new generation if anything changed.
    pub fn publish(&self, req: &PublishRequest) -> Result<Published, PublishError> {
        let release = self.release(&req.customer, &req.version)?;
        let family = release
            .family_of(&req.distro)
            .ok_or_else(|| PublishError::UnknownDistro {
                distro: req.distro.clone(),
                of: format!("{} {}", req.customer, req.version),
            })?;
        let (tree, tree_name, lock) =
            self.trees()
                .lock_tree(&req.customer, &req.version, &req.target)?;
        self.check_not_retired(&tree_name, req.requested_at)?;
        let (deb, deb_suites) = self.open_deb(
            &tree,
            &lock,
            &tree_name,
            &req.customer,
            &req.version,
            &req.target,
        )?;
        let suite = self.suite_for(&req.customer, &req.version, &req.distro, &req.target);
        match (family, &deb) {
            (Family::Deb, Some(repo)) => {
                repo.include(&suite, None, &req.files)?;
                crate::crash::point("included");
                // A release keeps every version; a review repository shows its change's
                // latest patch set only (reprepro's indexes name the newest version).
                if req.target == Target::Release {
                    let history = self.state_dir(&tree_name).join("history");
                    crate::history::keep_every_version(&repo.dists(), &history, &deb_suites)
                        .map_err(io(&history))?;
                }
                crate::crash::point("exported");
            }
            _ => {
                self.include_rpms(&tree, &tree_name, &release.arches, &suite, &req.files)?;
                crate::crash::point("included");
            }
        }
        if let Some((job_id, log)) = &req.log {
            keep_log(&tree.pool().join("logs"), job_id, log)?;
        }
        self.switch(
            &tree,
            &lock,
            tree_name,
            deb.as_ref(),
            &deb_suites,
            (&req.customer, &req.version, &req.target),
        )
    }
}
