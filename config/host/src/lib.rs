//! What every part does on its host and at its edge: files written durably and without
//! following links, free disk space, external commands with deadlines, retry backoff, logging,
//! and turning a binary's errors into a message and an exit code.

pub mod backoff;
pub mod cli;
pub mod command;
pub mod disk;
pub mod files;
pub mod logging;
