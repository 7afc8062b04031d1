//! What travels between tasks: element batches, watermarks, checkpoint
//! barriers and the end of input, over bounded channels.
//!
//! A channel connects one upstream subtask to one downstream subtask, so a
//! task can tell its inputs apart (watermarks are tracked per input, and
//! checkpoint alignment holds individual inputs). Channels are bounded: a
//! full channel makes the sender wait, which is backpressure, and the time
//! spent waiting is counted per task. Channels carry owned values only, so a
//! network channel can replace one later.
//!
//! Beside its bounded data lane, each channel has an unbounded priority
//! lane that carries only [`Announcement`]s: a barrier announced there is
//! seen by the receiver at once, however full the data lane is (Flink's
//! priority events), which is what lets a checkpoint go unaligned. The
//! barrier itself still follows on the data lane, where it marks the end
//! of the records it overtook.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// A barrier announced on the priority lane, ahead of the data: the same
/// barrier follows on the data lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// The barrier that follows.
    pub barrier: Barrier,
    /// The sender went unaligned for it: the receiver may take its
    /// snapshot at once rather than wait for alignment.
    pub unaligned: bool,
}

/// The sending side of a channel, counting the time it waits on a full
/// channel as backpressure.
#[derive(Debug, Clone)]
pub struct ChannelSender {
    tx: Sender<Event>,
    priority: Sender<Announcement>,
    /// Events the receiver pulled out ahead of processing (shared with
    /// [`ChannelReceiver::backlog`]).
    backlog: Arc<AtomicUsize>,
    capacity: usize,
    /// False once every receiving end is gone.
    receiver_alive: Arc<AtomicBool>,
    metrics: Arc<TaskMetrics>,
}

/// The receiving side of a channel: its data lane and its priority lane.
#[derive(Debug, Clone)]
pub struct ChannelReceiver {
    /// Elements and events, in order.
    pub data: Receiver<Event>,
    /// Barriers announced ahead of the data.
    pub priority: Receiver<Announcement>,
    /// How many events the receiver holds pulled out of the data lane and
    /// not yet processed: they still count against the channel's capacity
    /// for a sender that checks [`ChannelSender::has_room`], so pulling a
    /// channel never doubles its queue.
    pub backlog: Arc<AtomicUsize>,
    /// Tells the sender when the last receiving end is dropped.
    _alive: Arc<Liveness>,
}

/// Clears its flag when dropped: the receiving end of a channel is gone.
#[derive(Debug)]
struct Liveness(Arc<AtomicBool>);

impl Drop for Liveness {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_counts_pulled_events_and_a_gone_receiver_leaves_room() {
        let (tx, rx) = channel(2, Arc::new(TaskMetrics::default()));
        assert!(tx.has_room());
        tx.send(Event::Idle).expect("send");
        rx.backlog.fetch_add(1, Ordering::AcqRel);
        assert!(
            !tx.has_room(),
            "one queued and one pulled fill a channel of 2"
        );
        drop(rx);
        assert!(tx.has_room());
        assert_eq!(tx.send(Event::Idle), Err(Disconnected));
    }
}

/// The downstream side went away (its task ended or failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the downstream task is gone")]
pub struct Disconnected;

/// A bounded channel of `capacity` events; `metrics` are the sender's.
pub fn channel(capacity: usize, metrics: Arc<TaskMetrics>) -> (ChannelSender, ChannelReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let (priority, priority_rx) = crossbeam_channel::unbounded();
    let backlog = Arc::new(AtomicUsize::new(0));
    let receiver_alive = Arc::new(AtomicBool::new(true));
    let receiver = ChannelReceiver {
        data: rx,
        priority: priority_rx,
        backlog: backlog.clone(),
        _alive: Arc::new(Liveness(receiver_alive.clone())),
    };
    (
        ChannelSender {
            tx,
            priority,
            backlog,
            capacity,
            receiver_alive,
            metrics,
        },
        receiver,
    )
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

    /// Whether the channel has room for one more event, counting what
    /// its receiver pulled out and has not processed yet; also true once
    /// the receiver is gone, so that the next send fails rather than
    /// waiting for room that never comes.
    pub fn has_room(&self) -> bool {
        !self.receiver_alive.load(Ordering::Acquire)
            || self.tx.len() + self.backlog.load(Ordering::Acquire) < self.capacity
    }

    /// Waits at most `timeout` for room in one of `senders` (those without
    /// room): at once when a full channel gets room, else (room held by
    /// what receivers pulled out) after the timeout. The time counts as
    /// backpressure.
    pub fn wait_for_room<'a>(senders: impl Iterator<Item = &'a ChannelSender>, timeout: Duration) {
        let start = Instant::now();
        let mut sel = crossbeam_channel::Select::new();
        let mut full: Option<&ChannelSender> = None;
        let mut waiting = 0;
        for s in senders.filter(|s| !s.has_room()) {
            full.get_or_insert(s);
            if s.tx.is_full() {
                sel.send(&s.tx);
                waiting += 1;
            }
        }
        let Some(first) = full else { return };
        if waiting > 0 {
            let _ = sel.ready_timeout(timeout);
        } else {
            std::thread::sleep(timeout);
        }
        first.metrics.add_backpressure(start.elapsed());
    }

    /// Announces a barrier on the priority lane; never waits.
    pub fn announce(&self, announcement: Announcement) -> Result<(), Disconnected> {
        self.priority.send(announcement).map_err(|_| Disconnected)
    }
}
