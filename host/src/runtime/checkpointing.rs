//! A task's side of checkpoints: its link to the coordinator, through
//! which it acknowledges a barrier with its state or sends its final
//! snapshot at the end of its input.

use std::sync::Arc;
use std::time::Duration;

use crate::channel::Barrier;
use crate::checkpoint::hub::{CheckpointHub, StateSnapshot, TaskAck, TaskMessage};

/// The id under which a task's final snapshot (at the end of its input)
/// is taken.
pub(crate) const FINAL_SNAPSHOT: u64 = u64::MAX;

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
        let since_trigger = (crate::clock::epoch_ms() - barrier.timestamp).max(0) as u64;
        let start_delay = Duration::from_millis(since_trigger).saturating_sub(sync + alignment);
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
