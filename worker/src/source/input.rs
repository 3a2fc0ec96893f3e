//! What a build starts from.

use std::path::PathBuf;

use perestroika_protocol::messages::Sources;

/// What a build starts from.
#[derive(Debug, Clone)]
pub enum SourceInput {
    /// Code and packaging at exact commits, with the job's rebuild number; `review` for a
    /// review build (whose rebuild number is its patch set).
    Git {
        sources: Box<Sources>,
        rebuild: u32,
        review: bool,
    },
    /// An unpacked source tree on this machine (version taken as is).
    Dir(PathBuf),
    /// A source package on this machine (version taken as is).
    Dsc(PathBuf),
    /// A source rpm on this machine (version taken as is).
    Srpm(PathBuf),
}
