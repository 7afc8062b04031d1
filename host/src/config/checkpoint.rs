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
    /// `execution.checkpointing.savepoint-dir` (alias
    /// `state.savepoints.dir`): where a savepoint triggered without a
    /// target folder goes; none by default, as in Flink.
    pub savepoint_dir: Option<PathBuf>,
    /// Where and how a job starts from a snapshot
    /// (`execution.state-recovery.*`).
    pub recovery: StateRecovery,
    /// Unaligned checkpoints (`execution.checkpointing.unaligned.*`).
    pub unaligned: UnalignedConfig,
}

/// When checkpoint barriers may overtake the data in the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnalignedConfig {
    /// `execution.checkpointing.unaligned.enabled` (false).
    pub enabled: bool,
    /// `execution.checkpointing.unaligned.forced` (false): forward edges
    /// go unaligned too (their in-flight data then cannot be rescaled).
    pub forced: bool,
    /// `execution.checkpointing.aligned-checkpoint-timeout` (0): a
    /// checkpoint starts aligned and goes unaligned once it is older than
    /// this; 0 makes it unaligned from the start.
    pub aligned_timeout: Duration,
}

impl UnalignedConfig {
    /// Whether checkpoints may go unaligned at all.
    pub fn active(&self) -> bool {
        self.enabled || self.forced
    }
}

/// `execution.state-recovery.claim-mode`: who owns the snapshot a job
/// starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimMode {
    /// The job never deletes the snapshot and never depends on its files
    /// after its first checkpoint (Flink's default).
    #[default]
    NoClaim,
    /// The job owns the snapshot: it is retained and deleted like the
    /// job's own checkpoints.
    Claim,
}

impl ClaimMode {
    /// Its name as Flink writes it.
    pub fn name(self) -> &'static str {
        match self {
            ClaimMode::NoClaim => "NO_CLAIM",
            ClaimMode::Claim => "CLAIM",
        }
    }

    /// Parses `CLAIM` or `NO_CLAIM` (any case).
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.trim().to_ascii_uppercase().as_str() {
            "NO_CLAIM" => Ok(ClaimMode::NoClaim),
            "CLAIM" => Ok(ClaimMode::Claim),
            _ => Err(format!("{v:?} is not CLAIM or NO_CLAIM")),
        }
    }
}

/// The settings of a job's start from a savepoint or retained checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateRecovery {
    /// `execution.state-recovery.path` (alias `execution.savepoint.path`):
    /// the snapshot to start from.
    pub path: Option<PathBuf>,
    /// `execution.state-recovery.claim-mode` (NO_CLAIM).
    pub claim_mode: ClaimMode,
    /// `execution.state-recovery.ignore-unclaimed-state` (false): skip
    /// snapshot state the job has no place for (what `-n` sets).
    pub ignore_unclaimed_state: bool,
}

/// The format of a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SavepointFormat {
    /// Weir's own format: restores on any backend, at any parallelism.
    #[default]
    Canonical,
    /// The backend's own files (RocksDB's SST files), copied into the
    /// savepoint: faster for large state, restores on the same backend.
    Native,
}

impl SavepointFormat {
    /// Its name as the REST API writes it.
    pub fn name(self) -> &'static str {
        match self {
            SavepointFormat::Canonical => "CANONICAL",
            SavepointFormat::Native => "NATIVE",
        }
    }

    /// Parses `canonical` or `native` (any case).
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.trim().to_ascii_uppercase().as_str() {
            "CANONICAL" => Ok(SavepointFormat::Canonical),
            "NATIVE" => Ok(SavepointFormat::Native),
            _ => Err(format!("{v:?} is not CANONICAL or NATIVE")),
        }
    }
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
            savepoint_dir: None,
            recovery: StateRecovery::default(),
            dir: PathBuf::from("checkpoints"),
            num_retained: 1,
            unaligned: UnalignedConfig::default(),
        }
    }
}

impl CheckpointConfig {
    /// Whether periodic checkpoints are on.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// Refuses settings that cannot work together: unaligned checkpoints
    /// need EXACTLY_ONCE and one checkpoint at a time, as in Flink.
    pub fn check(&self) -> Result<(), String> {
        if !self.unaligned.active() {
            return Ok(());
        }
        if self.mode != CheckpointingMode::ExactlyOnce {
            return Err(
                "unaligned checkpoints need execution.checkpointing.mode: EXACTLY_ONCE".into(),
            );
        }
        if self.max_concurrent > 1 {
            return Err(format!(
                "unaligned checkpoints run one at a time, but execution.checkpointing.max-concurrent-checkpoints is {}",
                self.max_concurrent
            ));
        }
        Ok(())
    }
}
