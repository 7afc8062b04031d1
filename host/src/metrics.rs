//! Counters each task updates and the progress reporter reads.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Live counters of one subtask.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    backpressure_ns: AtomicU64,
    busy_ns: AtomicU64,
    first_record: OnceLock<Instant>,
}

impl TaskMetrics {
    /// Counts elements received.
    pub fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts elements emitted.
    pub fn add_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts time spent waiting on a full output channel.
    pub fn add_backpressure(&self, d: Duration) {
        self.backpressure_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts time spent processing (not waiting for input or output).
    pub fn add_busy(&self, d: Duration) {
        self.busy_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Notes that a record reached this task (the first time counts).
    pub fn mark_first_record(&self) {
        if self.first_record.get().is_none() {
            let _ = self.first_record.set(Instant::now());
        }
    }

    /// When the first record reached this task.
    pub fn first_record(&self) -> Option<Instant> {
        self.first_record.get().copied()
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            backpressure: Duration::from_nanos(self.backpressure_ns.load(Ordering::Relaxed)),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
        }
    }
}

/// A copy of a task's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Elements received.
    pub records_in: u64,
    /// Elements emitted.
    pub records_out: u64,
    /// Time spent waiting on full output channels.
    pub backpressure: Duration,
    /// Time spent processing.
    pub busy: Duration,
}

impl std::ops::AddAssign for MetricsSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.records_in += o.records_in;
        self.records_out += o.records_out;
        self.backpressure += o.backpressure;
        self.busy += o.busy;
    }
}
