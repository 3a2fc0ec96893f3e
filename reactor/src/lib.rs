//! The reactor turns Gerrit events into build jobs; `perestroika-queue` is the operator's view
//! of the queues.

pub mod branch_updates;
pub mod daemon;
pub mod dead;
pub mod events;
pub mod feedback;
pub mod outbox;
pub mod plan;
pub mod preflight;
pub mod recheck;
pub mod retrigger;
pub mod ssh;
pub mod state;
pub mod topology;
