//! `weir.dead-letter.*`: the quarantine of records that make an operator
//! fail again and again. Off by default, as in Flink, where such a record
//! restarts the job without end.

use std::path::PathBuf;

/// The dead-letter settings of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterConfig {
    /// `weir.dead-letter.enabled`.
    pub enabled: bool,
    /// `weir.dead-letter.max-failures`: a record is quarantined once it
    /// failed more often than this in a row, the last time alone.
    pub max_failures: u32,
    /// `weir.dead-letter.dir`: the folder of the dead-letter files,
    /// `<dir>/<job-id>.jsonl` (relative paths against the spec's folder).
    pub dir: PathBuf,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            enabled: false,
            max_failures: 1,
            dir: PathBuf::from("dead-letters"),
        }
    }
}
