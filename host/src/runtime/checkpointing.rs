//! A task's side of checkpoints: its link to the coordinator, through
//! which it acknowledges a barrier with its state or sends its final
//! snapshot at the end of its input.

use std::sync::Arc;
use std::time::Duration;

use crate::channel::{Barrier, BarrierKind};
use crate::checkpoint::hub::{CheckpointHub, StateSnapshot, TaskAck, TaskMessage};

/// The id under which a task's final snapshot (at the end of its input)
/// is taken.
pub(crate) const FINAL_SNAPSHOT: u64 = u64::MAX;

/// How a task sends a checkpoint barrier on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Overtake {
    /// Announce it on the priority lanes of hash and rebalance edges.
    pub(crate) announce: bool,
    /// The announcement lets receivers snapshot at once (the checkpoint is
    /// unaligned from the start, or went unaligned here).
    pub(crate) unaligned: bool,
    /// Forward edges too (`execution.checkpointing.unaligned.forced`).
    pub(crate) forward: bool,
}

/// A task's link to the checkpoint coordinator.
#[derive(Debug, Clone)]
pub(crate) struct TaskCheckpointing {
    pub(crate) hub: Arc<CheckpointHub>,
    pub(crate) node: usize,
    pub(crate) subtask: u32,
    /// The checkpoint restored from (0: none): barriers up to it are stale.
    pub(crate) restored_id: u64,
    /// The task's watermark in the checkpoint restored from, if recorded:
    /// it starts there, so that elements after the restore are judged late
    /// or not exactly as they were before it.
    pub(crate) restored_watermark: Option<i64>,
}

impl TaskCheckpointing {
    /// Acknowledges the checkpoint of `barrier` with the task's state; the
    /// start delay is what is left of the time since its trigger once the
    /// capture and the alignment are taken out.
    pub(crate) fn ack(
        &self,
        barrier: &Barrier,
        state: StateSnapshot,
        sync: Duration,
        alignment: Duration,
    ) {
        self.ack_after(barrier, state, (sync, alignment), Duration::ZERO);
    }

    /// Acknowledges as [`Self::ack`] does, `recording` after the snapshot
    /// (an unaligned checkpoint recording its channel state), which is
    /// taken out of the start delay too.
    pub(crate) fn ack_after(
        &self,
        barrier: &Barrier,
        state: StateSnapshot,
        (sync, alignment): (Duration, Duration),
        recording: Duration,
    ) {
        let since_trigger = (crate::clock::epoch_ms() - barrier.timestamp).max(0) as u64;
        let start_delay =
            Duration::from_millis(since_trigger).saturating_sub(sync + alignment + recording);
        let ack = TaskAck {
            node: self.node,
            subtask: self.subtask,
            state,
            sync,
            alignment,
            start_delay,
        };
        self.hub.send(TaskMessage::Ack {
            id: barrier.id,
            ack,
        });
    }

    /// How this task sends a barrier of `kind` on: announced ahead of the
    /// data when unaligned checkpoints are on (and it is no savepoint),
    /// as a barrier receivers may act on at once if the checkpoint is
    /// unaligned from the start or `went_unaligned` here.
    pub(crate) fn overtake(&self, kind: BarrierKind, went_unaligned: bool) -> Overtake {
        let u = self.hub.unaligned;
        Overtake {
            announce: self.hub.may_overtake(kind),
            unaligned: went_unaligned || u.aligned_timeout.is_zero(),
            forward: u.forced,
        }
    }

    /// Sends the task's final snapshot, taken after its last output.
    pub(crate) fn finish(&self, state: StateSnapshot, sync: Duration, last_barrier: u64) {
        let ack = TaskAck {
            node: self.node,
            subtask: self.subtask,
            state,
            sync,
            alignment: Duration::ZERO,
            start_delay: Duration::ZERO,
        };
        self.hub.send(TaskMessage::Final { ack, last_barrier });
    }
}
