//! The validated name of a tree, relative to the public root.

use std::fmt;

/// A tree's name is not `<customer>/<version>` or `<customer>/review/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tree {0:?} is not <customer>/<version> or <customer>/review/<name>")]
pub struct TreeNameError(pub String);

/// A tree of the public root: `<customer>/<version>` or `<customer>/review/<name>`, split into
/// the directory holding its link (`acme`, `acme/review`) and the link's name (`9.0`, a change
/// number or a topic). No part is empty, starts with a dot or holds `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeName {
    parent: String,
    leaf: String,
}

impl TreeName {
    /// Checks the shape of `tree`.
    pub fn parse(tree: &str) -> Result<Self, TreeNameError> {
        let bad = || TreeNameError(tree.to_owned());
        let (parent, leaf) = tree.rsplit_once('/').ok_or_else(bad)?;
        let parts: Vec<&str> = tree.split('/').collect();
        let shape_ok = matches!(parts.as_slice(), [_, _] | [_, "review", _]);
        if !shape_ok
            || parts
                .iter()
                .any(|p| p.is_empty() || p.starts_with('.') || p.contains(".."))
        {
            return Err(bad());
        }
        Ok(Self {
            parent: parent.to_owned(),
            leaf: leaf.to_owned(),
        })
    }

    /// The directory holding the link, relative to the root: `acme` or `acme/review`.
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// The link's own name: `9.0`, a change number or a topic.
    pub fn leaf(&self) -> &str {
        &self.leaf
    }

    /// The customer the tree belongs to.
    pub fn customer(&self) -> &str {
        self.parent.split('/').next().unwrap_or_default()
    }

    /// Whether this is a review (change or topic) repository's tree.
    pub fn is_review(&self) -> bool {
        self.parent.ends_with("/review")
    }

    /// The live link, relative to the root.
    pub fn link(&self) -> String {
        format!("{}/{}", self.parent, self.leaf)
    }

    /// The generations' directory, relative to the root.
    pub fn generations(&self) -> String {
        format!(
            "{}/{}",
            self.parent,
            crate::generations_dir_name(&self.leaf)
        )
    }

    /// The shared pool, relative to the root.
    pub fn pool(&self) -> String {
        format!("{}/{}", self.parent, crate::pool_dir_name(&self.leaf))
    }

    /// Generation `n`, relative to the root.
    pub fn generation(&self, n: impl Into<crate::Generation>) -> String {
        let n = n.into();
        format!("{}/{n}", self.generations())
    }
}

impl fmt::Display for TreeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.link())
    }
}

impl std::str::FromStr for TreeName {
    type Err = TreeNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Generation;

    #[test]
    fn tree_names() {
        let t = TreeName::parse("acme/9.0").unwrap();
        assert_eq!((t.parent(), t.leaf()), ("acme", "9.0"));
        assert_eq!(t.generation(Generation(3)), "acme/.9.0.gen/3");
        assert_eq!(t.customer(), "acme");
        assert!(!t.is_review());
        let r = TreeName::parse("acme/review/1234").unwrap();
        assert_eq!(r.pool(), "acme/review/.1234.pool");
        assert_eq!(r.generations(), "acme/review/.1234.gen");
        assert_eq!(r.link(), "acme/review/1234");
        assert_eq!(r.to_string(), "acme/review/1234");
        assert!(r.is_review());
        assert_eq!(r.customer(), "acme");
        for bad in [
            "acme",
            "acme/../x",
            "acme/.9.0.gen",
            "a/b/c",
            "/acme/9.0",
            "acme/review/",
            "",
        ] {
            assert_eq!(
                TreeName::parse(bad),
                Err(TreeNameError(bad.into())),
                "{bad}"
            );
        }
    }
}
