//! Sinks: where a job's elements go. Each writes an element as one line:
//! `key<TAB>value`, or just `value` for an element without a key (bytes
//! that are not UTF-8 are replaced).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use thiserror::Error;
use weir_wire::BatchReader;

use crate::channel::Batch;
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
}

fn write_lines(w: &mut impl Write, batch: &Batch) -> Result<(), SinkError> {
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

/// Lines in `<folder>/part-<subtask>`.
#[derive(Debug)]
pub struct FileSink {
    out: BufWriter<File>,
    path: String,
}

impl FileSink {
    /// Creates (or truncates) the part file of `subtask` in `folder`.
    pub fn create(folder: &Path, subtask: u32) -> Result<Self, SinkError> {
        std::fs::create_dir_all(folder)
            .map_err(|e| SinkError(format!("cannot create {}: {e}", folder.display())))?;
        let path = folder.join(format!("part-{subtask}"));
        let f = File::create(&path)
            .map_err(|e| SinkError(format!("cannot create {}: {e}", path.display())))?;
        Ok(FileSink {
            out: BufWriter::with_capacity(256 * 1024, f),
            path: path.display().to_string(),
        })
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        write_lines(&mut self.out, batch)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| SinkError(format!("{}: {e}", self.path)))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| SinkError(format!("{}: {e}", self.path)))
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

/// Opens subtask `subtask` of a sink; relative paths resolve against `base_dir`.
pub fn open_sink(
    spec: &SinkSpec,
    subtask: u32,
    base_dir: &Path,
) -> Result<Box<dyn SinkWriter>, SinkError> {
    Ok(match spec.sink_type {
        SinkType::Stdout => Box::new(StdoutSink),
        SinkType::Discard => Box::new(DiscardSink),
        SinkType::File => {
            let folder = spec
                .path
                .as_deref()
                .ok_or_else(|| SinkError("a file sink needs `path`".into()))?;
            Box::new(FileSink::create(&base_dir.join(folder), subtask)?)
        }
    })
}
