//! The hub between the tasks of one job attempt and its checkpoint
//! coordinator: sources poll it for triggers, tasks send it their
//! acknowledgements, and sinks read from it which checkpoint completed last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::channel::{Barrier, BarrierKind};
use crate::config::CheckpointingMode;
use crate::state::incremental::NativeSnapshot;
use crate::state::snapshot::KeyedSnapshot;

/// The state a task captured for a checkpoint (the synchronous part).
#[derive(Debug, Default)]
pub struct StateSnapshot {
    /// Keyed state and timers, encoded (with `native`: the timers only).
    pub keyed: Option<KeyedSnapshot>,
    /// The backend's own snapshot of the keyed state, to upload
    /// incrementally.
    pub native: Option<NativeSnapshot>,
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
    pub mode: CheckpointingMode,
}

impl CheckpointHub {
    /// A hub and the receiving end for the coordinator.
    pub fn new(mode: CheckpointingMode) -> (Arc<Self>, Receiver<TaskMessage>) {
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

    /// Asks the sources to start checkpoint `id`.
    pub(super) fn trigger(&self, id: u64, timestamp: i64) {
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

    /// Whether every task has ended.
    pub(super) fn is_closed(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Whether a source has reached its end (no new checkpoints then).
    pub(super) fn is_source_finished(&self) -> bool {
        self.source_finished.load(Ordering::SeqCst)
    }

    /// Checkpoint `id` is complete: tasks tell their sinks before the next
    /// pre-commit.
    pub(super) fn set_completed(&self, id: u64) {
        self.last_completed.store(id, Ordering::Release);
    }
}
