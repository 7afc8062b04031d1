//! The hub between the tasks of one job attempt and its checkpoint
//! coordinator: sources poll it for triggers, tasks send it their
//! acknowledgements, and sinks read from it which checkpoint completed last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::channel_state::ChannelState;
use crate::channel::{Barrier, BarrierKind};
use crate::config::{CheckpointingMode, SavepointFormat, UnalignedConfig};
use crate::state::DeclaredState;
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
    /// The keyed states the operator declared (a WebAssembly operator's),
    /// recorded so that a restore can check a new component against them.
    pub declared: Vec<DeclaredState>,
    /// The task's event-time watermark when it took the snapshot, if any.
    pub watermark: Option<i64>,
    /// The records an unaligned checkpoint's barrier overtook on the
    /// task's inputs (`None`: the snapshot was aligned).
    pub channel: Option<ChannelState>,
    /// Bytes the task processed between its first barrier and its last
    /// (Flink's "processed in-flight data").
    pub processed_bytes: u64,
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
    /// From the trigger to the first barrier reaching the task (Flink's
    /// start delay).
    pub start_delay: Duration,
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
    /// Asks the coordinator to note `seq` in [`CheckpointHub::synced`] once
    /// it has handled every message sent before this one (a region
    /// failover waits for that before it picks its restore point).
    Sync {
        /// The sequence number to note.
        seq: u64,
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
    /// The newest checkpoint sources are asked to start: its id shifted
    /// left by two bits, its kind ([`kind_code`]) in them, so that both
    /// are read together (0: none).
    trigger: AtomicU64,
    trigger_ts: AtomicU64,
    /// The savepoint after whose barrier the sources stop reading (0:
    /// none), and how that stop stands ([`StopOutcome`]).
    stop_id: AtomicU64,
    stop_outcome: AtomicU8,
    /// Sources end their input now (stop with `--drain`), and the final
    /// snapshot is a savepoint of this format ([`kind_code`]; 0: none).
    drain: AtomicU8,
    /// A source has reached its end: no new checkpoints are triggered.
    source_finished: AtomicBool,
    /// The newest completed checkpoint: sinks forget pre-committed files
    /// of checkpoints up to it.
    last_completed: AtomicU64,
    /// The newest [`TaskMessage::Sync`] the coordinator handled.
    synced: AtomicU64,
    /// The last sync sequence number handed out.
    sync_seq: AtomicU64,
    /// The runner has joined every task.
    done: AtomicBool,
    tx: Sender<TaskMessage>,
    /// Whether tasks align (EXACTLY_ONCE) or not.
    pub mode: CheckpointingMode,
    /// Whether and when checkpoints go unaligned.
    pub unaligned: UnalignedConfig,
}

impl CheckpointHub {
    /// A hub and the receiving end for the coordinator.
    pub fn new(
        mode: CheckpointingMode,
        unaligned: UnalignedConfig,
    ) -> (Arc<Self>, Receiver<TaskMessage>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Arc::new(CheckpointHub {
                trigger: AtomicU64::new(0),
                trigger_ts: AtomicU64::new(0),
                stop_id: AtomicU64::new(0),
                stop_outcome: AtomicU8::new(0),
                drain: AtomicU8::new(0),
                source_finished: AtomicBool::new(false),
                last_completed: AtomicU64::new(0),
                synced: AtomicU64::new(0),
                sync_seq: AtomicU64::new(0),
                done: AtomicBool::new(false),
                tx,
                mode,
                unaligned,
            }),
            rx,
        )
    }

    /// For a source: the barrier to emit if a checkpoint newer than `last`
    /// was triggered.
    pub fn poll_trigger(&self, last: u64) -> Option<Barrier> {
        let packed = self.trigger.load(Ordering::Acquire);
        let id = packed >> 2;
        (id > last).then(|| Barrier {
            id,
            timestamp: self.trigger_ts.load(Ordering::Relaxed) as i64,
            kind: kind_of((packed & 3) as u8),
        })
    }

    /// Whether barriers of `kind` may overtake data: unaligned checkpoints
    /// are on and it is a checkpoint (savepoints are always aligned).
    pub fn may_overtake(&self, kind: BarrierKind) -> bool {
        self.unaligned.active()
            && self.mode == CheckpointingMode::ExactlyOnce
            && kind == BarrierKind::Checkpoint
    }

    /// Asks the sources to start checkpoint (or savepoint) `id`.
    pub(super) fn trigger(&self, id: u64, timestamp: i64, kind: BarrierKind) {
        self.trigger_ts.store(timestamp as u64, Ordering::Relaxed);
        let packed = (id << 2) | u64::from(kind_code(kind));
        self.trigger.store(packed, Ordering::Release);
    }

    /// Savepoint `id` stops the job: sources read nothing after its
    /// barrier until [`Self::stop_outcome`] says how it ended.
    pub(super) fn set_stop(&self, id: u64) {
        self.stop_outcome
            .store(StopOutcome::Pending as u8, Ordering::SeqCst);
        self.stop_id.store(id, Ordering::SeqCst);
    }

    /// Whether the barrier of `id` is the one that stops the job.
    pub fn is_stop(&self, id: u64) -> bool {
        id != 0 && self.stop_id.load(Ordering::SeqCst) == id
    }

    /// How the stop with savepoint `id` stands.
    pub fn stop_outcome(&self, id: u64) -> StopOutcome {
        if !self.is_stop(id) {
            return StopOutcome::Resumed;
        }
        match self.stop_outcome.load(Ordering::SeqCst) {
            0 => StopOutcome::Pending,
            1 => StopOutcome::Stopped,
            _ => StopOutcome::Resumed,
        }
    }

    /// The stop with savepoint `id` ended: the job stops, or (the
    /// savepoint failed) the sources read on.
    pub(super) fn end_stop(&self, id: u64, outcome: StopOutcome) {
        if self.is_stop(id) {
            self.stop_outcome.store(outcome as u8, Ordering::SeqCst);
        }
    }

    /// Asks the sources to end their input now (stop with drain); the
    /// final snapshots are then a savepoint in `format`.
    pub(super) fn drain(&self, format: SavepointFormat) {
        let code = kind_code(BarrierKind::Savepoint(format));
        self.drain.store(code, Ordering::SeqCst);
    }

    /// Whether the sources should end their input now.
    pub fn drain_requested(&self) -> bool {
        self.drain.load(Ordering::Relaxed) != 0
    }

    /// What the tasks' final snapshots are for: the final checkpoint, or
    /// the savepoint of a stop with drain.
    pub fn final_kind(&self) -> BarrierKind {
        kind_of(self.drain.load(Ordering::SeqCst))
    }

    /// A source reached its end.
    pub fn source_finished(&self) {
        self.source_finished.store(true, Ordering::SeqCst);
    }

    /// The newest completed checkpoint.
    pub fn last_completed(&self) -> u64 {
        self.last_completed.load(Ordering::Acquire)
    }

    /// Sends a [`TaskMessage::Sync`] and waits (at most `patience`) until
    /// the coordinator has handled it, and so every message before it: a
    /// checkpoint it was completing is then committed and retained.
    /// Returns whether it was handled.
    pub fn sync(&self, patience: std::time::Duration) -> bool {
        let seq = self.sync_seq.fetch_add(1, Ordering::AcqRel) + 1;
        self.send(TaskMessage::Sync { seq });
        let deadline = std::time::Instant::now() + patience;
        while self.synced.load(Ordering::Acquire) < seq {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        true
    }

    /// Records that the coordinator handled sync `seq`.
    pub(super) fn note_synced(&self, seq: u64) {
        self.synced.fetch_max(seq, Ordering::AcqRel);
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

/// How a stop with savepoint stands, for the sources waiting after its
/// barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopOutcome {
    /// The savepoint is in progress: read nothing.
    Pending = 0,
    /// The savepoint completed: the job stops.
    Stopped = 1,
    /// The savepoint failed: read on.
    Resumed = 2,
}

/// A barrier kind as one byte.
fn kind_code(kind: BarrierKind) -> u8 {
    match kind {
        BarrierKind::Checkpoint => 0,
        BarrierKind::Savepoint(SavepointFormat::Canonical) => 1,
        BarrierKind::Savepoint(SavepointFormat::Native) => 2,
    }
}

/// The barrier kind of [`kind_code`]'s byte.
fn kind_of(code: u8) -> BarrierKind {
    match code {
        1 => BarrierKind::Savepoint(SavepointFormat::Canonical),
        2 => BarrierKind::Savepoint(SavepointFormat::Native),
        _ => BarrierKind::Checkpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_is_read_with_its_own_kind() {
        let (hub, _rx) =
            CheckpointHub::new(CheckpointingMode::ExactlyOnce, UnalignedConfig::default());
        assert_eq!(hub.poll_trigger(0), None);
        hub.trigger(7, 1, BarrierKind::Checkpoint);
        let b = hub.poll_trigger(0).expect("barrier");
        assert_eq!((b.id, b.kind), (7, BarrierKind::Checkpoint));
        let native = BarrierKind::Savepoint(SavepointFormat::Native);
        hub.trigger(8, 2, native);
        assert_eq!(
            hub.poll_trigger(7).map(|b| (b.id, b.kind)),
            Some((8, native))
        );
        assert_eq!(hub.poll_trigger(8), None);
    }
}
