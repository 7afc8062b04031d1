//! `rate` on any source: caps the records per second of a source (over all
//! its subtasks) by wrapping each subtask's reader. It stays on schedule
//! (no catching up past the rate, no drift), makes batches of about a
//! millisecond's records (so that no record waits long in the source for
//! the rest of its batch: a burst of 1/20 s of records ahead of it was
//! queueing time that `weir bench latency` measured as the job's),
//! and sleeps at most [`SLICE`] per read, returning nothing when the next
//! record is not due: the source loop then answers barriers and notices
//! idleness even at a rate of one record a second.

use std::time::{Duration, Instant};

use weir_wire::BatchBuilder;

use super::{BatchInfo, BatchLimit, SourceError, SourceReader};

/// The longest a rate-limited source sleeps in one read.
pub const SLICE: Duration = Duration::from_millis(20);

/// A reader held to a rate.
pub struct RateLimited {
    inner: Box<dyn SourceReader>,
    /// Records per second for this subtask.
    per_second: f64,
    started: Option<Instant>,
    emitted: u64,
}

impl RateLimited {
    /// `inner`, subtask `subtask`'s share of `rate` records per second over
    /// `parallelism` subtasks.
    pub fn new(inner: Box<dyn SourceReader>, rate: u64, parallelism: u32) -> Self {
        RateLimited {
            inner,
            per_second: (rate.max(1) as f64) / f64::from(parallelism.max(1)),
            started: None,
            emitted: 0,
        }
    }
}

impl SourceReader for RateLimited {
    fn next_batch(
        &mut self,
        out: &mut BatchBuilder,
        limit: BatchLimit,
    ) -> Result<BatchInfo, SourceError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let max = BatchLimit {
            records: limit
                .records
                .min(((self.per_second / 1000.0) as usize).max(1)),
            ..limit
        };
        let due = Duration::from_secs_f64(self.emitted as f64 / self.per_second);
        if due > started.elapsed() {
            std::thread::sleep(due.saturating_sub(started.elapsed()).min(SLICE));
            if due > started.elapsed() {
                return Ok(BatchInfo {
                    more: true,
                    max_timestamp: None,
                });
            }
        }
        let before = out.len();
        let info = self.inner.next_batch(out, max)?;
        self.emitted += out.len().saturating_sub(before) as u64;
        Ok(info)
    }

    fn snapshot_position(&self) -> Vec<Vec<u8>> {
        self.inner.snapshot_position()
    }

    fn snapshot_taken(&mut self, id: u64) {
        self.inner.snapshot_taken(id);
    }

    fn notify_checkpoint_complete(&mut self, id: u64) {
        self.inner.notify_checkpoint_complete(id);
    }

    fn metrics(&self) -> crate::metrics::NamedMetrics {
        self.inner.metrics()
    }
}
