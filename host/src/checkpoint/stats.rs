//! The figures of completed and failed checkpoints, as the REST API, the
//! dashboard and `weir run`'s summary show them.

use std::time::Duration;

use super::metadata::{CheckpointMetadata, SubtaskState};

/// Called with each checkpoint that failed.
pub type FailureListener<'a> = dyn Fn(&FailedCheckpoint) + Sync + 'a;

/// A checkpoint that failed, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailedCheckpoint {
    /// Checkpoint id.
    pub id: u64,
    /// When it was triggered (ms since the Unix epoch).
    pub trigger_timestamp: i64,
    /// When it failed (ms since the Unix epoch).
    pub failure_timestamp: i64,
    /// Why it failed.
    pub reason: String,
}

/// One subtask's part of a completed checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubtaskCheckpointStats {
    /// The node's id in the spec.
    pub node: String,
    /// The subtask index.
    pub subtask: u32,
    /// Synchronous capture (ms).
    pub sync_ms: f64,
    /// Asynchronous write (ms).
    pub async_ms: f64,
    /// Barrier alignment (ms).
    pub alignment_ms: f64,
    /// From the trigger to the first barrier (ms).
    #[serde(default)]
    pub start_delay_ms: f64,
    /// Its checkpoint went unaligned.
    #[serde(default)]
    pub unaligned: bool,
    /// Bytes it processed between its first barrier and its last.
    #[serde(default)]
    pub processed_bytes: u64,
    /// Bytes of in-flight records it persisted (its channel state).
    #[serde(default)]
    pub persisted_bytes: u64,
}

/// Called with each completed checkpoint and its external path.
pub type CompletionListener<'a> = dyn Fn(&CheckpointStats, &str) + Sync + 'a;

/// The figures of one completed checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointStats {
    /// Checkpoint id.
    pub id: u64,
    /// When it was triggered (ms since the Unix epoch).
    #[serde(default)]
    pub trigger_timestamp: i64,
    /// Trigger to `_metadata` written (ms).
    pub duration_ms: f64,
    /// Bytes of state.
    pub size: u64,
    /// Bytes this checkpoint wrote (Flink's "checkpointed data size"; for
    /// an incremental checkpoint only the new files).
    #[serde(default)]
    pub checkpointed_size: u64,
    /// Longest synchronous capture of any subtask (ms).
    pub max_sync_ms: f64,
    /// Longest asynchronous write of any subtask (ms).
    pub max_async_ms: f64,
    /// Longest alignment of any subtask (ms).
    pub max_alignment_ms: f64,
    /// The final checkpoint of a job whose input ended.
    pub is_final: bool,
    /// A savepoint rather than a checkpoint.
    #[serde(default)]
    pub is_savepoint: bool,
    /// Some subtask's checkpoint went unaligned.
    #[serde(default)]
    pub unaligned: bool,
    /// Bytes processed during alignment, over all subtasks (Flink's
    /// "processed in-flight data").
    #[serde(default)]
    pub processed_bytes: u64,
    /// Bytes of in-flight records persisted, over all subtasks (Flink's
    /// "persisted in-flight data").
    #[serde(default)]
    pub persisted_bytes: u64,
    /// Each subtask's times.
    #[serde(default)]
    pub subtasks: Vec<SubtaskCheckpointStats>,
}

/// A duration in milliseconds, as the statistics show it.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl CheckpointStats {
    /// The figures of a completed checkpoint, from its `_metadata`.
    pub fn of(metadata: &CheckpointMetadata) -> Self {
        let subtasks = || metadata.operators.iter().flat_map(|o| o.subtasks.iter());
        let max = |f: fn(&SubtaskState) -> f64| subtasks().map(f).fold(0.0, f64::max);
        let per_subtask = metadata
            .operators
            .iter()
            .flat_map(|o| {
                o.subtasks.iter().map(|s| SubtaskCheckpointStats {
                    node: o.node.clone(),
                    subtask: s.subtask,
                    sync_ms: s.sync_ms,
                    async_ms: s.async_ms,
                    alignment_ms: s.alignment_ms,
                    start_delay_ms: s.start_delay_ms,
                    unaligned: s.unaligned,
                    processed_bytes: s.processed_bytes,
                    persisted_bytes: s.persisted_bytes,
                })
            })
            .collect();
        CheckpointStats {
            id: metadata.checkpoint_id,
            trigger_timestamp: metadata.trigger_timestamp,
            duration_ms: metadata.duration_ms,
            size: metadata.state_size,
            checkpointed_size: metadata.checkpointed_size,
            max_sync_ms: max(|s| s.sync_ms),
            max_async_ms: max(|s| s.async_ms),
            max_alignment_ms: max(|s| s.alignment_ms),
            is_final: metadata.is_final,
            is_savepoint: metadata.is_savepoint(),
            unaligned: subtasks().any(|s| s.unaligned),
            processed_bytes: subtasks().map(|s| s.processed_bytes).sum(),
            persisted_bytes: subtasks().map(|s| s.persisted_bytes).sum(),
            subtasks: per_subtask,
        }
    }
}
