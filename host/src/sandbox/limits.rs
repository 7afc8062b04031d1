//! The limits every guest instance of a job gets, from its configuration.

use std::time::Duration;

/// Limits applied to every guest instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a single guest call may run.
    pub call_timeout: Duration,
    /// Largest linear memory of one instance, in bytes.
    pub memory_limit: u64,
    /// Most output one call may emit, in bytes.
    pub output_limit: u64,
}
