//! The farm's side of Gerrit, shared by the reactor and `perestroika-queue`: the SSH session
//! (stream-events, queries, reviews, branch heads), the events and query rows it reads, and the
//! planning that turns an event into build jobs.

pub mod events;
pub mod plan;
pub mod session;
