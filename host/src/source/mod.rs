//! Sources: where a job's elements come from.
//!
//! A source subtask fills batches from a [`SourceReader`] and knows its
//! position (the generator index, the file and byte offset, the Kafka
//! offsets), which checkpoints will record. Every source here is
//! replayable from that position.

mod datagen;
mod file;
#[cfg(feature = "kafka")]
mod kafka;
mod rate;

use std::path::Path;

use thiserror::Error;
use weir_wire::BatchBuilder;

pub use datagen::{Datagen, key_number};
pub use file::FileSource;

use crate::spec::{SourceSpec, SourceType};

/// A source that cannot go on.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{0}")]
pub struct SourceError(pub String);

/// What one call to [`SourceReader::next_batch`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Whether more elements may follow.
    pub more: bool,
    /// The largest timestamp in the batch, if any element had one.
    pub max_timestamp: Option<i64>,
}

/// How much one call to [`SourceReader::next_batch`] appends at most:
/// elements and bytes (`weir.batch.size` and `weir.batch.max-bytes`). A
/// single element may pass `bytes`, but a file line longer than it is an
/// error, so that no input can make a source buffer without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    /// Elements.
    pub records: usize,
    /// Bytes of the encoded batch.
    pub bytes: usize,
}

/// Where a source reader appends the records of one read: one batch, or
/// the batches of the subtasks that own their keys (a source whose only
/// output is a hash edge routes its records as it makes them).
pub trait SourceOutput {
    /// Appends one record.
    fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>);
    /// Records appended so far.
    fn len(&self) -> usize;
    /// Bytes appended so far, encoded.
    fn byte_len(&self) -> usize;
    /// Whether no record was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SourceOutput for BatchBuilder {
    fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
        BatchBuilder::push(self, key, value, timestamp);
    }

    fn len(&self) -> usize {
        BatchBuilder::len(self)
    }

    fn byte_len(&self) -> usize {
        BatchBuilder::byte_len(self)
    }
}

/// One subtask's reader of a source.
pub trait SourceReader: Send {
    /// Appends elements to `out` until `limit` is reached (or the input
    /// has none for now).
    fn next_batch(
        &mut self,
        out: &mut dyn SourceOutput,
        limit: BatchLimit,
    ) -> Result<BatchInfo, SourceError>;
    /// The position reached, as operator state for a checkpoint.
    fn snapshot_position(&self) -> Vec<Vec<u8>>;
    /// Checkpoint `id` took the position [`Self::snapshot_position`] just
    /// gave.
    fn snapshot_taken(&mut self, id: u64) {
        let _ = id;
    }
    /// Checkpoint `id` (and every one before it) is complete.
    fn notify_checkpoint_complete(&mut self, id: u64) {
        let _ = id;
    }
    /// Whether the reader is still emitting records that no `rate` holds
    /// back (datagen's `fill-keys`): a rate's schedule starts after them.
    fn before_rate(&self) -> bool {
        false
    }
    /// The reader's own counters and gauges (a Kafka source's consumer
    /// lag and fetch rate), published as the task's operator metrics.
    fn metrics(&self) -> crate::metrics::NamedMetrics {
        crate::metrics::NamedMetrics::default()
    }
}

/// Opens subtask `subtask` of `parallelism` of a source; relative paths
/// resolve against `base_dir`, and files stay beneath `root` if given (a
/// server's files root). `restored` is the operator state of every
/// subtask of the source in the checkpoint restored from, if any.
pub fn open_source(
    spec: &SourceSpec,
    (subtask, parallelism): (u32, u32),
    (base_dir, root): (&Path, Option<&Path>),
    restored: Option<&[Vec<Vec<u8>>]>,
) -> Result<Box<dyn SourceReader>, SourceError> {
    let reader = open_reader(spec, (subtask, parallelism), (base_dir, root), restored)?;
    Ok(match spec.rate {
        Some(rate) => Box::new(rate::RateLimited::new(reader, rate, parallelism)),
        None => reader,
    })
}

/// The reader of [`open_source`], without its rate limit.
fn open_reader(
    spec: &SourceSpec,
    (subtask, parallelism): (u32, u32),
    (base_dir, root): (&Path, Option<&Path>),
    restored: Option<&[Vec<Vec<u8>>]>,
) -> Result<Box<dyn SourceReader>, SourceError> {
    Ok(match spec.source_type {
        SourceType::Datagen => {
            let mut g = Datagen::new(
                spec.count.unwrap_or(0),
                spec.keys.unwrap_or(1000),
                spec.timestamp_step_ms,
                subtask,
                parallelism,
            )
            .sequential_keys(spec.sequential_keys.unwrap_or(false))
            .latency_stamps(spec.latency_stamps.unwrap_or(false))
            .fill_keys(spec.fill_keys.unwrap_or(false));
            if let Some(states) = restored {
                g.restore(states)?;
            }
            Box::new(g)
        }
        SourceType::File => {
            let mut paths: Vec<String> = spec.path.iter().cloned().collect();
            paths.extend(spec.paths.iter().flatten().cloned());
            let mine = paths
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % parallelism == subtask)
                .map(|(_, p)| (p.clone(), base_dir.join(p)))
                .collect();
            let mut f = FileSource::new(mine, spec.format.unwrap_or_default(), root);
            if let Some(states) = restored {
                f.restore(states)?;
            }
            Box::new(f)
        }
        SourceType::Kafka => open_kafka(spec, (subtask, parallelism), restored)?,
    })
}

/// Checks, before a job starts, that source `spec` can read what it names
/// (a Kafka source's topics exist).
pub fn check_ready(spec: &SourceSpec) -> Result<(), SourceError> {
    match (&spec.kafka, spec.source_type) {
        #[cfg(feature = "kafka")]
        (Some(k), SourceType::Kafka) => kafka::check_topics(k),
        #[cfg(not(feature = "kafka"))]
        (_, SourceType::Kafka) => Err(SourceError(
            "this weir was built without Kafka (the `kafka` feature)".into(),
        )),
        _ => Ok(()),
    }
}

/// A Kafka source's reader.
#[cfg(feature = "kafka")]
fn open_kafka(
    spec: &SourceSpec,
    at: (u32, u32),
    restored: Option<&[Vec<Vec<u8>>]>,
) -> Result<Box<dyn SourceReader>, SourceError> {
    let k = spec
        .kafka
        .as_ref()
        .ok_or_else(|| SourceError("a kafka source needs its `kafka` block".into()))?;
    let idle = spec.idle_timeout_ms.map(std::time::Duration::from_millis);
    Ok(Box::new(kafka::KafkaSource::open(k, at, idle, restored)?))
}

/// A Kafka source's reader, in a weir built without Kafka.
#[cfg(not(feature = "kafka"))]
fn open_kafka(
    _: &SourceSpec,
    _: (u32, u32),
    _: Option<&[Vec<Vec<u8>>]>,
) -> Result<Box<dyn SourceReader>, SourceError> {
    Err(SourceError(
        "this weir was built without Kafka (the `kafka` feature)".into(),
    ))
}
