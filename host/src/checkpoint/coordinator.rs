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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::CheckpointConfig;
use super::metadata::{CheckpointMetadata, OperatorSnapshot, SubtaskState};
use super::storage::{CheckpointStorage, ReadCheckpoint, StorageError};
use crate::channel::{Barrier, BarrierKind};
use crate::graph::{JobGraph, NodeKind};
use crate::state::snapshot::KeyedSnapshot;

/// The state a task captured for a checkpoint (the synchronous part).
#[derive(Debug, Default)]
pub struct StateSnapshot {
    /// Keyed state and timers, encoded (with `native`: the timers only).
    pub keyed: Option<KeyedSnapshot>,
    /// The backend's own snapshot of the keyed state, to upload
    /// incrementally.
    pub native: Option<crate::state::incremental::NativeSnapshot>,
    /// Operator (non-keyed) list state.
    pub operator_state: Vec<Vec<u8>>,
}

/// A task's acknowledgement of a checkpoint.
#[derive(Debug)]
pub struct TaskAck {
    /// The node index.
    pub node: usize,
    /// The subtask index.
    pub subtask: u32,
    /// Its state.
    pub state: StateSnapshot,
    /// Time of the synchronous capture.
    pub sync: Duration,
    /// Time spent aligning barriers.
    pub alignment: Duration,
}

/// What tasks send the coordinator.
#[derive(Debug)]
pub enum TaskMessage {
    /// A task's part of checkpoint `id`.
    Ack {
        /// Checkpoint id.
        id: u64,
        /// The acknowledgement.
        ack: TaskAck,
    },
    /// A task cannot take part in checkpoint `id`.
    Decline {
        /// Checkpoint id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A task ended its input; its final state. `last_barrier` is the last
    /// checkpoint it took part in.
    Final {
        /// The acknowledgement.
        ack: TaskAck,
        /// Last checkpoint id it saw.
        last_barrier: u64,
    },
}

/// Shared by the coordinator and the tasks of one job attempt.
#[derive(Debug)]
pub struct CheckpointHub {
    /// Id of the newest checkpoint sources are asked to start (0: none).
    trigger_id: AtomicU64,
    trigger_ts: AtomicU64,
    /// A source has reached its end: no new checkpoints are triggered.
    source_finished: AtomicBool,
    /// The newest completed checkpoint: sinks forget pre-committed files
    /// of checkpoints up to it.
    last_completed: AtomicU64,
    /// The runner has joined every task.
    done: AtomicBool,
    tx: Sender<TaskMessage>,
    /// Whether tasks align (EXACTLY_ONCE) or not.
    pub mode: super::CheckpointingMode,
}

impl CheckpointHub {
    /// A hub and the receiving end for the coordinator.
    pub fn new(mode: super::CheckpointingMode) -> (Arc<Self>, Receiver<TaskMessage>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Arc::new(CheckpointHub {
                trigger_id: AtomicU64::new(0),
                trigger_ts: AtomicU64::new(0),
                source_finished: AtomicBool::new(false),
                last_completed: AtomicU64::new(0),
                done: AtomicBool::new(false),
                tx,
                mode,
            }),
            rx,
        )
    }

    /// For a source: the barrier to emit if a checkpoint newer than `last`
    /// was triggered.
    pub fn poll_trigger(&self, last: u64) -> Option<Barrier> {
        let id = self.trigger_id.load(Ordering::Acquire);
        (id > last).then(|| Barrier {
            id,
            timestamp: self.trigger_ts.load(Ordering::Relaxed) as i64,
            kind: BarrierKind::Checkpoint,
        })
    }

    fn trigger(&self, id: u64, timestamp: i64) {
        self.trigger_ts.store(timestamp as u64, Ordering::Relaxed);
        self.trigger_id.store(id, Ordering::Release);
    }

    /// A source reached its end.
    pub fn source_finished(&self) {
        self.source_finished.store(true, Ordering::SeqCst);
    }

    /// The newest completed checkpoint.
    pub fn last_completed(&self) -> u64 {
        self.last_completed.load(Ordering::Acquire)
    }

    /// Sends a message to the coordinator (dropped if it has stopped).
    pub fn send(&self, msg: TaskMessage) {
        let _ = self.tx.send(msg);
    }

    /// Tells the coordinator every task has ended.
    pub fn close(&self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// A completed checkpoint, as the runner keeps it for restarts.
#[derive(Debug, Clone)]
pub struct CompletedCheckpoint {
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// Its external path.
    pub path: String,
    /// Reads its files.
    pub reader: Arc<dyn ReadCheckpoint>,
}

struct Pending {
    trigger_time: Instant,
    trigger_ts: i64,
    states: HashMap<(usize, u32), SubtaskState>,
    size: u64,
    /// Bytes written (less than `size` when files were already shared).
    written: u64,
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
    pending: BTreeMap<u64, Pending>,
    /// Completed checkpoints, newest last, shared with the runner.
    completed: &'a Mutex<Vec<CompletedCheckpoint>>,
    last_trigger: Instant,
    last_completion: Option<Instant>,
    failures_in_a_row: u32,
    finals: HashMap<(usize, u32), (TaskAck, u64)>,
    /// Every checkpoint this coordinator completed.
    history: Vec<CheckpointStats>,
    /// Told of each completed checkpoint and its path.
    on_complete: Option<&'a CompletionListener<'a>>,
    /// Told of each failed checkpoint.
    on_failure: Option<&'a FailureListener<'a>>,
    /// Set by a user asking for a checkpoint now (the REST trigger).
    manual: Option<&'a AtomicBool>,
}

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
    /// Each subtask's times.
    #[serde(default)]
    pub subtasks: Vec<SubtaskCheckpointStats>,
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The file name of a subtask's keyed state in a checkpoint folder.
pub fn keyed_file_name(node: usize, uid: &str, subtask: u32) -> String {
    let safe: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{node}-{safe}-{subtask}.keyed")
}

impl Drop for Coordinator<'_> {
    /// Checkpoints still pending when an attempt ends (a failure, a
    /// cancel) can never complete: their files go, shared ones included.
    fn drop(&mut self) {
        let pending: Vec<u64> = self.pending.keys().copied().collect();
        for id in pending {
            self.abandon(id, "the attempt ended");
        }
    }
}

impl<'a> Coordinator<'a> {
    /// A coordinator whose first checkpoint has id `first_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        graph: &'a JobGraph,
        config: &'a CheckpointConfig,
        storage: &'a CheckpointStorage,
        job_id: &'a str,
        committer: &'a SinkCommitter<'a>,
        completed: &'a Mutex<Vec<CompletedCheckpoint>>,
        first_id: u64,
    ) -> Self {
        Coordinator {
            graph,
            config,
            storage,
            job_id,
            committer,
            expected: graph.nodes.iter().map(|n| n.parallelism as usize).sum(),
            next_id: first_id.max(1),
            pending: BTreeMap::new(),
            completed,
            last_trigger: Instant::now(),
            last_completion: None,
            failures_in_a_row: 0,
            finals: HashMap::new(),
            history: Vec::new(),
            on_complete: None,
            on_failure: None,
            manual: None,
        }
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
            if let Some(interval) = self.config.interval {
                let due = self.last_trigger + interval;
                let paused = self
                    .last_completion
                    .is_some_and(|c| now.saturating_duration_since(c) < self.config.min_pause);
                // A manual trigger ignores the interval and the pause,
                // like Flink's, but not the limit on concurrent ones.
                let manual = self.manual.is_some_and(|m| m.load(Ordering::SeqCst));
                if (manual || (now >= due && !paused))
                    && self.pending.len() < self.config.max_concurrent as usize
                    && !hub.source_finished.load(Ordering::SeqCst)
                    && !stopping()
                {
                    if let Some(m) = self.manual {
                        m.store(false, Ordering::SeqCst);
                    }
                    self.trigger(hub, now);
                }
            }
            self.expire(now)?;
            match rx.recv_timeout(Duration::from_millis(10)) {
                Ok(msg) => self.handle(hub, msg)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if hub.done.load(Ordering::SeqCst) {
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
        self.last_trigger = now;
        let ts = epoch_ms();
        self.pending.insert(
            id,
            Pending {
                trigger_time: now,
                trigger_ts: ts,
                states: HashMap::new(),
                size: 0,
                written: 0,
            },
        );
        hub.trigger(id, ts);
    }

    fn fail_one(&mut self, id: u64, why: String) -> Result<(), CoordinatorError> {
        tracing::warn!("checkpoint {id} failed: {why}");
        let pending = self.pending.remove(&id);
        if let Some(listener) = self.on_failure {
            listener(&FailedCheckpoint {
                id,
                trigger_timestamp: pending.map_or(0, |p| p.trigger_ts),
                failure_timestamp: epoch_ms(),
                reason: why.clone(),
            });
        }
        if let Err(e) = self.storage.discard(id) {
            tracing::warn!("cannot delete failed checkpoint {id}: {e}");
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row > self.config.tolerable_failed {
            return Err(CoordinatorError::TooManyFailures {
                failed: self.failures_in_a_row,
                tolerable: self.config.tolerable_failed,
                last: why,
            });
        }
        Ok(())
    }

    /// Aborts a checkpoint that can no longer complete (not a failure).
    fn abandon(&mut self, id: u64, why: &str) {
        if self.pending.remove(&id).is_some() {
            tracing::debug!("checkpoint {id} abandoned: {why}");
            if let Err(e) = self.storage.discard(id) {
                tracing::warn!("cannot delete abandoned checkpoint {id}: {e}");
            }
        }
    }

    fn expire(&mut self, now: Instant) -> Result<(), CoordinatorError> {
        let timeout = self.config.timeout;
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.trigger_time) > timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.fail_one(
                id,
                format!(
                    "not complete within {} ms (execution.checkpointing.timeout)",
                    timeout.as_millis()
                ),
            )?;
        }
        Ok(())
    }

    fn handle(&mut self, hub: &CheckpointHub, msg: TaskMessage) -> Result<(), CoordinatorError> {
        match msg {
            TaskMessage::Ack { id, ack } => {
                if !self.pending.contains_key(&id) {
                    return Ok(());
                }
                match self.write_state(id, &ack) {
                    Ok((state, size, written)) => {
                        if let Some(p) = self.pending.get_mut(&id) {
                            p.states.insert((ack.node, ack.subtask), state);
                            p.size += size;
                            p.written += written;
                            if p.states.len() == self.expected {
                                return self.complete(hub, id, false);
                            }
                        }
                        Ok(())
                    }
                    Err(e) => self.fail_one(id, e.to_string()),
                }
            }
            TaskMessage::Decline { id, reason } => {
                self.abandon(id, &reason);
                Ok(())
            }
            TaskMessage::Final { ack, last_barrier } => {
                // Checkpoints this task never saw can no longer complete.
                let lost: Vec<u64> = self
                    .pending
                    .range(last_barrier + 1..)
                    .map(|(&id, _)| id)
                    .collect();
                for id in lost {
                    self.abandon(id, "a task ended its input before the barrier reached it");
                }
                self.finals
                    .insert((ack.node, ack.subtask), (ack, last_barrier));
                Ok(())
            }
        }
    }

    /// Writes a task's keyed state files (the asynchronous part); returns
    /// its state, the bytes of its state and the bytes written for it.
    fn write_state(
        &self,
        id: u64,
        ack: &TaskAck,
    ) -> Result<(SubtaskState, u64, u64), StorageError> {
        let started = Instant::now();
        let mut size = 0;
        let mut written = 0;
        let node = &self.graph.nodes[ack.node];
        let name = keyed_file_name(ack.node, &node.uid, ack.subtask);
        let keyed = match &ack.state.keyed {
            Some(snap) => {
                self.storage.write(id, &name, &snap.bytes)?;
                size += snap.bytes.len() as u64;
                written += snap.bytes.len() as u64;
                Some(snap.handle(name.clone()))
            }
            None => None,
        };
        let incremental = match &ack.state.native {
            Some(native) => {
                let stem = name.strip_suffix(".keyed").unwrap_or(&name);
                let (handle, bytes) = self.storage.write_incremental(id, stem, native)?;
                size += handle.size();
                written += bytes;
                Some(handle)
            }
            None => None,
        };
        let operator_bytes = ack
            .state
            .operator_state
            .iter()
            .map(|s| s.len() as u64)
            .sum::<u64>();
        Ok((
            SubtaskState {
                subtask: ack.subtask,
                keyed,
                incremental,
                operator_state: ack.state.operator_state.clone(),
                sync_ms: ms(ack.sync),
                async_ms: ms(started.elapsed()),
                alignment_ms: ms(ack.alignment),
            },
            size + operator_bytes,
            written + operator_bytes,
        ))
    }

    fn complete(
        &mut self,
        hub: &CheckpointHub,
        id: u64,
        is_final: bool,
    ) -> Result<(), CoordinatorError> {
        let Some(p) = self.pending.remove(&id) else {
            return Ok(());
        };
        let graph = self.graph;
        let mut operators = Vec::with_capacity(graph.nodes.len());
        for (n, node) in graph.nodes.iter().enumerate() {
            let mut subtasks: Vec<SubtaskState> = p
                .states
                .iter()
                .filter(|((node, _), _)| *node == n)
                .map(|(_, s)| s.clone())
                .collect();
            subtasks.sort_by_key(|s| s.subtask);
            operators.push(OperatorSnapshot {
                uid: node.uid.clone(),
                node: node.id.clone(),
                parallelism: node.parallelism,
                subtasks,
            });
        }
        let metadata = CheckpointMetadata {
            job_id: self.job_id.to_owned(),
            job_name: graph.name.clone(),
            checkpoint_id: id,
            kind: "checkpoint".into(),
            trigger_timestamp: p.trigger_ts,
            completed_timestamp: epoch_ms(),
            duration_ms: ms(p.trigger_time.elapsed()),
            state_size: p.size,
            checkpointed_size: p.written,
            max_parallelism: graph.max_parallelism,
            mode: match self.config.mode {
                super::CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE".into(),
                super::CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE".into(),
            },
            backend: graph.config.backend.kind.name().into(),
            is_final,
            operators,
        };
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
            Err(e) => return self.fail_one(id, e.to_string()),
        };
        self.failures_in_a_row = 0;
        self.last_completion = Some(Instant::now());
        hub.last_completed.store(id, Ordering::Release);
        // The checkpoint is durable: the sinks' pre-committed files of it
        // (and of any earlier checkpoint that failed) become visible.
        for op in &metadata.operators {
            let Some(n) = graph.nodes.iter().position(|x| x.uid == op.uid) else {
                continue;
            };
            if !matches!(graph.nodes[n].kind, NodeKind::Sink(_)) {
                continue;
            }
            for s in &op.subtasks {
                if let Err(e) = (self.committer)(n, &s.operator_state) {
                    tracing::error!("checkpoint {id}: sink `{}` commit failed: {e}", op.node);
                }
            }
        }
        tracing::info!(
            "checkpoint {id} completed: {path} ({} bytes, {:.1} ms)",
            metadata.state_size,
            metadata.duration_ms
        );
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
                })
            })
            .collect();
        self.history.push(CheckpointStats {
            id,
            trigger_timestamp: metadata.trigger_timestamp,
            duration_ms: metadata.duration_ms,
            size: metadata.state_size,
            checkpointed_size: metadata.checkpointed_size,
            max_sync_ms: max(|s| s.sync_ms),
            max_async_ms: max(|s| s.async_ms),
            max_alignment_ms: max(|s| s.alignment_ms),
            is_final,
            subtasks: per_subtask,
        });
        if let (Some(listener), Some(stats)) = (self.on_complete, self.history.last()) {
            listener(stats, &path);
        }
        let older: Vec<u64> = self.pending.range(..id).map(|(&i, _)| i).collect();
        for old in older {
            self.abandon(old, "subsumed by a newer checkpoint");
        }
        let reader = self.storage.reader(id);
        let mut completed = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        completed.push(CompletedCheckpoint {
            metadata,
            path,
            reader,
        });
        while completed.len() > self.config.num_retained as usize {
            let old = completed.remove(0);
            if let Err(e) = self.storage.discard(old.metadata.checkpoint_id) {
                tracing::warn!("cannot delete subsumed checkpoint: {e}");
            }
        }
        Ok(())
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
        let pending: Vec<u64> = self.pending.keys().copied().collect();
        for id in pending {
            self.abandon(id, "the job's input ended");
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut p = Pending {
            trigger_time: Instant::now(),
            trigger_ts: epoch_ms(),
            states: HashMap::new(),
            size: 0,
            written: 0,
        };
        let finals = std::mem::take(&mut self.finals);
        for ((node, subtask), (ack, _)) in finals {
            let (state, size, written) = self
                .write_state(id, &ack)
                .map_err(|e| CoordinatorError::Final(e.to_string()))?;
            p.states.insert((node, subtask), state);
            p.size += size;
            p.written += written;
        }
        self.pending.insert(id, p);
        self.complete(hub, id, true)
    }
}
