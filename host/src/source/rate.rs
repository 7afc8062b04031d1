//! `rate` on any source: caps the records per second of a source (over all
//! its subtasks) by wrapping each subtask's reader. It stays on schedule
//! (no catching up past the rate, no drift), makes batches of about a
//! millisecond's records while on schedule (so that no record waits long
//! in the source for the rest of its batch: a burst of 1/20 s of records
//! ahead of it was queueing time that `weir bench latency` measured as the
//! job's) and of what is owed when behind it (backpressured: full
//! batches),
//! and sleeps at most [`SLICE`] per read, returning nothing when the next
//! record is not due: the source loop then answers barriers and notices
//! idleness even at a rate of one record a second.

use std::time::{Duration, Instant};

use super::{BatchInfo, BatchLimit, SourceError, SourceOutput, SourceReader};

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
        out: &mut dyn SourceOutput,
        limit: BatchLimit,
    ) -> Result<BatchInfo, SourceError> {
        if self.inner.before_rate() {
            return self.inner.next_batch(out, limit);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        // A millisecond's records on schedule; behind it (a backpressured
        // source), what is owed, so batches are as full as before.
        let owed = (started.elapsed().as_secs_f64() * self.per_second) as u64;
        let per_read = owed
            .saturating_sub(self.emitted)
            .max((self.per_second / 1000.0) as u64)
            .max(1);
        let max = BatchLimit {
            records: limit
                .records
                .min(usize::try_from(per_read).unwrap_or(usize::MAX)),
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

    fn before_rate(&self) -> bool {
        self.inner.before_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::datagen::Datagen;
    use weir_wire::BatchBuilder;

    fn read(r: &mut RateLimited) -> usize {
        let mut b = BatchBuilder::default();
        let limit = BatchLimit {
            records: 1024,
            bytes: 1 << 20,
        };
        r.next_batch(&mut b, limit).expect("read");
        b.len()
    }

    #[test]
    fn on_schedule_it_reads_a_millisecond_and_behind_it_what_is_owed() {
        let source = Datagen::new(1_000_000, 10, None, 0, 1);
        let mut r = RateLimited::new(Box::new(source), 10_000, 1);
        // The first read: a millisecond's records at 10,000/s, ten (more
        // only if this thread stalled between starting and reading).
        let first = read(&mut r);
        assert!((10..=100).contains(&first), "{first}");
        // Fallen 50 ms behind (as a backpressured source does): at least
        // the 490 records owed come in one read, up to the batch limit.
        std::thread::sleep(Duration::from_millis(50));
        let n = read(&mut r);
        assert!((490..=1024).contains(&n), "{n}");
    }

    #[test]
    fn the_fill_of_keys_is_not_held_to_the_rate() {
        let source = Datagen::new(1_000_000, 5_000, None, 0, 1).fill_keys(true);
        let mut r = RateLimited::new(Box::new(source), 10, 1);
        // At ten records a second, 5,000 would take 500 s; the fill comes
        // in full batches at once, and the schedule starts after it.
        let filled: usize = (0..5).map(|_| read(&mut r)).sum();
        assert_eq!(filled, 5_000);
        assert_eq!(read(&mut r), 1);
    }
}
