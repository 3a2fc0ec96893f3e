//! What the operator names on the command line, checked against the configuration: mirror
//! targets, trees, and the keys a tree's signatures must be made by.

use std::path::PathBuf;

use perestroika_config::FarmConfig;

use crate::rsync::{RsyncError, Target};
use crate::sync::SyncError;
use perestroika_tree::TreeName;

/// A target, tree or key the configuration does not have.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("no [[mirrors]] entry named {name:?} in {}", config.display())]
    NoSuchTarget { name: String, config: PathBuf },
    #[error("{} has no [[mirrors]] targets", config.display())]
    NoTargets { config: PathBuf },
    #[error(transparent)]
    Target(#[from] RsyncError),
    #[error(transparent)]
    Tree(#[from] SyncError),
    #[error("{} has no tree {tree}; its releases are {} (and each customer's review trees, CUSTOMER/review/NAME)", config.display(), releases.join(", "))]
    UnknownTree {
        tree: String,
        config: PathBuf,
        releases: Vec<String>,
    },
    #[error("{} pins no signing key, so no signature can be checked: set [signing] fingerprint there (the publisher's key) or pass --fingerprint FPR", config.display())]
    NoPinnedKey { config: PathBuf },
}

impl SelectionError {
    /// Whether the command line or the configuration must change (rather than a target).
    pub fn is_usage(&self) -> bool {
        !matches!(self, SelectionError::Target(_))
    }
}

/// The configured targets, or only the one named `only`.
pub fn targets(farm: &FarmConfig, only: Option<&str>) -> Result<Vec<Target>, SelectionError> {
    let chosen: Vec<_> = farm
        .mirrors
        .iter()
        .filter(|m| only.is_none_or(|name| m.name == name))
        .collect();
    if chosen.is_empty() {
        let config = farm.source.clone();
        return Err(match only {
            Some(name) => SelectionError::NoSuchTarget {
                name: name.to_owned(),
                config,
            },
            None => SelectionError::NoTargets { config },
        });
    }
    Ok(chosen
        .into_iter()
        .map(Target::new)
        .collect::<Result<_, _>>()?)
}

/// The keys `verify` accepts signatures from on `tree`: those given, else those the
/// configuration pins — the review key for a review or topic tree, when one is configured.
pub fn pinned(
    farm: &FarmConfig,
    tree: &str,
    given: Vec<String>,
) -> Result<Vec<String>, SelectionError> {
    if !given.is_empty() {
        return Ok(given);
    }
    let review_key = perestroika_protocol::messages::review_tree_customer(tree)
        .and_then(|customer| farm.review_key(customer));
    match &farm.signing {
        Some(signing) => Ok(match review_key {
            Some(review) => vec![review],
            None => signing.pinned(),
        }),
        None => Err(SelectionError::NoPinnedKey {
            config: farm.source.clone(),
        }),
    }
}

/// A tree of a customer and release the configuration has (or a customer's review tree).
pub fn tree_ref(farm: &FarmConfig, tree: &str) -> Result<TreeName, SelectionError> {
    let parsed = TreeName::parse(tree).map_err(SyncError::Tree)?;
    let customer = parsed.customer();
    let known = if parsed.is_review() {
        farm.customer(customer).is_some()
    } else {
        farm.release(customer, parsed.leaf()).is_some()
    };
    if !known {
        return Err(SelectionError::UnknownTree {
            tree: tree.to_owned(),
            config: farm.source.clone(),
            releases: farm
                .releases()
                .map(|(c, r)| format!("{}/{}", c.name, r.name))
                .collect(),
        });
    }
    Ok(parsed)
}
