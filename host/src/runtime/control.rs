//! What a live job exposes to other threads: cancelling it, asking for a
//! checkpoint, and what it shows while it runs (counters, checkpoints,
//! restarts) for the REST API.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use super::operator::NativeOperators;
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::savepoint::{SavepointDone, SavepointRequest, StopMode};
use crate::checkpoint::stats::{CheckpointStats, FailedCheckpoint};
use crate::clock::epoch_ms;
use crate::config::{ClaimMode, SavepointFormat};
use crate::metrics::TaskMetrics;
use crate::spec::graph::JobGraph;

/// Lets other threads stop a running job, and records job-wide moments.
#[derive(Debug)]
pub struct JobControl {
    /// Raised by a cancel (or a completed stop with savepoint); shared with
    /// the job's sandbox, which stops running guest calls when it rises.
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) failed: AtomicBool,
    /// The job stopped with a savepoint: its tasks were stopped on
    /// purpose and it ends FINISHED.
    pub(super) stopped: AtomicBool,
    /// A user asked for a checkpoint now.
    pub(super) checkpoint_requested: AtomicBool,
    /// Checkpoints (and savepoints) in progress in the running attempt.
    pub(super) checkpoints_in_progress: AtomicUsize,
    /// Savepoints asked for; the running attempt's coordinator takes them.
    /// `None` once the job has ended: nothing takes them any more.
    savepoint_tx: Mutex<Option<Sender<SavepointRequest>>>,
    pub(super) savepoint_rx: Receiver<SavepointRequest>,
    live: Mutex<LiveJob>,
    /// The dead-letter quarantine, once the job started with it on.
    pub(super) quarantine: std::sync::OnceLock<Arc<super::quarantine::Quarantine>>,
}

impl Default for JobControl {
    fn default() -> Self {
        let (savepoint_tx, savepoint_rx) = crossbeam_channel::unbounded();
        JobControl {
            cancelled: Arc::default(),
            failed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            checkpoint_requested: AtomicBool::new(false),
            checkpoints_in_progress: AtomicUsize::new(0),
            savepoint_tx: Mutex::new(Some(savepoint_tx)),
            savepoint_rx,
            live: Mutex::default(),
            quarantine: std::sync::OnceLock::new(),
        }
    }
}

/// The outcome of a savepoint: its folder and figures, or why it failed.
pub type SavepointOutcome = Result<SavepointDone, String>;

/// Why a savepoint cannot even be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavepointRefused {
    /// The job does not checkpoint, so nothing could take it.
    #[error("savepoints need checkpointing: the job sets no execution.checkpointing.interval")]
    NoCheckpointing,
    /// No target folder was given and none is configured.
    #[error(
        "no target directory: give one, or set execution.checkpointing.savepoint-dir (state.savepoints.dir)"
    )]
    NoTarget,
    /// The job is stopping or has ended.
    #[error("the job is not running")]
    NotRunning,
}

/// The checkpoint a job (attempt) started from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestoredCheckpoint {
    /// Its id.
    pub id: u64,
    /// Its external path.
    pub external_path: String,
    /// When the job restored from it (ms since the Unix epoch).
    pub restore_timestamp: i64,
    /// `checkpoint` or `savepoint`, as its `_metadata` says.
    pub kind: String,
}

/// One restart of a job: when, why, and what it restored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestartRecord {
    /// When it failed (ms since the Unix epoch).
    pub timestamp: i64,
    /// The failure.
    pub cause: String,
    /// The snapshot the restart restored (`None`: from the beginning).
    pub restored: Option<RestoredCheckpoint>,
    /// The subtasks it restarted (`node[subtask]`), for a region
    /// failover; `None`: the whole job.
    pub subtasks: Option<Vec<String>>,
}

/// What a running job shows while it runs (for the REST API): its tasks'
/// counters, its checkpoints and restarts.
#[derive(Debug, Clone, Default)]
pub struct LiveJob {
    /// Per node, per subtask: the counters of the current attempt.
    pub metrics: Vec<Vec<Arc<TaskMetrics>>>,
    /// The newest completed checkpoints, oldest first (at most
    /// [`HISTORY_KEPT`], like Flink's `web.checkpoints.history`).
    pub checkpoints: Vec<CheckpointStats>,
    /// How many checkpoints completed in all.
    pub completed_count: u64,
    /// How many are in progress now.
    pub in_progress: u64,
    /// The newest completed checkpoint (not a savepoint, however many
    /// followed it) and its external path.
    pub last_checkpoint: Option<(CheckpointStats, String)>,
    /// The newest completed savepoint and its path.
    pub last_savepoint: Option<(CheckpointStats, String)>,
    /// Restarts so far.
    pub restarts: u32,
    /// The newest failed checkpoints, oldest first (at most
    /// [`FAILED_KEPT`]).
    pub failed_checkpoints: Vec<FailedCheckpoint>,
    /// How many checkpoints failed in all.
    pub failed_count: u64,
    /// The checkpoint the current attempt started from.
    pub restored: Option<RestoredCheckpoint>,
    /// How many times the job started from a checkpoint.
    pub restored_count: u64,
    /// (ms since the Unix epoch, message) of the newest failures that
    /// restarted the job, oldest first (at most [`EXCEPTIONS_KEPT`]).
    pub exceptions: Vec<(i64, String)>,
    /// The newest restarts, oldest first: when, why, and the snapshot each
    /// restored (at most [`EXCEPTIONS_KEPT`]).
    pub restart_history: Vec<RestartRecord>,
    /// Records the dead-letter quarantine took (the dead-letter file's
    /// earlier ones included).
    pub quarantined_count: u64,
    /// The newest of them (at most 100), oldest first.
    pub quarantined: Vec<crate::sink::dead_letter::DeadLetter>,
}

impl LiveJob {
    /// The newest completed checkpoint (not a savepoint), as Flink's
    /// `latest.completed` and `lastCheckpoint*` metrics mean it.
    pub fn last_checkpoint(&self) -> Option<&CheckpointStats> {
        self.last_checkpoint.as_ref().map(|(c, _)| c)
    }

    /// The external path of [`Self::last_checkpoint`].
    pub fn last_checkpoint_path(&self) -> Option<&str> {
        self.last_checkpoint.as_ref().map(|(_, p)| p.as_str())
    }
}

/// How many completed checkpoints [`LiveJob`] remembers.
pub const HISTORY_KEPT: usize = 10;

/// How many failed checkpoints [`LiveJob`] remembers.
pub const FAILED_KEPT: usize = 10;

/// How many restarting failures [`LiveJob`] remembers.
pub const EXCEPTIONS_KEPT: usize = 20;

impl RestoredCheckpoint {
    /// A restore from `point`, now.
    pub(super) fn now(point: &RestorePoint) -> Self {
        RestoredCheckpoint {
            id: point.metadata.checkpoint_id,
            external_path: point.path.clone(),
            restore_timestamp: epoch_ms(),
            kind: point.metadata.kind.clone(),
        }
    }
}

impl JobControl {
    /// Asks the job to stop; [`run_job`] then returns [`JobError::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// The job's dead-letter quarantine (`weir.dead-letter.enabled`), once
    /// it started.
    pub fn quarantine(&self) -> Option<&Arc<super::quarantine::Quarantine>> {
        self.quarantine.get()
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Asks for a checkpoint as soon as one can start; `false` if the job
    /// does not checkpoint.
    pub fn request_checkpoint(&self, graph: &JobGraph) -> bool {
        if graph.config.checkpoint.interval.is_none() {
            return false;
        }
        self.checkpoint_requested.store(true, Ordering::SeqCst);
        true
    }

    /// Asks for a savepoint into `target` (relative: beside the job spec;
    /// `None`: `execution.checkpointing.savepoint-dir`), or with `stop` a
    /// stop with one; the outcome arrives on the returned channel (closed
    /// without one if the job ends first).
    pub fn request_savepoint(
        &self,
        graph: &JobGraph,
        target: Option<&Path>,
        format: SavepointFormat,
        stop: Option<StopMode>,
    ) -> Result<Receiver<SavepointOutcome>, SavepointRefused> {
        if graph.config.checkpoint.interval.is_none() {
            return Err(SavepointRefused::NoCheckpointing);
        }
        if self.is_stopping() || self.stopped.load(Ordering::SeqCst) {
            return Err(SavepointRefused::NotRunning);
        }
        let target = target
            .or(graph.config.checkpoint.savepoint_dir.as_deref())
            .ok_or(SavepointRefused::NoTarget)?;
        let (reply, outcome) = crossbeam_channel::bounded(1);
        let request = SavepointRequest {
            target: crate::config::resolve_location(&graph.base_dir, target),
            format,
            stop,
            reply,
        };
        let tx = self.savepoint_tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref()
            .ok_or(SavepointRefused::NotRunning)?
            .send(request)
            .map_err(|_| SavepointRefused::NotRunning)?;
        Ok(outcome)
    }

    /// The job has ended: savepoints asked for and not taken fail, and no
    /// more can be asked for.
    pub(super) fn close_savepoints(&self) {
        self.savepoint_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for r in self.savepoint_rx.try_iter() {
            let _ = r
                .reply
                .send(Err("the job ended before the savepoint was taken".into()));
        }
    }

    /// A stop with savepoint completed: the tasks stop, and the job ends
    /// FINISHED (unless a cancel came first: then it ends CANCELED).
    pub(super) fn stop_after_savepoint(&self) {
        if self.cancelled.load(Ordering::SeqCst) {
            return;
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the job stopped with a savepoint.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// A copy of what the job shows now.
    pub fn live(&self) -> LiveJob {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
        live.in_progress = self.checkpoints_in_progress.load(Ordering::Relaxed) as u64;
        if let Some(q) = self.quarantine.get() {
            live.quarantined_count = q.count();
            live.quarantined = q.recent();
        }
        live
    }

    pub(super) fn update_live(&self, f: impl FnOnce(&mut LiveJob)) {
        f(&mut self.live.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Shows a completed checkpoint or savepoint (its statistics and
    /// external path).
    pub(super) fn publish_completed(&self, stats: &CheckpointStats, path: &str) {
        self.update_live(|l| {
            l.completed_count += 1;
            push_bounded(&mut l.checkpoints, stats.clone(), HISTORY_KEPT);
            if stats.is_savepoint {
                l.last_savepoint = Some((stats.clone(), path.to_owned()));
            } else {
                l.last_checkpoint = Some((stats.clone(), path.to_owned()));
            }
        });
    }

    /// Shows a failed checkpoint.
    pub(super) fn publish_failed(&self, failed: &FailedCheckpoint) {
        self.update_live(|l| {
            l.failed_count += 1;
            push_bounded(&mut l.failed_checkpoints, failed.clone(), FAILED_KEPT);
        });
    }

    /// Shows the checkpoint the current attempt started from.
    pub(super) fn publish_restored(&self, restored: RestoredCheckpoint) {
        self.update_live(|l| {
            l.restored = Some(restored);
            l.restored_count += 1;
        });
    }

    /// Shows a failure that restarted the job, as restart number
    /// `restarts`, and the snapshot it restarts from (`None`: the start).
    pub(super) fn publish_restart(
        &self,
        restarts: u32,
        message: String,
        from: Option<&RestorePoint>,
        subtasks: Option<Vec<String>>,
    ) {
        let now = epoch_ms();
        self.update_live(|l| {
            l.restarts = restarts;
            push_bounded(&mut l.exceptions, (now, message.clone()), EXCEPTIONS_KEPT);
            let record = RestartRecord {
                timestamp: now,
                cause: message,
                restored: from.map(RestoredCheckpoint::now),
                subtasks,
            };
            push_bounded(&mut l.restart_history, record, EXCEPTIONS_KEPT);
        });
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed)
    }
}

/// Appends `item`, dropping the oldest beyond `kept`.
fn push_bounded<T>(list: &mut Vec<T>, item: T, kept: usize) {
    list.push(item);
    if list.len() > kept {
        list.remove(0);
    }
}

/// How to run a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print progress lines on stderr every `weir.progress.interval`.
    pub progress: bool,
    /// Start from this checkpoint (`weir run -s`).
    pub restore: Option<RestorePoint>,
    /// Skip state whose uid the job lacks (`-n`).
    pub allow_non_restored_state: bool,
    /// Who owns the snapshot restored from (CLAIM: the job deletes it
    /// once its own checkpoints subsume it).
    pub claim_mode: ClaimMode,
    /// The job id (names its checkpoint folder); a fresh one if `None`.
    pub job_id: Option<String>,
    /// Leave the checkpoints when the job ends: the caller deletes them
    /// after it has recorded the end (the server).
    pub keep_checkpoints: bool,
    /// The operators compiled into the host that `Native` nodes name
    /// (the benchmarks').
    pub native: Option<Arc<dyn NativeOperators>>,
}
