//! `file`: the lines of one or more files, read in order, tracking the
//! file and byte offset reached.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{BatchInfo, BatchLimit, SourceError, SourceOutput, SourceReader};
use crate::spec::FileFormat;

/// The checkpointed position in one file. Every subtask's positions are
/// given to every subtask on restore (union redistribution), and each takes
/// those of the files it reads, so a restore at another parallelism works.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FilePosition {
    /// The path as the spec names it.
    path: String,
    /// Bytes already read.
    offset: u64,
    /// Lines already read.
    line: u64,
    /// The whole file has been read.
    done: bool,
}

/// The files of one subtask.
#[derive(Debug)]
pub struct FileSource {
    /// The paths as the spec names them (the checkpoint's keys).
    names: Vec<String>,
    /// Where to start in each file: (byte offset, line number, done).
    starts: Vec<(u64, u64, bool)>,
    paths: Vec<PathBuf>,
    format: FileFormat,
    current: usize,
    reader: Option<BufReader<File>>,
    /// Byte offset in the current file.
    offset: u64,
    line_no: u64,
    line: Vec<u8>,
    /// The folder the files must stay beneath (a server's files root).
    root: Option<PathBuf>,
}

/// Opens `path` for reading: beneath `root` through a `cap-std` handle if
/// given (a link or `..` that leaves it is refused), else as it is.
fn open_file(path: &Path, root: Option<&Path>) -> std::io::Result<File> {
    let Some(root) = root else {
        return File::open(path);
    };
    let inside = path
        .strip_prefix(root)
        .map_err(|_| std::io::Error::other("it lies outside the files root"))?;
    cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority())?
        .open(inside)
        .map(cap_std::fs::File::into_std)
}

impl FileSource {
    /// A reader of `files` (the name in the spec, the resolved path), one
    /// after the other.
    pub fn new(files: Vec<(String, PathBuf)>, format: FileFormat, root: Option<&Path>) -> Self {
        let (names, paths): (Vec<String>, Vec<PathBuf>) = files.into_iter().unzip();
        FileSource {
            starts: vec![(0, 0, false); names.len()],
            names,
            paths,
            format,
            current: 0,
            reader: None,
            offset: 0,
            line_no: 0,
            line: Vec::new(),
            root: root.map(Path::to_path_buf),
        }
    }

    /// Continues from the positions in `states` (every old subtask's).
    pub fn restore(&mut self, states: &[Vec<Vec<u8>>]) -> Result<(), SourceError> {
        for item in states.iter().flatten() {
            let p: FilePosition = serde_json::from_slice(item).map_err(|e| {
                SourceError(format!("file source: unreadable checkpoint position: {e}"))
            })?;
            if let Some(i) = self.names.iter().position(|n| *n == p.path) {
                self.starts[i] = (p.offset, p.line, p.done);
            }
        }
        Ok(())
    }

    /// Opens the current file at its position; false if it was read to
    /// its end before (a restored position).
    fn open_current(&mut self) -> Result<bool, SourceError> {
        let (start, line, done) = self.starts[self.current];
        if done {
            return Ok(false);
        }
        let path = &self.paths[self.current];
        let mut f = open_file(path, self.root.as_deref())
            .map_err(|e| SourceError(format!("cannot open {}: {e}", path.display())))?;
        if start > 0 {
            f.seek(SeekFrom::Start(start))
                .map_err(|e| SourceError(format!("cannot seek in {}: {e}", path.display())))?;
        }
        self.reader = Some(BufReader::with_capacity(256 * 1024, f));
        self.offset = start;
        self.line_no = line;
        Ok(true)
    }

    /// Reads the next line of the current file into `self.line`; the bytes
    /// read (0 at its end). A line longer than `most` bytes is refused
    /// after reading one byte past it, never buffered whole.
    fn read_line(&mut self, most: usize) -> Result<usize, SourceError> {
        self.line.clear();
        let cap = most as u64 + 1;
        let read = match self.reader.as_mut() {
            Some(r) => r
                .take(cap)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| self.err(e))?,
            None => 0,
        };
        if read as u64 == cap && !self.line.ends_with(b"\n") {
            self.line_no += 1;
            return Err(self.err(format!(
                "a line longer than weir.batch.max-bytes ({most} bytes)"
            )));
        }
        Ok(read)
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
    fn snapshot_position(&self) -> Vec<Vec<u8>> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (offset, line, done) = if i < self.current {
                    (0, 0, true)
                } else if i == self.current && self.reader.is_some() {
                    (self.offset, self.line_no, false)
                } else {
                    self.starts[i]
                };
                FilePosition {
                    path: name.clone(),
                    offset,
                    line,
                    done,
                }
            })
            .filter_map(|p| serde_json::to_vec(&p).ok())
            .collect()
    }

    fn next_batch(
        &mut self,
        out: &mut dyn SourceOutput,
        limit: BatchLimit,
    ) -> Result<BatchInfo, SourceError> {
        let mut max_timestamp: Option<i64> = None;
        let mut n = 0;
        while n < limit.records && out.byte_len() < limit.bytes {
            if self.current >= self.paths.len() {
                return Ok(BatchInfo {
                    more: false,
                    max_timestamp,
                });
            }
            if self.reader.is_none() && !self.open_current()? {
                self.current += 1;
                continue;
            }
            let read = self.read_line(limit.bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_wire::BatchBuilder;

    #[test]
    fn batches_are_cut_by_bytes_and_a_line_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let line = "x".repeat(100);
        let text = format!("{line}\n{line}\n{line}\n{}\n", "y".repeat(1000));
        let path = dir.path().join("in.txt");
        std::fs::write(&path, text).expect("write");
        let mut source = FileSource::new(vec![("in.txt".into(), path)], FileFormat::Lines, None);
        let limit = BatchLimit {
            records: 1000,
            bytes: 250,
        };
        let mut out = BatchBuilder::with_capacity(1024);
        let info = source.next_batch(&mut out, limit).expect("first batch");
        assert!(info.more);
        // 105 bytes an element: cut once past 250 bytes, not at 1000.
        assert_eq!(out.len(), 3);
        let mut out = BatchBuilder::with_capacity(1024);
        let err = source
            .next_batch(&mut out, limit)
            .expect_err("the long line");
        assert!(
            err.0
                .contains("longer than weir.batch.max-bytes (250 bytes)"),
            "{err}"
        );
        assert!(err.0.contains("in.txt:4"), "{err}");
    }

    #[test]
    fn beneath_a_root_a_link_that_leaves_it_is_not_followed() {
        let root = tempfile::tempdir().expect("root");
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), "secret").expect("write");
        std::fs::write(root.path().join("in.txt"), "a").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link"))
            .expect("link");
        assert!(open_file(&root.path().join("in.txt"), Some(root.path())).is_ok());
        assert!(open_file(&root.path().join("link"), Some(root.path())).is_err());
        assert!(open_file(&outside.path().join("secret"), Some(root.path())).is_err());
        // Without a root (weir run), a path is taken as it is.
        assert!(open_file(&root.path().join("link"), None).is_ok());
    }
}
