//! A build's sources before any family's rules apply: what a build starts from ([`input`]),
//! the git mirrors they are fetched into ([`git`]), the repositories at their commits and the
//! archives made of them ([`fetch`]), trees copied from this machine ([`tree`]), and what can
//! keep a build from having them ([`error`]). How a build lays them out is its family's
//! (the `deb` and `rpm` modules).

pub mod error;
pub mod fetch;
pub mod git;
pub mod input;
pub mod tree;

pub use error::{is_resource_shortage, SourceError};
pub use input::SourceInput;
