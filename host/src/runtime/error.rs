//! How a task or a job fails.

use thiserror::Error;
use weir_wire::WireError;

use crate::channel::Disconnected;
use crate::checkpoint::coordinator::CoordinatorError;
use crate::checkpoint::fs::StorageError;
use crate::checkpoint::restore::{RestoreError, RestorePoint};
use crate::sandbox::{GuestFailure, GuestFailureKind, SandboxError};
use crate::sink::SinkError;
use crate::source::SourceError;
use crate::spec::SpecErrors;
use crate::state::StateError;

/// Why one subtask stopped.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TaskFailure {
    /// The guest trapped, timed out, ran out of memory or refused its config.
    #[error(transparent)]
    Guest(#[from] GuestFailure),
    /// The source could not read.
    #[error("source failed: {0}")]
    Source(#[from] SourceError),
    /// The sink could not write.
    #[error("sink failed: {0}")]
    Sink(#[from] SinkError),
    /// A state operation failed.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// Output could not be delivered or was malformed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// An upstream task stopped without finishing (it failed).
    #[error("an upstream task stopped")]
    UpstreamGone,
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Its part of the restored checkpoint could not be loaded.
    #[error("restore failed: {message}")]
    Restore {
        /// The id of the checkpoint (or savepoint) being restored.
        checkpoint: u64,
        /// What could not be loaded.
        message: String,
    },
    /// A bug in Weir.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Disconnected> for TaskFailure {
    fn from(d: Disconnected) -> Self {
        TaskFailure::Output(OutputError::Disconnected(d))
    }
}

impl TaskFailure {
    /// A failure to load this task's part of snapshot `point`.
    pub fn restore(point: &RestorePoint, message: impl std::fmt::Display) -> Self {
        TaskFailure::Restore {
            checkpoint: point.metadata.checkpoint_id,
            message: message.to_string(),
        }
    }

    /// Whether this failure only follows from another task's failure (or
    /// from a cancel that stopped a guest call).
    pub fn is_secondary(&self) -> bool {
        match self {
            TaskFailure::Guest(g) => g.kind == GuestFailureKind::Interrupted,
            TaskFailure::Output(OutputError::Chained { failure, .. }) => failure.is_secondary(),
            other => matches!(
                other,
                TaskFailure::UpstreamGone
                    | TaskFailure::Cancelled
                    | TaskFailure::Output(OutputError::Disconnected(_))
            ),
        }
    }
}

/// Why a job did not finish.
#[derive(Debug, Error)]
pub enum JobError {
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecErrors),
    /// An operator's component was refused before the job started.
    #[error("operator `{node}`: {error}")]
    Component {
        /// The operator id.
        node: String,
        /// Why it was refused.
        error: SandboxError,
    },
    /// The sandbox could not start.
    #[error(transparent)]
    Sandbox(SandboxError),
    /// A subtask failed while the job ran.
    #[error("{kind} `{node}` (uid `{uid}`), subtask {}/{parallelism}: {cause}", subtask + 1)]
    Task {
        /// `operator`, `source` or `sink`.
        kind: &'static str,
        /// The node id.
        node: String,
        /// The node uid.
        uid: String,
        /// The subtask index (0-based).
        subtask: u32,
        /// The node's parallelism.
        parallelism: u32,
        /// What happened.
        cause: Box<TaskFailure>,
    },
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// A source or sink cannot use what it reads or writes (a Kafka topic
    /// that does not exist), found before the job started: no restart
    /// fixes it.
    #[error("{kind} `{node}`: {message}")]
    Connector {
        /// `source` or `sink`.
        kind: &'static str,
        /// The node id.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint to restore from cannot be used.
    #[error("cannot restore: {0}")]
    Restore(#[from] RestoreError),
    /// Checkpoint storage cannot be set up.
    #[error("checkpoint storage: {0}")]
    Storage(#[from] StorageError),
    /// Checkpointing failed the job.
    #[error(transparent)]
    Checkpoint(#[from] CoordinatorError),
}

impl JobError {
    /// Whether this failure only follows from another one (a task that saw
    /// its neighbour stop).
    pub fn is_secondary(&self) -> bool {
        matches!(self, JobError::Task { cause, .. } if cause.is_secondary())
    }

    /// Whether a restart strategy may restart the job after this error:
    /// failures while it ran, not a bad spec, component or restore path,
    /// and not an operator refusing its config (no restart changes it).
    pub fn is_restartable(&self) -> bool {
        match self {
            JobError::Task { cause, .. } => !matches!(
                &**cause,
                TaskFailure::Guest(g) if g.kind == GuestFailureKind::OpenFailed
            ),
            JobError::Checkpoint(_) => true,
            _ => false,
        }
    }

    /// Whether this failure came from the snapshot being restored (a file
    /// it names is missing or damaged, its state does not fit): restarting
    /// from the same snapshot cannot succeed.
    pub fn is_restore_failure(&self) -> bool {
        match self {
            JobError::Restore(_) => true,
            JobError::Task { cause, .. } => matches!(**cause, TaskFailure::Restore { .. }),
            _ => false,
        }
    }

    /// The checkpoint a task failed to restore, if that is what failed
    /// (a failure at start, [`JobError::Restore`], names none: it is the
    /// attempt's).
    pub fn failed_restore(&self) -> Option<u64> {
        match self {
            JobError::Task { cause, .. } => match **cause {
                TaskFailure::Restore { checkpoint, .. } => Some(checkpoint),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Why output could not be delivered.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OutputError {
    /// A subtask chained into this one (a sink or an operator) failed;
    /// `node` is its node index.
    #[error("{failure}")]
    Chained {
        /// The chained node.
        node: usize,
        /// What happened there.
        failure: Box<TaskFailure>,
    },
    /// A downstream task is gone.
    #[error(transparent)]
    Disconnected(#[from] Disconnected),
    /// Encoded output is malformed (from a guest).
    #[error("malformed output: {0}")]
    Malformed(#[from] WireError),
}
