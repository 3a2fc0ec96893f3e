//! The farm configuration every Perestroika binary and tool reads: the settings file, the rules
//! that map Gerrit projects to packages, the rules for names, and what each part needs before it
//! runs. It carries no broker, runtime or package-format code: those are `perestroika-protocol`,
//! `perestroika-host` and `perestroika-formats`.

pub mod client;
pub mod deadline;
pub mod error;
pub mod mapping;
pub mod names;
pub mod preflight;
pub mod project;
pub mod settings;

pub use deadline::Deadline;
pub use error::ConfigError;
pub use mapping::{Mapping, Role, RuleSpec};
pub use project::{ProjectMatch, Unmapped};
pub use settings::{Family, FarmConfig, Release, ReleaseState};
