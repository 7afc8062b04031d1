//! `measure-latency` on any sink: each element's arrival minus its
//! timestamp, read as wall-clock microseconds (what a datagen source with
//! `latency-stamps` writes), recorded in the subtask's metrics. The sink
//! behind it sees every call unchanged.

use std::sync::Arc;

use weir_wire::BatchReader;

use super::{SinkError, SinkWriter};
use crate::channel::Batch;
use crate::metrics::TaskMetrics;

/// A sink writer that measures latency before it writes.
pub struct LatencyProbe {
    inner: Box<dyn SinkWriter>,
    metrics: Arc<TaskMetrics>,
}

impl LatencyProbe {
    /// `inner`, measured into `metrics`.
    pub fn new(inner: Box<dyn SinkWriter>, metrics: Arc<TaskMetrics>) -> Self {
        LatencyProbe { inner, metrics }
    }
}

impl SinkWriter for LatencyProbe {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // One clock reading per batch: its elements arrived together.
        let now = crate::clock::epoch_micros();
        let latencies = BatchReader::new(&batch.data)
            .filter_map(|e| e.ok()?.timestamp)
            .map(|stamp| u64::try_from(now.saturating_sub(stamp)).unwrap_or(0));
        self.metrics.record_latencies(latencies);
        self.inner.write(batch)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.inner.finish()
    }

    fn pre_commit(&mut self, id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        self.inner.pre_commit(id)
    }

    fn notify_checkpoint_complete(&mut self, id: u64) {
        self.inner.notify_checkpoint_complete(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::DiscardSink;
    use weir_wire::BatchBuilder;

    #[test]
    fn latencies_are_arrival_minus_the_microsecond_stamps() {
        let metrics = Arc::new(TaskMetrics::default());
        let mut probe = LatencyProbe::new(Box::new(DiscardSink), metrics.clone());
        let now = crate::clock::epoch_micros();
        let mut b = BatchBuilder::default();
        b.push(Some(b"k"), b"v", Some(now - 2_000));
        b.push(Some(b"k"), b"v", Some(now - 50_000));
        b.push(Some(b"k"), b"v", None);
        let (data, len) = b.take();
        probe.write(&Batch { data, len }).expect("write");
        let h = metrics.latency().expect("recorded");
        assert_eq!(h.len(), 2, "an element without a timestamp is not measured");
        // However long the write took, both waited as long past their
        // stamps, which lie 48 ms apart (HdrHistogram: 3 digits).
        assert!(h.min() >= 2_000, "{}", h.min());
        let apart = h.max() - h.min();
        assert!((47_800..=48_200).contains(&apart), "{apart}");
    }
}
