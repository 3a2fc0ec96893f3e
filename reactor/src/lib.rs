//! The reactor turns Gerrit events into build jobs: it follows the stream, plans each event
//! with the mapping rules, queues the jobs, posts build outcomes back to the changes, and
//! queues a build again when the publisher says its worker is gone ([`rebuild`]).

pub mod branch_updates;
pub mod catch_up;
pub mod daemon;
pub mod describe;
pub mod feedback;
pub mod outbox;
pub mod preflight;
pub mod rebuild;
pub mod recheck;
pub mod state;
