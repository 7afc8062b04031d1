//! The checkpoints in progress and the decisions about them, with no I/O:
//! when to trigger the next one, which tasks have acknowledged, which have
//! expired, how many failed in a row, and which are subsumed by a newer
//! completed one. The [`super::coordinator`] feeds it facts (the time,
//! acknowledgements, failures) and acts on its answers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::metadata::SubtaskState;
use crate::config::CheckpointConfig;

/// One checkpoint in progress.
#[derive(Debug)]
pub struct Pending {
    /// When it was triggered.
    pub trigger_time: Instant,
    /// When it was triggered (ms since the Unix epoch).
    pub trigger_ts: i64,
    /// The acknowledged subtasks' states, by (node, subtask).
    pub states: HashMap<(usize, u32), SubtaskState>,
    /// Bytes of state acknowledged so far.
    pub size: u64,
    /// Bytes written for it (less than `size` when files were shared).
    pub written: u64,
}

impl Pending {
    /// A checkpoint triggered at `now` (`ts` on the wall clock).
    pub fn new(now: Instant, ts: i64) -> Self {
        Pending {
            trigger_time: now,
            trigger_ts: ts,
            states: HashMap::new(),
            size: 0,
            written: 0,
        }
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// The checkpoint is not pending (expired, failed or unknown): ignored.
    Unknown,
    /// Recorded; other tasks have yet to acknowledge.
    Waiting,
    /// Every task has acknowledged: the checkpoint can complete.
    AllAcknowledged,
}

/// Whether a failed checkpoint is still tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within `tolerable-failed-checkpoints`.
    Tolerated,
    /// More failures in a row than tolerated: the job fails over.
    TooMany {
        /// Failures in a row.
        failed: u32,
        /// The tolerated number.
        tolerable: u32,
    },
}

/// The checkpoints in progress of one job attempt.
#[derive(Debug)]
pub struct PendingCheckpoints {
    /// How many (node, subtask) pairs must acknowledge.
    expected: usize,
    timeout: Duration,
    max_concurrent: u32,
    tolerable: u32,
    interval: Option<Duration>,
    min_pause: Duration,
    pending: BTreeMap<u64, Pending>,
    last_trigger: Instant,
    last_completion: Option<Instant>,
    failures_in_a_row: u32,
}

impl PendingCheckpoints {
    /// Nothing in progress; `expected` tasks acknowledge each checkpoint;
    /// the interval counts from `now`.
    pub fn new(config: &CheckpointConfig, expected: usize, now: Instant) -> Self {
        PendingCheckpoints {
            expected,
            timeout: config.timeout,
            max_concurrent: config.max_concurrent,
            tolerable: config.tolerable_failed,
            interval: config.interval,
            min_pause: config.min_pause,
            pending: BTreeMap::new(),
            last_trigger: now,
            last_completion: None,
            failures_in_a_row: 0,
        }
    }

    /// Whether a checkpoint should be triggered at `now`: the interval has
    /// passed since the last trigger and the min pause since the last
    /// completion, or a user asked (`manual`, which ignores both, like
    /// Flink's); never beyond the concurrent maximum.
    pub fn should_trigger(&self, now: Instant, manual: bool) -> bool {
        let Some(interval) = self.interval else {
            return false;
        };
        let due = now >= self.last_trigger + interval;
        let paused = self
            .last_completion
            .is_some_and(|c| now.saturating_duration_since(c) < self.min_pause);
        (manual || (due && !paused)) && self.pending.len() < self.max_concurrent as usize
    }

    /// Checkpoint `id` starts at `now` (`ts` on the wall clock).
    pub fn start(&mut self, id: u64, now: Instant, ts: i64) {
        self.last_trigger = now;
        self.pending.insert(id, Pending::new(now, ts));
    }

    /// Starts checkpoint `id` with its states already gathered (the final
    /// checkpoint, whose states the tasks sent as they ended).
    pub fn insert(&mut self, id: u64, pending: Pending) {
        self.pending.insert(id, pending);
    }

    /// Whether checkpoint `id` is in progress.
    pub fn contains(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    /// How many are in progress.
    pub fn count(&self) -> usize {
        self.pending.len()
    }

    /// The ids in progress, oldest first.
    pub fn ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// Records subtask `(node, subtask)`'s state for checkpoint `id`.
    pub fn acknowledge(
        &mut self,
        id: u64,
        task: (usize, u32),
        state: SubtaskState,
        size: u64,
        written: u64,
    ) -> Acked {
        let Some(p) = self.pending.get_mut(&id) else {
            return Acked::Unknown;
        };
        p.states.insert(task, state);
        p.size += size;
        p.written += written;
        if p.states.len() == self.expected {
            Acked::AllAcknowledged
        } else {
            Acked::Waiting
        }
    }

    /// The checkpoints not complete within the timeout at `now`.
    pub fn expired(&self, now: Instant) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|(_, p)| self.outlasted(p.trigger_time, now))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Whether a checkpoint triggered at `trigger_time` has outlasted the
    /// timeout at `now` (also one already taken out of progress to
    /// complete).
    pub fn outlasted(&self, trigger_time: Instant, now: Instant) -> bool {
        now.saturating_duration_since(trigger_time) > self.timeout
    }

    /// The timeout, for messages.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The checkpoints in progress that a task ending its input after
    /// checkpoint `last_barrier` never saw: they can no longer complete.
    pub fn lost_after(&self, last_barrier: u64) -> Vec<u64> {
        self.pending
            .range(last_barrier + 1..)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Takes checkpoint `id` out of progress (to complete, fail or abandon
    /// it).
    pub fn remove(&mut self, id: u64) -> Option<Pending> {
        self.pending.remove(&id)
    }

    /// A checkpoint failed (its removal is the caller's): counts it
    /// against the tolerated failures in a row.
    pub fn failed(&mut self) -> Verdict {
        self.failures_in_a_row += 1;
        if self.failures_in_a_row > self.tolerable {
            Verdict::TooMany {
                failed: self.failures_in_a_row,
                tolerable: self.tolerable,
            }
        } else {
            Verdict::Tolerated
        }
    }

    /// Checkpoint `id` completed at `now`: failures in a row start over,
    /// the min pause counts from now, and the older checkpoints still in
    /// progress are subsumed (returned, for the caller to abandon).
    pub fn completed(&mut self, id: u64, now: Instant) -> Vec<u64> {
        self.failures_in_a_row = 0;
        self.last_completion = Some(now);
        self.pending.range(..id).map(|(&i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interval_ms: u64) -> CheckpointConfig {
        CheckpointConfig {
            interval: Some(Duration::from_millis(interval_ms)),
            timeout: Duration::from_millis(500),
            min_pause: Duration::from_millis(200),
            max_concurrent: 2,
            tolerable_failed: 1,
            ..CheckpointConfig::default()
        }
    }

    fn state(subtask: u32) -> SubtaskState {
        SubtaskState::empty(subtask)
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn triggers_honour_interval_min_pause_concurrency_and_manual_requests() {
        let t0 = Instant::now();
        let mut p = PendingCheckpoints::new(&config(100), 2, t0);
        assert!(!p.should_trigger(ms(t0, 99), false), "interval not passed");
        assert!(
            p.should_trigger(ms(t0, 99), true),
            "manual ignores the interval"
        );
        assert!(p.should_trigger(ms(t0, 100), false));
        p.start(1, ms(t0, 100), 0);
        p.start(2, ms(t0, 200), 0);
        assert!(!p.should_trigger(ms(t0, 400), false), "two in progress");
        assert!(!p.should_trigger(ms(t0, 400), true), "manual too");
        p.acknowledge(1, (0, 0), state(0), 1, 1);
        p.acknowledge(1, (1, 0), state(0), 1, 1);
        p.remove(1);
        p.completed(1, ms(t0, 400));
        assert!(
            !p.should_trigger(ms(t0, 500), false),
            "within the min pause"
        );
        assert!(
            p.should_trigger(ms(t0, 500), true),
            "manual ignores the pause"
        );
        assert!(p.should_trigger(ms(t0, 600), false));
        let off = PendingCheckpoints::new(&CheckpointConfig::default(), 1, t0);
        assert!(
            !off.should_trigger(ms(t0, 10_000), true),
            "no interval: off"
        );
    }

    #[test]
    fn a_checkpoint_completes_when_every_task_acknowledged_once() {
        let t0 = Instant::now();
        let mut p = PendingCheckpoints::new(&config(100), 3, t0);
        p.start(5, t0, 42);
        assert_eq!(p.acknowledge(4, (0, 0), state(0), 10, 10), Acked::Unknown);
        assert_eq!(p.acknowledge(5, (0, 0), state(0), 10, 10), Acked::Waiting);
        // The same task again does not count twice.
        assert_eq!(p.acknowledge(5, (0, 0), state(0), 10, 0), Acked::Waiting);
        assert_eq!(p.acknowledge(5, (1, 0), state(0), 5, 5), Acked::Waiting);
        assert_eq!(
            p.acknowledge(5, (1, 1), state(1), 5, 0),
            Acked::AllAcknowledged
        );
        let done = p.remove(5).expect("pending");
        assert_eq!((done.trigger_ts, done.size, done.written), (42, 30, 15));
        assert!(!p.contains(5));
    }

    #[test]
    fn expiry_and_failures_in_a_row() {
        let t0 = Instant::now();
        let mut p = PendingCheckpoints::new(&config(100), 1, t0);
        p.start(1, t0, 0);
        p.start(2, ms(t0, 300), 0);
        assert!(p.expired(ms(t0, 500)).is_empty(), "exactly the timeout");
        assert_eq!(p.expired(ms(t0, 501)), vec![1]);
        assert_eq!(p.expired(ms(t0, 801)), vec![1, 2]);
        assert_eq!(p.failed(), Verdict::Tolerated, "one tolerated");
        p.completed(3, ms(t0, 900));
        assert_eq!(p.failed(), Verdict::Tolerated, "a completion resets");
        assert_eq!(
            p.failed(),
            Verdict::TooMany {
                failed: 2,
                tolerable: 1
            }
        );
    }

    #[test]
    fn completion_subsumes_older_checkpoints_and_ended_tasks_lose_newer_ones() {
        let t0 = Instant::now();
        let mut p = PendingCheckpoints::new(&config(100), 1, t0);
        for id in [3, 4, 5, 6] {
            p.start(id, t0, 0);
        }
        assert_eq!(p.lost_after(4), vec![5, 6]);
        assert_eq!(p.lost_after(6), Vec::<u64>::new());
        p.remove(5);
        assert_eq!(p.completed(5, t0), vec![3, 4]);
        assert_eq!(p.ids(), vec![3, 4, 6]);
    }
}
