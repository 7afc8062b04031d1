//! Sinks: where a job's elements go. Each writes an element as one line:
//! `key<TAB>value`, or just `value` for an element without a key (bytes
//! that are not UTF-8 are replaced). The `file` sink is exactly-once when
//! checkpoints are on (two-phase commit, see [`file`]).

pub mod file;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;
use weir_wire::BatchReader;

pub use file::FileSink;

use crate::channel::Batch;
use crate::checkpoint::coordinator::CheckpointHub;
use crate::spec::{SinkSpec, SinkType};

/// A sink that cannot write.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{0}")]
pub struct SinkError(pub String);

/// One subtask's writer of a sink.
pub trait SinkWriter: Send {
    /// Writes a batch.
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;
    /// Flushes everything to its destination at the end of input.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// Pre-commits what was written before the barrier of checkpoint `id`
    /// and returns the sink's operator state: what the coordinator commits
    /// once the checkpoint is complete. Sinks without transactions flush.
    fn pre_commit(&mut self, id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        let _ = id;
        self.finish()?;
        Ok(Vec::new())
    }
}

pub(crate) fn write_lines(w: &mut impl Write, batch: &Batch) -> Result<(), SinkError> {
    for e in BatchReader::new(&batch.data) {
        let e = e.map_err(|e| SinkError(e.to_string()))?;
        let r = match e.key {
            Some(k) => writeln!(
                w,
                "{}\t{}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(e.value)
            ),
            None => writeln!(w, "{}", String::from_utf8_lossy(e.value)),
        };
        r.map_err(|e| SinkError(format!("write failed: {e}")))?;
    }
    Ok(())
}

/// Lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl SinkWriter for StdoutSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        write_lines(&mut out, batch)?;
        out.flush().map_err(|e| SinkError(format!("stdout: {e}")))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        std::io::stdout()
            .flush()
            .map_err(|e| SinkError(format!("stdout: {e}")))
    }
}

/// Drops everything.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl SinkWriter for DiscardSink {
    fn write(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The folder of a `file` sink, resolved against `base_dir`.
pub fn sink_folder(spec: &SinkSpec, base_dir: &Path) -> Result<std::path::PathBuf, SinkError> {
    let folder = spec
        .path
        .as_deref()
        .ok_or_else(|| SinkError("a file sink needs `path`".into()))?;
    Ok(base_dir.join(folder))
}

/// Opens subtask `subtask` of a sink; relative paths resolve against
/// `base_dir`. With a checkpoint hub, a `file` sink is transactional and
/// numbers its part files from `first_part`.
pub fn open_sink(
    spec: &SinkSpec,
    subtask: u32,
    base_dir: &Path,
    hub: Option<&Arc<CheckpointHub>>,
    first_part: u64,
) -> Result<Box<dyn SinkWriter>, SinkError> {
    Ok(match spec.sink_type {
        SinkType::Stdout => Box::new(StdoutSink),
        SinkType::Discard => Box::new(DiscardSink),
        SinkType::File => {
            let folder = sink_folder(spec, base_dir)?;
            match hub {
                Some(hub) => Box::new(FileSink::transactional(
                    &folder,
                    subtask,
                    first_part,
                    hub.clone(),
                )?),
                None => Box::new(FileSink::create(&folder, subtask)?),
            }
        }
    })
}
