//! The plain checkpoint settings (`execution.checkpointing.*`,
//! `state.checkpoints.*`): what a job asked for, before anything acts on it.

use std::path::PathBuf;
use std::time::Duration;

/// `execution.checkpointing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointingMode {
    /// Inputs that delivered a barrier are held until all have (aligned).
    ExactlyOnce,
    /// Nothing is held; after a restore some records may be seen twice.
    AtLeastOnce,
}

/// `execution.checkpointing.externalized-checkpoint-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Checkpoints stay when the job is cancelled.
    RetainOnCancellation,
    /// Checkpoints are deleted when the job is cancelled.
    DeleteOnCancellation,
    /// Checkpoints are deleted when the job is cancelled or finishes.
    NoExternalizedCheckpoints,
}

/// `execution.checkpointing.storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// In memory: survives restarts inside the process, not the process.
    JobManager,
    /// Files under `state.checkpoints.dir`.
    Filesystem,
}

/// The checkpoint settings of a job, with Flink's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointConfig {
    /// `execution.checkpointing.interval`; `None` disables checkpoints.
    pub interval: Option<Duration>,
    /// `execution.checkpointing.timeout` (10 min).
    pub timeout: Duration,
    /// `execution.checkpointing.min-pause` (0).
    pub min_pause: Duration,
    /// `execution.checkpointing.max-concurrent-checkpoints` (1).
    pub max_concurrent: u32,
    /// `execution.checkpointing.tolerable-failed-checkpoints` (0).
    pub tolerable_failed: u32,
    /// `execution.checkpointing.mode` (EXACTLY_ONCE).
    pub mode: CheckpointingMode,
    /// `execution.checkpointing.externalized-checkpoint-retention`
    /// (NO_EXTERNALIZED_CHECKPOINTS).
    pub retention: Retention,
    /// `execution.checkpointing.storage` (filesystem; Flink's default is
    /// jobmanager when no directory is set, but Weir always has one).
    pub storage: StorageKind,
    /// `state.checkpoints.dir` (`checkpoints`; a relative folder lies
    /// beside the job spec, like source and sink paths).
    pub dir: PathBuf,
    /// `state.checkpoints.num-retained` (1).
    pub num_retained: u32,
    /// `state.savepoints.dir` (`savepoints`).
    pub savepoint_dir: PathBuf,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: None,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failed: 0,
            mode: CheckpointingMode::ExactlyOnce,
            retention: Retention::NoExternalizedCheckpoints,
            storage: StorageKind::Filesystem,
            savepoint_dir: PathBuf::from("savepoints"),
            dir: PathBuf::from("checkpoints"),
            num_retained: 1,
        }
    }
}

impl CheckpointConfig {
    /// Whether periodic checkpoints are on.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }
}
