//! The messages that cross the queues. Every message carries `schema_version`; a consumer
//! refuses a message of a schema it does not know (it is dead-lettered with that reason).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use perestroika_config::names::{
    check_commit, check_customer, check_project, check_token, check_version, NameError,
};

mod build;
mod feedback;
mod mirror;
mod promotion;
mod publish;
mod sources;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;

pub use build::*;
pub use feedback::*;
pub use mirror::*;
pub use promotion::*;
pub use publish::*;
pub use sources::*;

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A message could not be taken as work.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not valid JSON for {kind}: {source}")]
    Json {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind} has schema_version {found}; this build understands {SCHEMA_VERSION}")]
    Schema { kind: &'static str, found: u32 },
    #[error("{kind}: {source}")]
    Name {
        kind: &'static str,
        #[source]
        source: NameError,
    },
    #[error("{kind}: job_id {found} does not match its content (expected {expected})")]
    JobId {
        kind: &'static str,
        found: String,
        expected: String,
    },
}

/// A message type that crosses a queue.
pub trait Message: Serialize + DeserializeOwned {
    /// Name used in errors and logs.
    const KIND: &'static str;
    fn schema_version(&self) -> u32;
    /// Checks every name that will reach a path or a command.
    fn check(&self) -> Result<(), MessageError>;

    /// Serialises for the wire.
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("message types always serialise")
    }

    /// Parses and checks a message from the wire.
    fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        #[derive(Deserialize)]
        struct Head {
            schema_version: u32,
        }
        let json = |source| MessageError::Json {
            kind: Self::KIND,
            source,
        };
        let head: Head = serde_json::from_slice(bytes).map_err(json)?;
        if head.schema_version != SCHEMA_VERSION {
            return Err(MessageError::Schema {
                kind: Self::KIND,
                found: head.schema_version,
            });
        }
        let msg: Self = serde_json::from_slice(bytes).map_err(json)?;
        msg.check()?;
        Ok(msg)
    }
}

fn name(kind: &'static str, r: Result<(), NameError>) -> Result<(), MessageError> {
    r.map_err(|source| MessageError::Name { kind, source })
}

/// The names of one message, each checked with the message's kind in its error.
struct Names(&'static str);

impl Names {
    fn token(&self, what: &'static str, value: &str) -> Result<(), MessageError> {
        name(self.0, check_token(what, value))
    }
    fn customer(&self, value: &str) -> Result<(), MessageError> {
        name(self.0, check_customer(value))
    }
    fn version(&self, value: &str) -> Result<(), MessageError> {
        name(self.0, check_version(value))
    }
    fn project(&self, value: &str) -> Result<(), MessageError> {
        name(self.0, check_project(value))
    }
    fn commit(&self, value: &str) -> Result<(), MessageError> {
        name(self.0, check_commit(value))
    }
    /// The customer and version of the release a message is about.
    fn release(&self, customer: &str, version: &str) -> Result<(), MessageError> {
        self.customer(customer)?;
        self.version(version)
    }
}

/// The parts of a [`Message`] impl every message type writes alike: its kind, and its
/// `schema_version` field.
macro_rules! message_kind {
    ($kind:literal) => {
        const KIND: &'static str = $kind;
        fn schema_version(&self) -> u32 {
            self.schema_version
        }
    };
}
use message_kind;
