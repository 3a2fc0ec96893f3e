//! The reactor turns Gerrit events into build jobs; `perestroika-queue` is the operator's view
//! of the queues.

pub mod topology;
