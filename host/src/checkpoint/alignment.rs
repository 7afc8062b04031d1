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
//! An input that has ended counts as having delivered every later barrier.
//! A barrier of a newer checkpoint abandons an unfinished alignment (its
//! checkpoint can no longer complete here, and the task declines it).
//!
//! [`Alignment`] is a pure struct: the task loop tells it what arrived and
//! asks which inputs it may read.

use std::time::{Duration, Instant};

use crate::channel::Barrier;
use crate::config::CheckpointingMode;

/// What the task does after a barrier or an end of input.
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
    },
}

/// A checkpoint whose barrier has reached some inputs.
#[derive(Debug, Clone)]
struct Pending {
    barrier: Barrier,
    first: Instant,
    /// Per input: it has delivered this barrier.
    arrived: Vec<bool>,
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
        }
    }

    /// Starts after a restore from checkpoint `id`: barriers up to it are
    /// stale.
    pub fn resume_after(&mut self, id: u64) {
        self.last = self.last.max(id);
    }

    /// Whether the task must not read `input` now.
    pub fn is_held(&self, input: usize) -> bool {
        self.mode == CheckpointingMode::ExactlyOnce
            && self
                .pending
                .first()
                .is_some_and(|p| p.arrived.get(input).copied().unwrap_or(false))
    }

    /// Checkpoints abandoned since the last call, for the task to decline.
    pub fn take_abandoned(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.abandoned)
    }

    /// Barrier `barrier` arrived on `input` at `now`.
    pub fn on_barrier(&mut self, input: usize, barrier: Barrier, now: Instant) -> AlignAction {
        if barrier.id <= self.last {
            return AlignAction::Continue;
        }
        let at = match self.pending.iter().position(|p| p.barrier.id >= barrier.id) {
            Some(i) if self.pending[i].barrier.id == barrier.id => i,
            Some(i) => {
                // Older than one being aligned: its checkpoint was overtaken.
                if self.mode == CheckpointingMode::ExactlyOnce {
                    return AlignAction::Continue;
                }
                self.insert(i, barrier, now)
            }
            None => {
                if self.mode == CheckpointingMode::ExactlyOnce {
                    // A newer checkpoint reached an input that had not yet
                    // brought the older one: the older cannot complete.
                    let older: Vec<u64> = self.pending.drain(..).map(|p| p.barrier.id).collect();
                    self.abandoned.extend(older);
                }
                let i = self.pending.len();
                self.insert(i, barrier, now)
            }
        };
        if let Some(a) = self.pending[at].arrived.get_mut(input) {
            *a = true;
        }
        self.check_complete(now)
    }

    /// `input` ended at `now`.
    pub fn on_end_of_input(&mut self, input: usize, now: Instant) -> AlignAction {
        if let Some(e) = self.ended.get_mut(input) {
            *e = true;
        }
        self.check_complete(now)
    }

    fn insert(&mut self, at: usize, barrier: Barrier, now: Instant) -> usize {
        self.pending.insert(
            at,
            Pending {
                barrier,
                first: now,
                arrived: vec![false; self.inputs],
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
        AlignAction::Snapshot {
            barrier: p.barrier,
            alignment: now.saturating_duration_since(p.first),
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
}
