//! Barrier alignment of one task with several inputs.
//!
//! In EXACTLY_ONCE mode an input that has delivered barrier n is held (the
//! task takes nothing more from it) until every other input has delivered
//! barrier n too; then the task snapshots its state, forwards the barrier and
//! releases the held inputs. So the snapshot holds exactly the records before
//! the barrier on every input. In AT_LEAST_ONCE mode nothing is held: the
//! snapshot is taken when the last input delivers the barrier, and records
//! that came after the barrier on a faster input are in it (and replayed
//! again after a restore).
//!
//! With unaligned checkpoints a checkpoint may stop waiting: when a barrier
//! is announced on an input's priority lane (see [`crate::channel`]) and the
//! checkpoint is unaligned from the start, or has outlasted the
//! aligned-checkpoint timeout, the task snapshots at once and forwards the
//! barrier. From then on, until each input's barrier arrives on its data
//! lane, the records the task takes from that input were overtaken by the
//! barrier: they are *recorded* as the input's channel state, and the
//! checkpoint is done at this task once every input has brought its
//! barrier (or ended).
//!
//! An input that has ended counts as having delivered every later barrier.
//! A barrier of a newer checkpoint abandons an unfinished alignment (its
//! checkpoint can no longer complete here, and the task declines it).
//!
//! [`Alignment`] is a pure struct: the task loop tells it what arrived and
//! asks which inputs it may read and which it records.

use std::time::{Duration, Instant};

use crate::channel::{Announcement, Barrier};
use crate::config::CheckpointingMode;

/// What the task does after a barrier, an announcement or an end of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlignAction {
    /// Keep reading (from the inputs that are not held).
    Continue,
    /// Every input has delivered the barrier: snapshot, forward it, and
    /// release the held inputs. `alignment` is the time from the first
    /// barrier to the last.
    Snapshot {
        /// The barrier to snapshot for and forward.
        barrier: Barrier,
        /// Time spent aligning.
        alignment: Duration,
        /// Bytes the task processed while aligning.
        processed: u64,
    },
    /// The checkpoint goes unaligned here: snapshot now, forward the
    /// barrier ahead of the queued data, and record the inputs that have
    /// not brought it yet.
    SnapshotUnaligned {
        /// The barrier to snapshot for and forward.
        barrier: Barrier,
        /// From the first barrier to now.
        alignment: Duration,
    },
    /// Every input has brought the barrier of the unaligned checkpoint:
    /// its channel state is complete.
    ChannelStateDone {
        /// The checkpoint's barrier.
        barrier: Barrier,
        /// Bytes the task processed from its first barrier to its last.
        processed: u64,
    },
}

/// A checkpoint whose barrier has reached some inputs.
#[derive(Debug, Clone)]
struct Pending {
    barrier: Barrier,
    first: Instant,
    /// Per input: it has delivered this barrier on its data lane.
    arrived: Vec<bool>,
    /// Per input: it has announced this barrier on its priority lane.
    announced: Vec<bool>,
    /// When the task took its snapshot, if the checkpoint went unaligned.
    unaligned_at: Option<Instant>,
    /// When it goes unaligned if it is still aligning then.
    switch_at: Option<Instant>,
    /// Bytes processed since the first barrier.
    processed: u64,
}

/// The alignment state of one task.
#[derive(Debug, Clone)]
pub struct Alignment {
    mode: CheckpointingMode,
    inputs: usize,
    /// Per input: it has ended.
    ended: Vec<bool>,
    /// Checkpoints being aligned, oldest first. In EXACTLY_ONCE there is at
    /// most one; in AT_LEAST_ONCE a fast input may bring the next barrier
    /// before a slow one has brought the current.
    pending: Vec<Pending>,
    /// The newest checkpoint this task has snapshotted or abandoned.
    last: u64,
    /// Checkpoints abandoned since the task last asked.
    abandoned: Vec<u64>,
    /// With unaligned checkpoints: the aligned-checkpoint timeout.
    unaligned: Option<Duration>,
}

impl Alignment {
    /// Alignment over `inputs` inputs in `mode`.
    pub fn new(inputs: usize, mode: CheckpointingMode) -> Self {
        Alignment {
            mode,
            inputs,
            ended: vec![false; inputs],
            pending: Vec::new(),
            last: 0,
            abandoned: Vec::new(),
            unaligned: None,
        }
    }

    /// Lets checkpoints go unaligned here once they are older than
    /// `timeout` (at once for zero, or when an announcement says its
    /// sender went unaligned). Only for EXACTLY_ONCE.
    pub fn with_unaligned(mut self, timeout: Duration) -> Self {
        if self.mode == CheckpointingMode::ExactlyOnce {
            self.unaligned = Some(timeout);
        }
        self
    }

    /// Starts after a restore from checkpoint `id`: barriers up to it are
    /// stale.
    pub fn resume_after(&mut self, id: u64) {
        self.last = self.last.max(id);
    }

    /// Whether the task must not read `input` now.
    pub fn is_held(&self, input: usize) -> bool {
        self.mode == CheckpointingMode::ExactlyOnce
            && self.pending.first().is_some_and(|p| {
                p.unaligned_at.is_none() && p.arrived.get(input).copied().unwrap_or(false)
            })
    }

    /// Whether what the task takes from `input` now belongs to the channel
    /// state of an unaligned checkpoint.
    pub fn is_recording(&self, input: usize) -> bool {
        let ended = self.ended.get(input).copied().unwrap_or(true);
        !ended
            && self.pending.first().is_some_and(|p| {
                p.unaligned_at.is_some() && !p.arrived.get(input).copied().unwrap_or(true)
            })
    }

    /// Whether `input` is recorded and its barrier is known to be queued
    /// on its data lane: the task may pull everything before the barrier
    /// out of the channel now.
    pub fn is_draining(&self, input: usize) -> bool {
        self.is_recording(input)
            && self
                .pending
                .first()
                .is_some_and(|p| p.announced.get(input).copied().unwrap_or(false))
    }

    /// When a checkpoint still aligning here goes unaligned, if it will.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .first()
            .filter(|p| p.unaligned_at.is_none())
            .and_then(|p| p.switch_at)
    }

    /// Counts `bytes` the task processed, towards the checkpoint in
    /// progress (Flink's "processed in-flight data").
    pub fn note_processed(&mut self, bytes: u64) {
        if let Some(p) = self.pending.first_mut() {
            p.processed += bytes;
        }
    }

    /// Checkpoints abandoned since the last call, for the task to decline.
    pub fn take_abandoned(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.abandoned)
    }

    /// Barrier `barrier` arrived on `input`'s data lane at `now`.
    pub fn on_barrier(&mut self, input: usize, barrier: Barrier, now: Instant) -> AlignAction {
        let Some(at) = self.pending_for(barrier, now) else {
            return AlignAction::Continue;
        };
        if let Some(a) = self.pending[at].arrived.get_mut(input) {
            *a = true;
        }
        match self.check_complete(now) {
            AlignAction::Continue => self.poll(now),
            action => action,
        }
    }

    /// `announcement` arrived on `input`'s priority lane at `now`.
    pub fn on_announce(
        &mut self,
        input: usize,
        announcement: Announcement,
        now: Instant,
    ) -> AlignAction {
        let Some(at) = self.pending_for(announcement.barrier, now) else {
            return AlignAction::Continue;
        };
        let p = &mut self.pending[at];
        if let Some(a) = p.announced.get_mut(input) {
            *a = true;
        }
        if announcement.unaligned && p.unaligned_at.is_none() && self.unaligned.is_some() {
            p.switch_at = Some(now);
        }
        self.poll(now)
    }

    /// Whether the checkpoint aligning here has outlasted its timeout at
    /// `now`: then it goes unaligned.
    pub fn poll(&mut self, now: Instant) -> AlignAction {
        let Some(p) = self.pending.first_mut() else {
            return AlignAction::Continue;
        };
        if p.unaligned_at.is_some() || p.switch_at.is_none_or(|t| now < t) {
            return AlignAction::Continue;
        }
        p.unaligned_at = Some(now);
        AlignAction::SnapshotUnaligned {
            barrier: p.barrier,
            alignment: now.saturating_duration_since(p.first),
        }
    }

    /// `input` ended at `now`.
    pub fn on_end_of_input(&mut self, input: usize, now: Instant) -> AlignAction {
        if let Some(e) = self.ended.get_mut(input) {
            *e = true;
        }
        self.check_complete(now)
    }

    /// The index of the pending checkpoint `barrier` belongs to, started
    /// at `now` if it is new; `None` if it is stale or was overtaken.
    fn pending_for(&mut self, barrier: Barrier, now: Instant) -> Option<usize> {
        if barrier.id <= self.last {
            return None;
        }
        match self.pending.iter().position(|p| p.barrier.id >= barrier.id) {
            Some(i) if self.pending[i].barrier.id == barrier.id => Some(i),
            Some(i) => {
                // Older than one being aligned: its checkpoint was overtaken.
                if self.mode == CheckpointingMode::ExactlyOnce {
                    return None;
                }
                Some(self.insert(i, barrier, now))
            }
            None => {
                if self.mode == CheckpointingMode::ExactlyOnce {
                    // A newer checkpoint reached an input that had not yet
                    // brought the older one: the older cannot complete.
                    let older: Vec<u64> = self.pending.drain(..).map(|p| p.barrier.id).collect();
                    self.abandoned.extend(older);
                }
                let i = self.pending.len();
                Some(self.insert(i, barrier, now))
            }
        }
    }

    fn insert(&mut self, at: usize, barrier: Barrier, now: Instant) -> usize {
        // The timeout counts from the trigger, as Flink's does.
        let switch_at = self.unaligned.map(|timeout| {
            let age = (crate::clock::epoch_ms() - barrier.timestamp).max(0) as u64;
            now + timeout.saturating_sub(Duration::from_millis(age))
        });
        let switch_at =
            switch_at.filter(|_| barrier.kind == crate::channel::BarrierKind::Checkpoint);
        self.pending.insert(
            at,
            Pending {
                barrier,
                first: now,
                arrived: vec![false; self.inputs],
                announced: vec![false; self.inputs],
                unaligned_at: None,
                switch_at,
                processed: 0,
            },
        );
        at
    }

    /// Snapshots the newest checkpoint that every input has delivered;
    /// older ones still pending are abandoned (the newer subsumes them).
    fn check_complete(&mut self, now: Instant) -> AlignAction {
        let ended = &self.ended;
        let Some(done) = self
            .pending
            .iter()
            .rposition(|p| p.arrived.iter().zip(ended).all(|(&a, &e)| a || e))
        else {
            return AlignAction::Continue;
        };
        let mut finished: Vec<Pending> = self.pending.drain(..=done).collect();
        let Some(p) = finished.pop() else {
            return AlignAction::Continue;
        };
        self.abandoned.extend(finished.iter().map(|f| f.barrier.id));
        self.last = p.barrier.id;
        if p.unaligned_at.is_some() {
            return AlignAction::ChannelStateDone {
                barrier: p.barrier,
                processed: p.processed,
            };
        }
        AlignAction::Snapshot {
            barrier: p.barrier,
            alignment: now.saturating_duration_since(p.first),
            processed: p.processed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::BarrierKind;
    use std::collections::VecDeque;

    fn barrier(id: u64) -> Barrier {
        Barrier {
            id,
            timestamp: 0,
            kind: BarrierKind::Checkpoint,
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Ev {
        Rec(u64),
        Bar(u64),
    }

    /// Runs a task that sums the records of two inputs, reading them in
    /// turn (the fast input gets `fast` reads per read of the slow one), and
    /// returns the sum at each snapshot.
    fn run(mode: CheckpointingMode, fast: usize) -> Vec<(u64, u64)> {
        let mut inputs: Vec<VecDeque<Ev>> = vec![
            // The fast input: 1, 2, barrier 1, 10, 20, barrier 2, 100.
            [
                Ev::Rec(1),
                Ev::Rec(2),
                Ev::Bar(1),
                Ev::Rec(10),
                Ev::Rec(20),
                Ev::Bar(2),
                Ev::Rec(100),
            ]
            .into(),
            // The slow input: 1000, barrier 1, 2000, barrier 2.
            [Ev::Rec(1000), Ev::Bar(1), Ev::Rec(2000), Ev::Bar(2)].into(),
        ];
        let mut a = Alignment::new(2, mode);
        let (mut sum, mut snapshots) = (0u64, Vec::new());
        let now = Instant::now();
        let mut turn = 0usize;
        while inputs.iter().any(|q| !q.is_empty()) {
            turn += 1;
            let i = usize::from(turn.is_multiple_of(fast + 1));
            if a.is_held(i) || inputs[i].is_empty() {
                // Read the other input instead, if it can be read.
                let j = 1 - i;
                if a.is_held(j) || inputs[j].is_empty() {
                    continue;
                }
                step(&mut inputs[j], j, &mut a, &mut sum, &mut snapshots, now);
            } else {
                step(&mut inputs[i], i, &mut a, &mut sum, &mut snapshots, now);
            }
        }
        snapshots
    }

    fn step(
        q: &mut VecDeque<Ev>,
        i: usize,
        a: &mut Alignment,
        sum: &mut u64,
        snapshots: &mut Vec<(u64, u64)>,
        now: Instant,
    ) {
        match q.pop_front() {
            Some(Ev::Rec(v)) => *sum += v,
            Some(Ev::Bar(id)) => {
                if let AlignAction::Snapshot { barrier, .. } = a.on_barrier(i, barrier(id), now) {
                    snapshots.push((barrier.id, *sum));
                }
            }
            None => {}
        }
    }

    #[test]
    fn exactly_once_snapshots_hold_exactly_the_records_before_the_barriers() {
        for fast in [1, 3, 10] {
            assert_eq!(
                run(CheckpointingMode::ExactlyOnce, fast),
                vec![(1, 1003), (2, 3033)],
                "fast = {fast}"
            );
        }
    }

    #[test]
    fn at_least_once_snapshots_include_records_after_the_barrier_of_a_fast_input() {
        // The fast input runs ahead past its barrier 1 while the slow one
        // has not delivered it: 10 and 20 are in snapshot 1.
        let s = run(CheckpointingMode::AtLeastOnce, 10);
        assert_eq!(s[0].0, 1);
        assert!(s[0].1 > 1003, "{s:?}");
        assert_eq!(s[1], (2, 3133));
    }

    #[test]
    fn ended_inputs_count_as_aligned_and_newer_barriers_abandon_older_ones() {
        let now = Instant::now();
        let mut a = Alignment::new(2, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.on_barrier(0, barrier(1), now), AlignAction::Continue);
        assert!(a.is_held(0) && !a.is_held(1));
        // Checkpoint 2 reaches input 1 first (checkpoint 1 was lost there).
        assert_eq!(a.on_barrier(1, barrier(2), now), AlignAction::Continue);
        assert_eq!(a.take_abandoned(), vec![1]);
        assert!(!a.is_held(0) && a.is_held(1));
        assert!(matches!(
            a.on_end_of_input(0, now),
            AlignAction::Snapshot { barrier: b, .. } if b.id == 2
        ));
        // A stale barrier is ignored.
        assert_eq!(a.on_barrier(1, barrier(1), now), AlignAction::Continue);
        assert!(!a.is_held(1));
    }

    fn announced(id: u64, unaligned: bool) -> Announcement {
        Announcement {
            barrier: Barrier {
                timestamp: crate::clock::epoch_ms(),
                ..barrier(id)
            },
            unaligned,
        }
    }

    #[test]
    fn an_unaligned_announcement_snapshots_at_once_and_records_until_each_barrier() {
        let now = Instant::now();
        let mut a =
            Alignment::new(2, CheckpointingMode::ExactlyOnce).with_unaligned(Duration::ZERO);
        assert!(matches!(
            a.on_announce(1, announced(1, true), now),
            AlignAction::SnapshotUnaligned { barrier: b, .. } if b.id == 1
        ));
        // Nothing is held; both inputs are recorded, the announced one
        // drained.
        assert!(!a.is_held(0) && !a.is_held(1));
        assert!(a.is_recording(0) && a.is_recording(1));
        assert!(a.is_draining(1) && !a.is_draining(0));
        a.note_processed(10);
        assert_eq!(a.on_barrier(1, barrier(1), now), AlignAction::Continue);
        assert!(!a.is_recording(1) && a.is_recording(0));
        a.note_processed(5);
        assert!(matches!(
            a.on_end_of_input(0, now),
            AlignAction::ChannelStateDone { barrier: b, processed: 15 } if b.id == 1
        ));
        assert!(!a.is_recording(0));
        // The barrier is stale now.
        assert_eq!(a.on_barrier(0, barrier(1), now), AlignAction::Continue);
    }

    #[test]
    fn a_checkpoint_goes_unaligned_only_once_it_outlasts_the_timeout() {
        let now = Instant::now();
        let timeout = Duration::from_millis(500);
        let mut a = Alignment::new(2, CheckpointingMode::ExactlyOnce).with_unaligned(timeout);
        let b1 = announced(1, false).barrier;
        assert_eq!(
            a.on_announce(0, announced(1, false), now),
            AlignAction::Continue
        );
        assert_eq!(a.on_barrier(0, b1, now), AlignAction::Continue);
        assert!(a.is_held(0), "aligned until the timeout");
        let deadline = a.deadline().expect("deadline");
        assert!(deadline <= now + timeout && deadline > now, "{deadline:?}");
        assert_eq!(a.poll(now), AlignAction::Continue);
        assert!(matches!(
            a.poll(deadline),
            AlignAction::SnapshotUnaligned { barrier: b, .. } if b.id == 1
        ));
        assert!(!a.is_held(0) && a.is_recording(1) && !a.is_recording(0));
        assert!(a.deadline().is_none());
        assert!(matches!(
            a.on_barrier(1, b1, deadline),
            AlignAction::ChannelStateDone { .. }
        ));
        // A checkpoint that aligns within the timeout stays aligned.
        let b2 = announced(2, false).barrier;
        assert_eq!(a.on_barrier(0, b2, now), AlignAction::Continue);
        assert!(matches!(
            a.on_barrier(1, b2, now),
            AlignAction::Snapshot { barrier: b, .. } if b.id == 2
        ));
        // Savepoints never go unaligned.
        let mut sp = barrier(3);
        sp.kind = BarrierKind::Savepoint(crate::config::SavepointFormat::Canonical);
        assert_eq!(a.on_barrier(0, sp, now), AlignAction::Continue);
        assert!(a.deadline().is_none());
        assert_eq!(a.poll(now + timeout * 10), AlignAction::Continue);
    }

    #[test]
    fn without_unaligned_checkpoints_announcements_change_nothing() {
        let now = Instant::now();
        let mut a = Alignment::new(2, CheckpointingMode::ExactlyOnce);
        assert_eq!(
            a.on_announce(0, announced(1, true), now),
            AlignAction::Continue
        );
        assert!(!a.is_recording(0) && !a.is_draining(0));
        assert_eq!(a.on_barrier(0, barrier(1), now), AlignAction::Continue);
        assert!(a.is_held(0));
        assert!(matches!(
            a.on_barrier(1, barrier(1), now),
            AlignAction::Snapshot { .. }
        ));
    }
}
