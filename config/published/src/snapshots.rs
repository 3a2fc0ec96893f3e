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

    /// The snapshots of `tree` that hold at least one of `suites` signed by the pinned keys
    /// (without pinned keys, from a local root: with a `Release`), newest last. The list of
    /// generations is read untrusted (the directory, or the mirror's listing page); each
    /// number is kept only once its own `InRelease` below its generation path verifies, so
    /// a forged listing can hide snapshots but never add one.
    pub async fn snapshots(
        &self,
        tree: &TreeName,
        suites: &[String],
    ) -> Result<Vec<u64>, ReadError> {
        let Some(names) = self
            .source()
            .list(&tree.generations(), self.limits())
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut numbers: Vec<u64> = names
            .iter()
            .filter_map(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .collect();
        numbers.sort_unstable();
        let mut verified = Vec::new();
        for n in numbers {
            let generation = tree.generation(n);
            for suite in suites {
                match self.deb_suite(&generation, suite).await {
                    Ok(Some(_)) => {
                        verified.push(n);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(snapshot = n, %suite, error = %e, "a listed snapshot does not verify; left out");
                    }
                }
            }
        }
        Ok(verified)
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
