//! The crash-safe job store of a server: one record per submitted job in
//! `<data-dir>/jobs/<job-id>/job.json`, written to a temporary file,
//! fsynced and renamed into place, so that after a crash each record is
//! either the old or the new one. A lock file keeps a second server off
//! the same data folder, so a job is never run by two processes.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{JobState, SubmitRequest};
use crate::checkpoint::fs::{StorageError, sync_dir, write_durably};

/// Version of the job record format.
pub const JOB_RECORD_VERSION: u32 = 1;

/// What the store keeps of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// [`JOB_RECORD_VERSION`].
    pub version: u32,
    /// The job id.
    pub id: String,
    /// The request as submitted, with bundle references replaced by ids.
    pub request: SubmitRequest,
    /// When it was submitted (ms since the Unix epoch).
    pub start_time: i64,
    /// Its state. `RUNNING` (and `CANCELLING`) jobs are resumed, or ended,
    /// at the next start.
    pub state: JobState,
    /// When it ended.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// (ms since the Unix epoch, message) of each failure.
    #[serde(default)]
    pub exceptions: Vec<(i64, String)>,
    /// A fingerprint of the request as the client sent it (bundles by
    /// name), so that a retried submission is known after a re-upload
    /// under the name; absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<String>,
}

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data folder.
    #[error("another weir server uses this data folder (its lock file is held)")]
    Locked,
    /// A file could not be read or written.
    #[error("job store: {0}")]
    Io(String),
}

impl From<StorageError> for StoreError {
    fn from(e: StorageError) -> Self {
        StoreError::Io(e.message)
    }
}

/// The job records of one data folder, held under its lock (clones share
/// it).
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
    /// Held for the store's lifetime: the OS lock ends with the process.
    _lock: std::sync::Arc<File>,
}

impl JobStore {
    /// Opens the store in `<data_dir>/jobs`, taking the data folder's lock.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("lock"))
            .map_err(|e| StoreError::Io(format!("lock file: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io(format!("lock file: {e}")));
            }
        }
        Ok(JobStore {
            dir,
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// The folder of job `id`.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Writes `record` durably: after a crash the old or the new one is
    /// there, never a torn one.
    pub fn save(&self, record: &JobRecord) -> Result<(), StoreError> {
        let dir = self.job_dir(&record.id);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Io(e.to_string()))?;
        let tmp = dir.join("job.json.tmp");
        write_durably(&tmp, &bytes)?;
        std::fs::rename(&tmp, dir.join("job.json")).map_err(|e| StoreError::Io(e.to_string()))?;
        sync_dir(&dir)?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Removes the folder of a job that was never accepted.
    pub fn forget(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.job_dir(id));
    }

    /// Every readable record, oldest first. A folder without a record (a
    /// submission that crashed before it was accepted) is removed; an
    /// unreadable record is logged and left for a person to look at.
    pub fn load(&self) -> Vec<JobRecord> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path().join("job.json");
            match std::fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<JobRecord>(&bytes) {
                    Ok(r) if r.version == JOB_RECORD_VERSION => out.push(r),
                    Ok(r) => tracing::error!(
                        "job {}: record version {} is not {JOB_RECORD_VERSION}; skipped",
                        r.id,
                        r.version
                    ),
                    Err(e) => tracing::error!("{}: unreadable job record: {e}", path.display()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(
                        "{}: no job record (submission interrupted); removed",
                        entry.path().display()
                    );
                    let _ = std::fs::remove_dir_all(entry.path());
                }
                Err(e) => tracing::error!("{}: {e}", path.display()),
            }
        }
        out.sort_by_key(|r| r.start_time);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> JobRecord {
        JobRecord {
            version: JOB_RECORD_VERSION,
            id: id.into(),
            request: serde_json::from_str(r#"{"job": {"name": "j"}}"#).expect("request"),
            start_time: 5,
            state: JobState::Running,
            end_time: None,
            exceptions: vec![],
            submitted: None,
        }
    }

    #[test]
    fn records_round_trip_and_half_created_folders_go() {
        let t = tempfile::tempdir().expect("tempdir");
        let store = JobStore::open(t.path()).expect("open");
        let mut r = record("a");
        store.save(&r).expect("save");
        r.state = JobState::Finished;
        store.save(&r).expect("save again");
        std::fs::create_dir_all(t.path().join("jobs/half")).expect("mkdir");
        assert_eq!(store.load(), vec![r]);
        assert!(!t.path().join("jobs/half").exists());
    }

    #[test]
    fn a_second_store_on_the_same_folder_is_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let _first = JobStore::open(t.path()).expect("open");
        assert!(matches!(JobStore::open(t.path()), Err(StoreError::Locked)));
    }

    #[test]
    fn the_v1_fixture_still_reads() {
        let text = include_str!("../../tests/fixtures/job-record-v1.json");
        let r: JobRecord = serde_json::from_str(text).expect("fixture");
        assert_eq!(r.version, 1);
        assert_eq!(r.state, JobState::Running);
        assert!(r.request.allow_non_restored_state);
        assert_eq!(
            r.request.savepoint_path.as_deref(),
            Some("fixture-job/chk-3")
        );
    }
}
