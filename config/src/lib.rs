//! The contract every Perestroika binary shares: the farm configuration, the rules that map
//! Gerrit projects to packages, queue names, the messages that cross the queues, and the AMQP
//! plumbing that carries them.

pub mod backoff;
pub mod broker;
pub mod cli;
pub mod client;
pub mod command;
pub mod disk;
pub mod error;
pub mod files;
pub mod logging;
pub mod mapping;
pub mod messages;
pub mod names;
pub mod preflight;
pub mod queues;
pub mod relations;
pub mod release_index;
pub mod rpm_header;
pub mod settings;
pub mod validate;
pub mod versions;

pub use error::ConfigError;
pub use mapping::{Mapping, ProjectMatch, Role, RuleSpec, Unmapped};
pub use queues::{QueueName, Stage};
pub use settings::{Family, FarmConfig, Release, ReleaseState};
