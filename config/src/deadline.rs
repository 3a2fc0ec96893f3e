//! How long one external command may run, and the configuration key that raises the limit.

use std::time::Duration;

/// How long one command may run, and the configuration key that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub limit: Duration,
    /// The configuration key an operator raises when the limit is too short, e.g.
    /// `publish.command_timeout_secs`.
    pub key: &'static str,
}

impl Deadline {
    pub fn new(limit: Duration, key: &'static str) -> Self {
        Self { limit, key }
    }
}
