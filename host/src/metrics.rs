//! Counters each task updates and the progress reporter reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Live counters of one subtask.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    backpressure_ns: AtomicU64,
    busy_ns: AtomicU64,
    first_record: OnceLock<Instant>,
    /// The guest's own counters and gauges, as last published.
    guest: Mutex<GuestMetrics>,
    /// A sink's latencies in microseconds (`measure-latency`), once it
    /// recorded one.
    latency: Mutex<Option<Latencies>>,
}

/// The latencies a sink recorded, and when it recorded the first and the
/// last of them.
#[derive(Debug, Clone)]
struct Latencies {
    histogram: Histogram<u64>,
    first: Instant,
    last: Instant,
}

/// The counters and gauges a guest declared, with their values.
#[derive(Debug, Default, Clone)]
struct GuestMetrics {
    counters: Vec<(String, u64)>,
    gauges: Vec<(String, f64)>,
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

    /// Publishes the guest's own counters and gauges, for reporters.
    pub fn publish_guest(&self, counters: &[(String, u64)], gauges: &[(String, f64)]) {
        let mut g = self.guest.lock().unwrap_or_else(|p| p.into_inner());
        g.counters.clear();
        g.counters.extend_from_slice(counters);
        g.gauges.clear();
        g.gauges.extend_from_slice(gauges);
    }

    /// The guest's counters as last published.
    pub fn guest_counters(&self) -> Vec<(String, u64)> {
        let g = self.guest.lock().unwrap_or_else(|p| p.into_inner());
        g.counters.clone()
    }

    /// The guest's gauges as last published.
    pub fn guest_gauges(&self) -> Vec<(String, f64)> {
        let g = self.guest.lock().unwrap_or_else(|p| p.into_inner());
        g.gauges.clone()
    }

    /// Records the latencies (microseconds) of one batch's elements.
    pub fn record_latencies(&self, mut micros: impl Iterator<Item = u64>) {
        let Some(first) = micros.next() else {
            return;
        };
        let now = Instant::now();
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let l = l.get_or_insert_with(|| Latencies {
            histogram: new_latency_histogram(),
            first: now,
            last: now,
        });
        l.last = now;
        for us in std::iter::once(first).chain(micros) {
            l.histogram.saturating_record(us);
        }
    }

    /// The latencies recorded so far, if any.
    pub fn latency(&self) -> Option<Histogram<u64>> {
        self.latencies().map(|l| l.histogram)
    }

    fn latencies(&self) -> Option<Latencies> {
        let l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        l.clone()
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

/// Counters and gauges a task publishes beside its own: a guest's, or a
/// source reader's (a Kafka consumer's lag), by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedMetrics {
    /// Counters, by name.
    pub counters: Vec<(String, u64)>,
    /// Gauges, by name.
    pub gauges: Vec<(String, f64)>,
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

/// A histogram of latencies from 1 µs to an hour, to three significant
/// digits (HdrHistogram: about 0.1% error at any magnitude).
fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds")
}

/// The figures of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Elements measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Seconds from the first batch measured to the last (over all the
    /// tasks merged): `count` over it is the measured records' throughput.
    #[serde(default)]
    pub seconds: f64,
}

impl LatencySummary {
    /// The figures of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            seconds: 0.0,
        }
    }

    /// The figures of the latencies of `tasks` together (None if none
    /// recorded any).
    pub fn merged<'a>(tasks: impl IntoIterator<Item = &'a TaskMetrics>) -> Option<Self> {
        let mut all: Option<Latencies> = None;
        for l in tasks.into_iter().filter_map(TaskMetrics::latencies) {
            match all.as_mut() {
                Some(a) => {
                    // Both have the same bounds, so adding cannot fail.
                    let _ = a.histogram.add(&l.histogram);
                    a.first = a.first.min(l.first);
                    a.last = a.last.max(l.last);
                }
                None => all = Some(l),
            }
        }
        all.map(|l| LatencySummary {
            seconds: l.last.saturating_duration_since(l.first).as_secs_f64(),
            ..Self::of(&l.histogram)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_window_runs_from_the_first_measured_batch_to_the_last() {
        let (a, b) = (TaskMetrics::default(), TaskMetrics::default());
        // A batch with nothing to measure (a fill) opens no window.
        a.record_latencies(std::iter::empty());
        assert!(LatencySummary::merged([&a, &b]).is_none());
        a.record_latencies([10, 20].into_iter());
        std::thread::sleep(Duration::from_millis(30));
        b.record_latencies([30].into_iter());
        let one = LatencySummary::merged([&a]).expect("measured");
        assert_eq!((one.count, one.seconds), (2, 0.0));
        let both = LatencySummary::merged([&a, &b]).expect("measured");
        assert_eq!(both.count, 3);
        assert!(both.seconds >= 0.03, "{}", both.seconds);
    }
}
