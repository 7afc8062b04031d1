//! Runs a [`JobGraph`] in this process.
//!
//! Each subtask of each node is a thread. Subtasks talk only through
//! bounded [`crate::channel`]s, one per (upstream subtask, downstream
//! subtask) pair, so a network channel could stand in for one later. An
//! operator subtask owns its guest instance and, on a keyed input, a state
//! backend for its key-group range.
//!
//! A failing subtask stops the attempt: its channels close, upstream and
//! downstream subtasks see that and stop. With checkpoints on, a
//! [`crate::checkpoint::coordinator::Coordinator`] thread runs beside the
//! tasks. After a failure the restart strategy ([`restart`]) decides whether
//! the job runs again, from its latest completed checkpoint; otherwise
//! [`run_job`] returns the first failure with the node, uid and subtask it
//! happened in. Nothing a guest does brings the process down.
//!
//! Where to start: [`run_job`] (`job.rs`, the restart loop), which runs
//! attempts (`attempt.rs`) of the physical plan (`plan.rs`); each task is
//! opened by kind in `open.rs` and driven by the source loop of `task.rs`
//! or the input loop of `input_loop.rs` (inputs in `inputs.rs`, watermarks
//! in `valve.rs`). A
//! start from a snapshot is checked first (`restore_check.rs`); savepoints
//! are asked for through [`JobControl::request_savepoint`].

mod attempt;
mod chain;
mod checkpointing;
mod control;
mod error;
mod failover;
mod input_loop;
mod inputs;
mod job;
mod open;
mod operator;
mod output;
mod plan;
mod progress;
pub mod quarantine;
pub mod regions;
pub mod restart;
mod restore_check;
mod restore_point;
mod task;
mod valve;

pub use control::{JobControl, LiveJob, RunOptions, SavepointOutcome, SavepointRefused};
pub use error::{JobError, TaskFailure};
pub use job::{finish_stopped, load_components, run_job};
#[cfg(feature = "rocksdb")]
pub(crate) use open::rocksdb_options;
pub use operator::{NativeOperators, StreamOperator};
pub use output::Output;
pub use progress::JobSummary;
pub use restore_check::{dry_run, prepare_restore, restore_report};
