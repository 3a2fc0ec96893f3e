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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    #[tokio::test]
    async fn the_live_snapshot_is_what_its_record_names() {
        let dir = tempfile::tempdir().unwrap();
        let acme = dir.path().join("acme");
        fs_err::create_dir_all(acme.join(".9.0.gen/7")).unwrap();
        fs_err::write(
            acme.join(".9.0.gen/7/snapshot.json"),
            r#"{"generation": 7}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(".9.0.gen/7", acme.join("9.0")).unwrap();
        fs_err::create_dir_all(acme.join(".8.0.gen/1")).unwrap();
        fs_err::write(
            acme.join(".8.0.gen/1/snapshot.json"),
            r#"{"generation": "x"}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(".8.0.gen/1", acme.join("8.0")).unwrap();
        let reader = Reader::new(
            Source::Dir(dir.path().to_owned()),
            &[],
            &[],
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let tree = |t: &str| TreeName::parse(t).unwrap();
        assert_eq!(
            reader.live_snapshot(&tree("acme/9.0")).await.unwrap(),
            Some(7)
        );
        assert_eq!(reader.live_snapshot(&tree("acme/1.0")).await.unwrap(), None);
        assert!(matches!(
            reader.live_snapshot(&tree("acme/8.0")).await,
            Err(ReadError::Index { .. })
        ));
    }
}
