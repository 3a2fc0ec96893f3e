//! The publisher's trees without its keys: where each target's tree lies, the lock its writers
//! take, and the snapshots of a release the operator lists, reads and marks shipped. Nothing
//! here signs, so nothing here opens a key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use perestroika_config::{FarmConfig, Release};
use perestroika_host::files::{sync_dir, write_durable};
use perestroika_protocol::messages::Target;

use crate::error::{io, PublishError};
use crate::tree::{Tree, TreeLock};

/// A snapshot marked shipped: never pruned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shipped {
    /// The snapshot's number.
    pub snapshot: u64,
    /// When it was marked.
    pub marked: chrono::DateTime<chrono::Utc>,
    /// What the operator wrote about it (e.g. the release it went out as).
    #[serde(default)]
    pub note: String,
}

/// The farm's public trees, as the publisher lays them out.
#[derive(Clone, Copy)]
pub struct Trees<'a> {
    /// The farm's configuration.
    pub farm: &'a FarmConfig,
}

impl<'a> Trees<'a> {
    /// The public tree a target publishes into, and its path relative to the public root.
    pub fn tree(&self, customer: &str, version: &str, target: &Target) -> (Tree, String) {
        let path = target.tree(customer, version);
        let (parent, name) = path
            .rsplit_once('/')
            .expect("a tree lies below its customer");
        let tree = Tree::new(&self.farm.paths.public_root.join(parent), name);
        (tree, path)
    }

    /// The tree a target publishes into, locked against every other writer (see
    /// [`Tree::lock`]) until the returned lock is dropped: the one way into a tree for
    /// writing, so publishes, failed builds' logs, promotions and retirements of one tree —
    /// from any release's queue or process — never interleave.
    pub fn lock_tree(
        &self,
        customer: &str,
        version: &str,
        target: &Target,
    ) -> Result<(Tree, String, TreeLock), PublishError> {
        let (tree, name) = self.tree(customer, version, target);
        let lock = tree.lock(&self.lock_path(&name))?;
        Ok((tree, name, lock))
    }

    /// Where the lock of the tree `name` (relative to the public root) is kept: in the
    /// publisher's state, not in the public tree the mirrors copy.
    fn lock_path(&self, name: &str) -> PathBuf {
        self.farm
            .paths
            .state
            .join("publisher/locks")
            .join(format!("{name}.lock"))
    }

    /// A release of the configuration; refused when it is not there.
    pub fn release(&self, customer: &str, version: &str) -> Result<&'a Release, PublishError> {
        self.farm
            .release(customer, version)
            .ok_or_else(|| PublishError::UnknownRelease {
                customer: customer.to_owned(),
                version: version.to_owned(),
            })
    }

    /// Where the shipped marks of the tree `tree_name` are kept: the publisher's own state
    /// (the public tree is what the mirrors copy, and a generation never changes).
    fn shipped_dir(&self, tree_name: &str) -> PathBuf {
        self.farm
            .paths
            .state
            .join("publisher/shipped")
            .join(tree_name)
    }

    /// The snapshots of a tree marked shipped, by number.
    pub fn shipped(&self, tree_name: &str) -> BTreeMap<u64, Shipped> {
        let Ok(entries) = fs_err::read_dir(self.shipped_dir(tree_name)) else {
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| {
                let text = fs_err::read(e.path()).ok()?;
                let mark: Shipped = serde_json::from_slice(&text).ok()?;
                Some((mark.snapshot, mark))
            })
            .collect()
    }

    /// Marks snapshot `n` of a release as shipped, so that no prune removes it; recorded
    /// durably before it returns. Refused when the release has no such snapshot.
    pub fn keep_snapshot(
        &self,
        customer: &str,
        version: &str,
        n: u64,
        note: &str,
    ) -> Result<Shipped, PublishError> {
        self.release(customer, version)?;
        let (tree, tree_name, _lock) = self.lock_tree(customer, version, &Target::Release)?;
        if !tree.generations().contains(&n) {
            return Err(PublishError::NoSnapshot {
                tree: tree_name,
                snapshot: n,
            });
        }
        let mark = Shipped {
            snapshot: n,
            marked: chrono::Utc::now(),
            note: note.to_owned(),
        };
        let path = self.shipped_dir(&tree_name).join(format!("{n}.json"));
        let bytes = serde_json::to_vec_pretty(&mark).expect("json");
        // Durable with its directory entry: write_durable syncs the directory too.
        write_durable(&path, &bytes).map_err(io(&path))?;
        Ok(mark)
    }

    /// Removes the shipped mark of snapshot `n`: the next publish prunes it if it is beyond
    /// retention. Returns whether it was marked.
    pub fn unkeep_snapshot(
        &self,
        customer: &str,
        version: &str,
        n: u64,
    ) -> Result<bool, PublishError> {
        self.release(customer, version)?;
        let (_tree, tree_name, _lock) = self.lock_tree(customer, version, &Target::Release)?;
        let path = self.shipped_dir(&tree_name).join(format!("{n}.json"));
        if !path.exists() {
            return Ok(false);
        }
        fs_err::remove_file(&path).map_err(io(&path))?;
        let dir = path.parent().expect("below the state");
        sync_dir(dir).map_err(io(dir))?;
        Ok(true)
    }
}
