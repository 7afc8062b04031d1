//! The dead-letter file of a job: `<weir.dead-letter.dir>/<job-id>.jsonl`,
//! one JSON line per quarantined record (format [`DEAD_LETTER_FORMAT`]).
//!
//! A line is appended and fsynced once, when its record is quarantined,
//! before the record is ever skipped; a job that starts again (after a
//! crash, on a resumed server) reads the file back and skips those records
//! from the start, so a record is quarantined once and every other record
//! sees the same input as in a job whose source never held it. A torn last
//! line (a crash midway through an append) is ignored.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The version of a dead-letter line this code writes (its `v`).
pub const DEAD_LETTER_FORMAT: u32 = 1;

/// One quarantined record, as a line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The format version ([`DEAD_LETTER_FORMAT`]).
    pub v: u32,
    /// The record's fingerprint (xxh3-128 of its input side, key, value
    /// and timestamp), in hex: how the job recognises it.
    pub fingerprint: String,
    /// The operator's uid.
    pub operator: String,
    /// The subtask that failed on it (0-based).
    pub subtask: u32,
    /// `process` or `process-second`.
    pub input: String,
    /// How often it failed in a row.
    pub failures: u32,
    /// The last failure's message.
    pub message: String,
    /// Its key, as text (`key_hex` instead when it is not UTF-8).
    pub key: Option<String>,
    /// Its key in hex, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<String>,
    /// Its value, as text (`value_hex` instead when it is not UTF-8).
    pub value: Option<String>,
    /// Its value in hex, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
    /// Its event time (ms), if it has one.
    pub timestamp: Option<i64>,
    /// The last checkpoint the subtask had passed when it failed (0: none).
    pub checkpoint: u64,
    /// When it was quarantined (ms since the Unix epoch).
    pub time: i64,
}

/// `bytes` as text if they are UTF-8, else in hex: (text, hex).
pub fn text_or_hex(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(t) => (Some(t.to_owned()), None),
        Err(_) => (None, Some(hex::encode(bytes))),
    }
}

/// A job's dead-letter file, open for appending.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: File,
}

fn io(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl DeadLetterFile {
    /// Opens (or creates) the file at `path`; returns it and the records
    /// it already holds.
    pub fn open(path: &Path) -> Result<(Self, Vec<DeadLetter>), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let held = read(path, usize::MAX)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        // A torn last line is ended, so the next line stands alone.
        let torn = std::fs::read(path)
            .map_err(|e| io(path, e))?
            .last()
            .is_some_and(|b| *b != b'\n');
        if torn {
            file.write_all(b"\n").map_err(|e| io(path, e))?;
        }
        let dead = DeadLetterFile {
            path: path.to_path_buf(),
            file,
        };
        Ok((dead, held))
    }

    /// Appends `record` durably.
    pub fn append(&mut self, record: &DeadLetter) -> Result<(), String> {
        let mut line = serde_json::to_vec(record).map_err(|e| io(&self.path, e))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io(&self.path, e))
    }
}

/// The first `limit` records of the dead-letter file at `path` (none if
/// it does not exist); a line that does not parse (torn) is skipped.
pub fn read(path: &Path, limit: usize) -> Result<Vec<DeadLetter>, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path, e)),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| io(path, e))?;
        match serde_json::from_str::<DeadLetter>(&line) {
            Ok(r) if r.v <= DEAD_LETTER_FORMAT => out.push(r),
            Ok(r) => {
                return Err(io(
                    path,
                    format!(
                        "a line of format {}; this Weir reads up to {DEAD_LETTER_FORMAT}",
                        r.v
                    ),
                ));
            }
            Err(_) => tracing::warn!("{}: skipping a line that does not parse", path.display()),
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The dead-letter file of job `job_id` under folder `dir`.
pub fn dead_letter_path(dir: &Path, job_id: &str) -> PathBuf {
    dir.join(format!("{job_id}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in fixture (format 1, with a torn last line) still
    /// reads, and appending continues it.
    #[test]
    fn reads_the_checked_in_format_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("job.jsonl");
        let fixture = include_bytes!("../../tests/fixtures/dead-letters-v1.jsonl");
        std::fs::write(&path, fixture).expect("fixture");
        let (mut file, held) = DeadLetterFile::open(&path).expect("open");
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].value.as_deref(), Some("3000"));
        assert_eq!(held[1].value_hex.as_deref(), Some("ff00"));
        let mut next = held[0].clone();
        next.fingerprint = "00".into();
        file.append(&next).expect("append");
        let all = read(&path, 10).expect("read");
        assert_eq!(all.len(), 3, "the torn line stays alone");
        assert_eq!(all[2].fingerprint, "00");
        assert_eq!(read(&path, 1).expect("read").len(), 1);
    }
}
