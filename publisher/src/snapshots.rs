//! A release's snapshots as the operator sees them: which there are, which is live, which are
//! kept as shipped, and what one holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use perestroika_protocol::messages::Target;

use crate::error::PublishError;
use crate::suite_contents::deb_contents;
use crate::trees::Shipped;
use crate::trees::Trees;

/// One snapshot (generation) of a release.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its number.
    pub snapshot: u64,
    /// Whether it is the one clients see.
    pub live: bool,
    /// Where it lies.
    pub path: PathBuf,
    /// Its shipped mark, if it is kept as shipped.
    pub shipped: Option<Shipped>,
}

/// What a snapshot holds.
#[derive(Debug, Clone)]
pub struct SnapshotContents {
    /// Its record (`snapshot.json`): when it was made, its deb suites and rpm files.
    pub record: serde_json::Value,
    /// Whether it is the one clients see.
    pub live: bool,
    /// Each deb suite's packages, as `component package version architecture`.
    pub deb: BTreeMap<String, Vec<String>>,
}

impl Trees<'_> {
    /// The tree of a release (its path relative to the public root) and its snapshots, oldest
    /// first.
    pub fn snapshots(&self, customer: &str, version: &str) -> (String, Vec<Snapshot>) {
        let (tree, name) = self.tree(customer, version, &Target::Release);
        let live = tree.current();
        let mut shipped = self.shipped(&name);
        let listed = tree
            .generations()
            .into_iter()
            .map(|g| Snapshot {
                snapshot: g,
                live: Some(g) == live,
                path: tree.generation(g),
                shipped: shipped.remove(&g),
            })
            .collect();
        (name, listed)
    }

    /// What snapshot `id` of a release holds; refused when there is no such snapshot.
    pub fn snapshot_contents(
        &self,
        customer: &str,
        version: &str,
        id: u64,
    ) -> Result<SnapshotContents, PublishError> {
        let (tree, name) = self.tree(customer, version, &Target::Release);
        let record = tree.generation_dir(id).record();
        let text = fs_err::read_to_string(&record).map_err(|_| PublishError::NoSnapshot {
            tree: name,
            snapshot: id,
        })?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| PublishError::Record {
                path: record,
                source,
            })?;
        let mut deb = BTreeMap::new();
        for suite in parsed["deb_suites"].as_array().into_iter().flatten() {
            let suite = suite.as_str().unwrap_or_default();
            deb.insert(suite.to_owned(), deb_contents(&tree.generation(id), suite));
        }
        Ok(SnapshotContents {
            record: parsed,
            live: tree.current() == Some(id),
            deb,
        })
    }
}
