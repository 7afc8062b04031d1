//! A task's side of checkpoints: its link to the coordinator, through
//! which it acknowledges a barrier with its state or sends its final
//! snapshot at the end of its input.

use std::sync::Arc;
use std::time::Duration;

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
}

impl TaskCheckpointing {
    /// Acknowledges checkpoint `id` with the task's state.
    pub(crate) fn ack(&self, id: u64, state: StateSnapshot, sync: Duration, alignment: Duration) {
        let ack = TaskAck {
            node: self.node,
            subtask: self.subtask,
            state,
            sync,
            alignment,
        };
        self.hub.send(TaskMessage::Ack { id, ack });
    }

    /// Sends the task's final snapshot, taken after its last output.
    pub(crate) fn finish(&self, state: StateSnapshot, sync: Duration, last_barrier: u64) {
        let ack = TaskAck {
            node: self.node,
            subtask: self.subtask,
            state,
            sync,
            alignment: Duration::ZERO,
        };
        self.hub.send(TaskMessage::Final { ack, last_barrier });
    }
}
