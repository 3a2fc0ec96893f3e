//! Which generation of a tree is live: the one its link in the public root points at.

use std::path::PathBuf;

use perestroika_config::FarmConfig;

use crate::sync::TreeRef;

/// A tree's live generation cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{tree} is not published here ({} is not a link)", link.display())]
    NotPublished {
        tree: String,
        link: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} points at {}, not a generation", link.display(), target.display())]
    NotAGeneration { link: PathBuf, target: PathBuf },
}

/// The generation `tree`'s link in the public root points at.
pub fn live_generation(farm: &FarmConfig, tree: &TreeRef) -> Result<u64, LiveError> {
    let link = farm.paths.public_root.join(tree.link());
    let target = fs_err::read_link(&link).map_err(|source| LiveError::NotPublished {
        tree: tree.to_string(),
        link: link.clone(),
        source,
    })?;
    target
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| LiveError::NotAGeneration {
            link: link.clone(),
            target: target.clone(),
        })
}
