//! The checkpoint coordinator of one running job, and the hub its tasks
//! talk to it through.
//!
//! The coordinator triggers checkpoint n (honouring interval, min pause,
//! max concurrent checkpoints), and sources see the trigger on the hub,
//! record their position and emit barrier n. Each task, once aligned,
//! captures its state (the synchronous part) and sends it here; the
//! coordinator writes the state files (the asynchronous part, off the
//! task's thread), and when every task has acknowledged it writes
//! `_metadata` atomically, commits the sinks' pre-committed files, and
//! deletes checkpoints beyond `state.checkpoints.num-retained`. A
//! checkpoint not complete within the timeout is aborted and counts as
//! failed; more failures in a row than `tolerable-failed-checkpoints` fail
//! the job.
//!
//! When a job's input ends, every task sends a final snapshot after its last
//! output; the runner then completes a final checkpoint from them, so that
//! the sinks' last files are committed as part of a checkpoint too.
//!
//! `files.rs` writes the state files and `_metadata` (where to: `target.rs`);
//! `savepoints.rs` takes savepoints and stops with savepoint (the requests:
//! `savepoint_queue.rs`).

mod files;
mod savepoint_queue;
mod savepoints;
mod target;

pub use savepoint_queue::{SinkPreserver, StopListener};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use self::savepoint_queue::Savepoints;
use self::target::Target;
use super::fs::StorageError;
use super::hub::{CheckpointHub, TaskAck, TaskMessage};
use super::metadata::CheckpointMetadata;
use super::pending::{Acked, Pending, PendingCheckpoints, Verdict};
use super::retention;
use super::savepoint::SavepointRequest;
use super::stats::{CheckpointStats, CompletionListener, FailedCheckpoint, FailureListener};
use super::storage::{CheckpointStorage, ReadCheckpoint};
use crate::channel::BarrierKind;
use crate::clock::epoch_ms;
use crate::config::CheckpointConfig;
use crate::spec::graph::{JobGraph, NodeKind};
use crate::state::DeclaredState;

/// A completed checkpoint, as the runner keeps it for restarts.
#[derive(Debug, Clone)]
pub struct CompletedCheckpoint {
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// Its external path.
    pub path: String,
    /// Reads its files.
    pub reader: Arc<dyn ReadCheckpoint>,
    /// A snapshot from outside the job's folder that the job claimed
    /// (CLAIM mode): this folder is deleted when it is subsumed.
    pub claimed: Option<std::path::PathBuf>,
}

/// Commits the files a sink pre-committed, given its operator state.
pub type SinkCommitter<'a> = dyn Fn(usize, &[Vec<u8>]) -> Result<(), String> + Sync + 'a;

/// Why checkpointing failed the job.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CoordinatorError {
    /// Too many checkpoints failed in a row.
    #[error(
        "{failed} checkpoints failed in a row, more than execution.checkpointing.tolerable-failed-checkpoints ({tolerable}); last: {last}"
    )]
    TooManyFailures {
        /// Failures in a row.
        failed: u32,
        /// The tolerated number.
        tolerable: u32,
        /// The last failure.
        last: String,
    },
    /// The final checkpoint could not be written.
    #[error("the final checkpoint failed: {0}")]
    Final(String),
}

/// The coordinator of one job attempt.
pub struct Coordinator<'a> {
    graph: &'a JobGraph,
    config: &'a CheckpointConfig,
    storage: &'a CheckpointStorage,
    job_id: &'a str,
    committer: &'a SinkCommitter<'a>,
    /// (node, subtask) of every task that must acknowledge.
    expected: usize,
    next_id: u64,
    pending: PendingCheckpoints,
    /// Completed checkpoints, newest last, shared with the runner.
    completed: &'a Mutex<Vec<CompletedCheckpoint>>,
    finals: HashMap<(usize, u32), (TaskAck, u64)>,
    /// Every checkpoint this coordinator completed.
    history: Vec<CheckpointStats>,
    /// Told of each completed checkpoint and its path.
    on_complete: Option<&'a CompletionListener<'a>>,
    /// Told of each failed checkpoint.
    on_failure: Option<&'a FailureListener<'a>>,
    /// Set by a user asking for a checkpoint now (the REST trigger).
    manual: Option<&'a AtomicBool>,
    /// Kept at the number of checkpoints in progress, for the statistics.
    in_progress: Option<&'a AtomicUsize>,
    /// SHA-256 of each node's component (WebAssembly operators), and the
    /// WIT interface they were checked against.
    components: Vec<Option<String>>,
    world: &'static str,
    /// Each node's declared keyed states, from its tasks' snapshots.
    declared: HashMap<usize, Vec<DeclaredState>>,
    /// Savepoints asked for and in progress.
    savepoints: Savepoints<'a>,
}

impl Drop for Coordinator<'_> {
    /// Checkpoints still pending when an attempt ends (a failure, a
    /// cancel) can never complete: their files go, shared ones included.
    fn drop(&mut self) {
        for id in self.pending.ids() {
            self.abandon(id, "the attempt ended");
        }
        if let Some((_, request)) = self.savepoints.draining.take() {
            let _ = request
                .reply
                .send(Err("the job ended before its input was drained".into()));
        }
    }
}

impl<'a> Coordinator<'a> {
    /// A coordinator whose first checkpoint has id `first_id`.
    pub fn new(
        graph: &'a JobGraph,
        config: &'a CheckpointConfig,
        storage: &'a CheckpointStorage,
        job_id: &'a str,
        committer: &'a SinkCommitter<'a>,
        completed: &'a Mutex<Vec<CompletedCheckpoint>>,
        first_id: u64,
    ) -> Self {
        let expected = graph.nodes.iter().map(|n| n.parallelism as usize).sum();
        Coordinator {
            graph,
            config,
            storage,
            job_id,
            committer,
            expected,
            next_id: first_id.max(1),
            pending: PendingCheckpoints::new(config, expected, Instant::now()),
            completed,
            finals: HashMap::new(),
            history: Vec::new(),
            on_complete: None,
            on_failure: None,
            manual: None,
            in_progress: None,
            components: Vec::new(),
            world: "",
            declared: HashMap::new(),
            savepoints: Savepoints::default(),
        }
    }

    /// Records, per node, the SHA-256 of its component and the WIT
    /// interface `world` they were checked against, in every `_metadata`.
    pub fn components(mut self, hashes: Vec<Option<String>>, world: &'static str) -> Self {
        self.components = hashes;
        self.world = world;
        self
    }

    /// Takes savepoints asked for on `requests`; `on_stopped` is called
    /// once a stop with savepoint has completed.
    pub fn savepoints(
        mut self,
        requests: &'a Receiver<SavepointRequest>,
        on_stopped: &'a StopListener<'a>,
        preserver: &'a SinkPreserver<'a>,
    ) -> Self {
        self.savepoints.requests = Some(requests);
        self.savepoints.on_stopped = Some(on_stopped);
        self.savepoints.preserver = Some(preserver);
        self
    }

    /// Calls `listener` with each checkpoint this coordinator completes.
    pub fn on_complete(mut self, listener: &'a CompletionListener<'a>) -> Self {
        self.on_complete = Some(listener);
        self
    }

    /// Calls `listener` with each checkpoint that fails.
    pub fn on_failure(mut self, listener: &'a FailureListener<'a>) -> Self {
        self.on_failure = Some(listener);
        self
    }

    /// Triggers a checkpoint as soon as it can whenever `flag` is set, and
    /// clears it.
    pub fn manual_trigger(mut self, flag: &'a AtomicBool) -> Self {
        self.manual = Some(flag);
        self
    }

    /// Keeps `gauge` at the number of checkpoints (and savepoints) in
    /// progress.
    pub fn in_progress(mut self, gauge: &'a AtomicUsize) -> Self {
        self.in_progress = Some(gauge);
        self
    }

    /// The checkpoints completed so far, oldest first.
    pub fn history(&self) -> &[CheckpointStats] {
        &self.history
    }

    /// The id the next checkpoint will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Runs until the hub is closed; returns an error when checkpoint
    /// failures exceed the tolerated number (the caller fails the job).
    pub fn run(
        &mut self,
        hub: &CheckpointHub,
        rx: &Receiver<TaskMessage>,
        stopping: &dyn Fn() -> bool,
    ) -> Result<(), CoordinatorError> {
        loop {
            let now = Instant::now();
            self.poll_savepoints(hub, stopping());
            let manual = self.manual.is_some_and(|m| m.load(Ordering::SeqCst));
            if self.pending.should_trigger(now, manual)
                && !self.savepoints.busy()
                && !hub.is_source_finished()
                && !stopping()
            {
                if let Some(m) = self.manual {
                    m.store(false, Ordering::SeqCst);
                }
                self.trigger(hub, now);
            }
            self.expire(now)?;
            if let Some(gauge) = self.in_progress {
                gauge.store(self.pending.count(), Ordering::Relaxed);
            }
            match rx.recv_timeout(Duration::from_millis(10)) {
                Ok(msg) => self.handle(hub, msg)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if hub.is_closed() {
                while let Ok(msg) = rx.try_recv() {
                    self.handle(hub, msg)?;
                }
                return Ok(());
            }
        }
    }

    fn trigger(&mut self, hub: &CheckpointHub, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let ts = epoch_ms();
        self.pending.start(id, now, ts);
        hub.trigger(id, ts, BarrierKind::Checkpoint);
    }

    fn fail_one(&mut self, id: u64, why: String) -> Result<(), CoordinatorError> {
        if self.savepoints.is_savepoint(id) {
            self.fail_savepoint(id, &why);
            return Ok(());
        }
        let trigger_ts = self.pending.remove(id).map_or(0, |p| p.trigger_ts);
        self.failed(id, trigger_ts, why)
    }

    /// Checkpoint `id` (triggered at `trigger_ts`, out of progress) failed:
    /// tells the listener, deletes what it wrote, counts it.
    fn failed(&mut self, id: u64, trigger_ts: i64, why: String) -> Result<(), CoordinatorError> {
        tracing::warn!("checkpoint {id} failed: {why}");
        if let Some(listener) = self.on_failure {
            listener(&FailedCheckpoint {
                id,
                trigger_timestamp: trigger_ts,
                failure_timestamp: epoch_ms(),
                reason: why.clone(),
            });
        }
        if let Err(e) = self.storage.discard(id) {
            tracing::warn!("cannot delete failed checkpoint {id}: {e}");
        }
        match self.pending.failed() {
            Verdict::Tolerated => Ok(()),
            Verdict::TooMany { failed, tolerable } => Err(CoordinatorError::TooManyFailures {
                failed,
                tolerable,
                last: why,
            }),
        }
    }

    /// Aborts a checkpoint that can no longer complete (not a failure;
    /// for a savepoint, the requester learns why).
    fn abandon(&mut self, id: u64, why: &str) {
        if self.savepoints.is_savepoint(id) {
            self.fail_savepoint(id, why);
            return;
        }
        if self.pending.remove(id).is_some() {
            tracing::debug!("checkpoint {id} abandoned: {why}");
            if let Err(e) = self.storage.discard(id) {
                tracing::warn!("cannot delete abandoned checkpoint {id}: {e}");
            }
        }
    }

    fn expire(&mut self, now: Instant) -> Result<(), CoordinatorError> {
        for id in self.pending.expired(now) {
            self.fail_one(id, self.timed_out())?;
        }
        Ok(())
    }

    /// Why a checkpoint that outlasted its timeout failed.
    fn timed_out(&self) -> String {
        format!(
            "not complete within {} ms (execution.checkpointing.timeout)",
            self.pending.timeout().as_millis()
        )
    }

    fn handle(&mut self, hub: &CheckpointHub, msg: TaskMessage) -> Result<(), CoordinatorError> {
        match msg {
            TaskMessage::Ack { id, ack } => {
                if !self.pending.contains(id) {
                    return Ok(());
                }
                self.remember_declared(&ack);
                let target = match &self.savepoints.in_flight {
                    Some(f) if f.id == id => Target::Savepoint(&f.folder),
                    _ => Target::Checkpoint(id),
                };
                let is_savepoint = matches!(target, Target::Savepoint(_));
                let written = self.write_state(target, &ack);
                match written {
                    Ok((state, size, written)) => {
                        let task = (ack.node, ack.subtask);
                        match self.pending.acknowledge(id, task, state, size, written) {
                            Acked::AllAcknowledged if is_savepoint => {
                                if let Some(p) = self.pending.remove(id) {
                                    self.complete_savepoint(hub, id, p);
                                }
                                Ok(())
                            }
                            Acked::AllAcknowledged => self.complete(hub, id, false),
                            Acked::Waiting | Acked::Unknown => Ok(()),
                        }
                    }
                    Err(e) => self.fail_one(id, e.to_string()),
                }
            }
            TaskMessage::Decline { id, reason } => {
                self.abandon(id, &reason);
                Ok(())
            }
            TaskMessage::Sync { seq } => {
                hub.note_synced(seq);
                Ok(())
            }
            TaskMessage::Final { ack, last_barrier } => {
                // Checkpoints this task never saw can no longer complete.
                for id in self.pending.lost_after(last_barrier) {
                    self.abandon(id, "a task ended its input before the barrier reached it");
                }
                self.remember_declared(&ack);
                self.finals
                    .insert((ack.node, ack.subtask), (ack, last_barrier));
                Ok(())
            }
        }
    }

    fn complete(
        &mut self,
        hub: &CheckpointHub,
        id: u64,
        is_final: bool,
    ) -> Result<(), CoordinatorError> {
        let Some(p) = self.pending.remove(id) else {
            return Ok(());
        };
        // The timeout covers the whole checkpoint, as Flink's does: one
        // whose last state file held this thread past it (a stalled store)
        // fails here, where the loop could not expire it, and so does one
        // whose `_metadata` went in late (deleted again, unpublished).
        let (trigger_time, trigger_ts) = (p.trigger_time, p.trigger_ts);
        let late = |c: &Self| !is_final && c.pending.outlasted(trigger_time, Instant::now());
        if late(self) {
            return self.failed(id, trigger_ts, self.timed_out());
        }
        let metadata = self.metadata(id, p, is_final, None);
        let written = metadata
            .encode()
            .map_err(|e| StorageError {
                path: "_metadata".into(),
                message: e.to_string(),
            })
            .and_then(|bytes| self.storage.write_metadata(id, &bytes));
        let path = match written {
            Ok(path) => path,
            Err(e) if is_final => return Err(CoordinatorError::Final(e.to_string())),
            Err(e) => return self.failed(id, trigger_ts, e.to_string()),
        };
        if late(self) {
            return self.failed(id, trigger_ts, self.timed_out());
        }
        let subsumed = self.pending.completed(id, Instant::now());
        hub.set_completed(id);
        let committed = self.commit_sinks(&metadata);
        tracing::info!(
            "checkpoint {id} completed: {path} ({} bytes, {:.1} ms)",
            metadata.state_size,
            metadata.duration_ms
        );
        self.history.push(CheckpointStats::of(&metadata));
        if let (Some(listener), Some(stats)) = (self.on_complete, self.history.last()) {
            listener(stats, &path);
        }
        for old in subsumed {
            self.abandon(old, "subsumed by a newer checkpoint");
        }
        self.retain(CompletedCheckpoint {
            reader: self.storage.reader(id),
            metadata,
            path,
            claimed: None,
        });
        // Nothing commits after the final checkpoint but the recovery of a
        // restart from it (it is retained above, so the restart finds it):
        // the job must not end as if it had.
        match committed {
            Err(e) if is_final => Err(CoordinatorError::Final(format!(
                "the final checkpoint {id} did not commit: {e}"
            ))),
            _ => Ok(()),
        }
    }

    /// The checkpoint is durable: the sinks' pre-committed files of it (and
    /// of any earlier checkpoint that failed) become visible. A failed
    /// commit is logged and returned (the first); a later checkpoint, or
    /// the recovery of a restart, commits what it left.
    pub(super) fn commit_sinks(&self, metadata: &CheckpointMetadata) -> Result<(), String> {
        let graph = self.graph;
        let mut first = Ok(());
        for op in &metadata.operators {
            let Some(n) = graph.nodes.iter().position(|x| x.uid == op.uid) else {
                continue;
            };
            if !matches!(graph.nodes[n].kind, NodeKind::Sink(_)) {
                continue;
            }
            for s in &op.subtasks {
                if let Err(e) = (self.committer)(n, &s.operator_state) {
                    tracing::error!(
                        "checkpoint {}: sink `{}` commit failed: {e}",
                        metadata.checkpoint_id,
                        op.node
                    );
                    if first.is_ok() {
                        first = Err(format!("sink `{}`: {e}", op.node));
                    }
                }
            }
        }
        first
    }

    /// Adds a completed checkpoint and deletes those beyond the retained
    /// number.
    fn retain(&self, checkpoint: CompletedCheckpoint) {
        let mut completed = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        completed.push(checkpoint);
        let beyond = retention::beyond_retained(completed.len(), self.config.num_retained);
        for old in completed.drain(..beyond) {
            let discarded = match &old.claimed {
                Some(folder) => super::savepoint::delete_snapshot_folder(folder),
                None => self.storage.discard(old.metadata.checkpoint_id),
            };
            if let Err(e) = discarded {
                tracing::warn!("cannot delete subsumed checkpoint: {e}");
            }
        }
    }

    /// After every task ended its input: completes the final checkpoint
    /// from the tasks' final snapshots.
    pub fn finish(&mut self, hub: &CheckpointHub) -> Result<(), CoordinatorError> {
        if self.finals.len() != self.expected {
            return Err(CoordinatorError::Final(format!(
                "{} of {} tasks sent a final snapshot",
                self.finals.len(),
                self.expected
            )));
        }
        for id in self.pending.ids() {
            self.abandon(id, "the job's input ended");
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut p = Pending::new(Instant::now(), epoch_ms());
        if self.savepoints.draining.is_some() {
            return match self.finish_drain(id, p) {
                Some(Err(why)) => Err(CoordinatorError::Final(format!(
                    "the savepoint of the stop with drain failed: {why}"
                ))),
                _ => {
                    hub.set_completed(id);
                    Ok(())
                }
            };
        }
        let finals = std::mem::take(&mut self.finals);
        for ((node, subtask), (ack, _)) in finals {
            let (state, size, written) = self
                .write_state(Target::Checkpoint(id), &ack)
                .map_err(|e| CoordinatorError::Final(e.to_string()))?;
            p.states.insert((node, subtask), state);
            p.size += size;
            p.written += written;
        }
        self.pending.insert(id, p);
        self.complete(hub, id, true)
    }
}
