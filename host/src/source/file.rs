//! `file`: the lines of one or more files, read in order, tracking the
//! file and byte offset reached.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use weir_wire::BatchBuilder;

use super::{BatchInfo, SourceError, SourceReader};
use crate::spec::FileFormat;

/// The files of one subtask.
#[derive(Debug)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    format: FileFormat,
    current: usize,
    reader: Option<BufReader<File>>,
    /// Byte offset in the current file.
    offset: u64,
    line_no: u64,
    line: Vec<u8>,
}

impl FileSource {
    /// A reader of `paths`, one after the other.
    pub fn new(paths: Vec<PathBuf>, format: FileFormat) -> Self {
        FileSource {
            paths,
            format,
            current: 0,
            reader: None,
            offset: 0,
            line_no: 0,
            line: Vec::new(),
        }
    }

    /// The file index and byte offset reached.
    pub fn position(&self) -> (usize, u64) {
        (self.current, self.offset)
    }

    fn err(&self, msg: impl std::fmt::Display) -> SourceError {
        let path = self
            .paths
            .get(self.current)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        SourceError(format!("{path}:{}: {msg}", self.line_no))
    }
}

impl SourceReader for FileSource {
    fn next_batch(&mut self, out: &mut BatchBuilder, max: usize) -> Result<BatchInfo, SourceError> {
        let mut max_timestamp: Option<i64> = None;
        let mut n = 0;
        while n < max {
            if self.current >= self.paths.len() {
                return Ok(BatchInfo {
                    more: false,
                    max_timestamp,
                });
            }
            if self.reader.is_none() {
                let path = &self.paths[self.current];
                let f = File::open(path)
                    .map_err(|e| SourceError(format!("cannot open {}: {e}", path.display())))?;
                self.reader = Some(BufReader::with_capacity(256 * 1024, f));
                self.offset = 0;
                self.line_no = 0;
            }
            self.line.clear();
            let read = match self.reader.as_mut() {
                Some(r) => r
                    .read_until(b'\n', &mut self.line)
                    .map_err(|e| self.err(e))?,
                None => 0,
            };
            if read == 0 {
                self.reader = None;
                self.current += 1;
                continue;
            }
            self.offset += read as u64;
            self.line_no += 1;
            let mut line = self.line.as_slice();
            if let Some(l) = line.strip_suffix(b"\n") {
                line = l;
            }
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            match self.format {
                FileFormat::Lines => out.push(None, line, None),
                FileFormat::Csv => {
                    if line.is_empty() {
                        continue;
                    }
                    let mut parts = line.splitn(3, |&b| b == b',');
                    let (Some(ts), Some(key), Some(value)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(self.err("expected `timestamp,key,value`"));
                    };
                    let ts: i64 = std::str::from_utf8(ts)
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .ok_or_else(|| {
                            self.err("the timestamp is not a whole number of milliseconds")
                        })?;
                    max_timestamp = Some(max_timestamp.map_or(ts, |m| m.max(ts)));
                    out.push(Some(key), value, Some(ts));
                }
            }
            n += 1;
        }
        Ok(BatchInfo {
            more: true,
            max_timestamp,
        })
    }
}
