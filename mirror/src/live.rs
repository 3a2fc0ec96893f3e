//! Which generation of a tree is live: the one its link in the public root points at.

use perestroika_config::FarmConfig;
pub use perestroika_tree::LiveError;
use perestroika_tree::{Generation, PublicTree, TreeName};

/// The generation `tree`'s link in the public root points at.
pub fn live_generation(farm: &FarmConfig, tree: &TreeName) -> Result<u64, LiveError> {
    PublicTree::at(&farm.paths.public_root, tree)
        .live_generation()
        .map(Generation::get)
}
