//! What travels between tasks: element batches, watermarks, checkpoint
//! barriers and the end of input, over bounded channels.
//!
//! A channel connects one upstream subtask to one downstream subtask, so a
//! task can tell its inputs apart (watermarks are tracked per input, and
//! checkpoint alignment holds individual inputs). Channels are bounded: a
//! full channel makes the sender wait, which is backpressure, and the time
//! spent waiting is counted per task. Channels carry owned values only, so a
//! network channel can replace one later.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::SavepointFormat;
use crate::metrics::TaskMetrics;

/// A batch of elements in the batch encoding (`weir_wire`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The encoded elements.
    pub data: Vec<u8>,
    /// How many elements `data` holds.
    pub len: usize,
}

/// Whether a barrier belongs to a checkpoint or a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierKind {
    /// A periodic checkpoint.
    Checkpoint,
    /// A user-triggered savepoint, in this format.
    Savepoint(SavepointFormat),
}

/// A checkpoint barrier: everything before it belongs to checkpoint `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Checkpoint id.
    pub id: u64,
    /// When the coordinator triggered it (ms since the epoch).
    pub timestamp: i64,
    /// Checkpoint or savepoint.
    pub kind: BarrierKind,
}

/// One thing on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Elements.
    Batch(Batch),
    /// No element with a smaller timestamp follows on this channel.
    Watermark(i64),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The upstream subtask is idle: until its next batch or watermark,
    /// it does not hold the downstream watermark back (Flink's
    /// `WatermarkStatus.IDLE`).
    Idle,
    /// The upstream subtask has finished; nothing follows.
    EndOfInput,
}

/// The sending side of a channel, counting the time it waits on a full
/// channel as backpressure.
#[derive(Debug, Clone)]
pub struct ChannelSender {
    tx: Sender<Event>,
    metrics: Arc<TaskMetrics>,
}

/// The receiving side of a channel.
pub type ChannelReceiver = Receiver<Event>;

/// The downstream side went away (its task ended or failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the downstream task is gone")]
pub struct Disconnected;

/// A bounded channel of `capacity` events; `metrics` are the sender's.
pub fn channel(capacity: usize, metrics: Arc<TaskMetrics>) -> (ChannelSender, ChannelReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (ChannelSender { tx, metrics }, rx)
}

impl ChannelSender {
    /// Sends an event, waiting while the channel is full.
    pub fn send(&self, event: Event) -> Result<(), Disconnected> {
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(Disconnected),
            Err(TrySendError::Full(event)) => {
                let start = Instant::now();
                let r = self.tx.send(event).map_err(|_| Disconnected);
                self.metrics.add_backpressure(start.elapsed());
                r
            }
        }
    }
}
