//! Where checkpoint files go: `filesystem` (Flink's layout under
//! `state.checkpoints.dir`) or `jobmanager` (memory, for in-process
//! restarts and tests).
//!
//! ```text
//! <state.checkpoints.dir>/<job-id>/chk-<n>/_metadata
//! <state.checkpoints.dir>/<job-id>/chk-<n>/<node>-<uid>-<subtask>.keyed
//! <state.checkpoints.dir>/<job-id>/shared/      (incremental checkpoints, later)
//! <state.checkpoints.dir>/<job-id>/taskowned/
//! ```
//!
//! A checkpoint folder without `_metadata` is incomplete and never read.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::StorageKind;

/// A checkpoint file that cannot be written or read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{path}: {message}")]
pub struct StorageError {
    /// The file or folder.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

fn io_err(path: &Path, e: std::io::Error) -> StorageError {
    StorageError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The name of checkpoint `id`'s folder.
pub fn checkpoint_folder_name(id: u64) -> String {
    format!("chk-{id}")
}

/// Files of the `jobmanager` storage: (checkpoint id, file name) to bytes.
type MemoryFiles = Arc<Mutex<HashMap<(u64, String), Arc<Vec<u8>>>>>;

/// Reads the files of one checkpoint.
pub trait ReadCheckpoint: Send + Sync + std::fmt::Debug {
    /// The file `name` of the checkpoint.
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError>;
    /// Where it is, for messages (`<dir>/<job>/chk-<n>`).
    fn location(&self) -> String;
}

/// A checkpoint folder on disk.
#[derive(Debug, Clone)]
pub struct CheckpointDir(pub PathBuf);

impl ReadCheckpoint for CheckpointDir {
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let p = self.0.join(name);
        std::fs::read(&p).map_err(|e| io_err(&p, e))
    }

    fn location(&self) -> String {
        self.0.display().to_string()
    }
}

/// A checkpoint held in memory by the `jobmanager` storage.
#[derive(Debug, Clone)]
pub struct MemoryCheckpoint {
    id: u64,
    files: MemoryFiles,
}

impl ReadCheckpoint for MemoryCheckpoint {
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files
            .get(&(self.id, name.to_owned()))
            .map(|b| b.as_ref().clone())
            .ok_or_else(|| StorageError {
                path: format!("{}/{name}", self.location()),
                message: "no such file".into(),
            })
    }

    fn location(&self) -> String {
        format!("jobmanager://{}", checkpoint_folder_name(self.id))
    }
}

/// The checkpoint storage of one job.
#[derive(Debug, Clone)]
pub enum CheckpointStorage {
    /// Files under `<dir>/<job-id>/`.
    Filesystem {
        /// `<state.checkpoints.dir>/<job-id>`.
        job_dir: PathBuf,
    },
    /// Memory of this process.
    Memory {
        /// (checkpoint id, file name) to bytes.
        files: MemoryFiles,
    },
}

impl CheckpointStorage {
    /// Storage for job `job_id` of the given kind; `dir` is
    /// `state.checkpoints.dir`.
    pub fn new(kind: StorageKind, dir: &Path, job_id: &str) -> Result<Self, StorageError> {
        Ok(match kind {
            StorageKind::JobManager => CheckpointStorage::Memory {
                files: Arc::default(),
            },
            StorageKind::Filesystem => {
                let dir = if dir.is_absolute() {
                    dir.to_path_buf()
                } else {
                    std::env::current_dir()
                        .map_err(|e| io_err(dir, e))?
                        .join(dir)
                };
                // `a/./b` reads as `a/b` in the paths the job prints.
                let dir: PathBuf = dir
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                let job_dir = dir.join(job_id);
                for sub in ["shared", "taskowned"] {
                    let p = job_dir.join(sub);
                    std::fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
                }
                CheckpointStorage::Filesystem { job_dir }
            }
        })
    }

    /// Where checkpoint `id` is (its external path).
    pub fn location(&self, id: u64) -> String {
        match self {
            CheckpointStorage::Filesystem { job_dir } => job_dir
                .join(checkpoint_folder_name(id))
                .display()
                .to_string(),
            CheckpointStorage::Memory { .. } => {
                format!("jobmanager://{}", checkpoint_folder_name(id))
            }
        }
    }

    /// Writes file `name` of checkpoint `id` and makes it durable.
    pub fn write(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            CheckpointStorage::Filesystem { job_dir } => {
                let dir = job_dir.join(checkpoint_folder_name(id));
                std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                let p = dir.join(name);
                write_durably(&p, bytes)
            }
            CheckpointStorage::Memory { files } => {
                let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
                files.insert((id, name.to_owned()), Arc::new(bytes.to_vec()));
                Ok(())
            }
        }
    }

    /// Writes `_metadata` of checkpoint `id` atomically: a temporary file,
    /// fsync, rename, fsync of the folder. Returns the external path.
    pub fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<String, StorageError> {
        match self {
            CheckpointStorage::Filesystem { job_dir } => {
                let dir = job_dir.join(checkpoint_folder_name(id));
                std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                let tmp = dir.join("_metadata.inprogress");
                write_durably(&tmp, bytes)?;
                let target = dir.join("_metadata");
                std::fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
                sync_dir(&dir)?;
                Ok(dir.display().to_string())
            }
            CheckpointStorage::Memory { .. } => {
                self.write(id, "_metadata", bytes)?;
                Ok(self.location(id))
            }
        }
    }

    /// A reader of checkpoint `id`.
    pub fn reader(&self, id: u64) -> Arc<dyn ReadCheckpoint> {
        match self {
            CheckpointStorage::Filesystem { job_dir } => {
                Arc::new(CheckpointDir(job_dir.join(checkpoint_folder_name(id))))
            }
            CheckpointStorage::Memory { files } => Arc::new(MemoryCheckpoint {
                id,
                files: files.clone(),
            }),
        }
    }

    /// Deletes checkpoint `id` (subsumed or aborted).
    pub fn discard(&self, id: u64) -> Result<(), StorageError> {
        match self {
            CheckpointStorage::Filesystem { job_dir } => {
                let dir = job_dir.join(checkpoint_folder_name(id));
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err(&dir, e)),
                }
            }
            CheckpointStorage::Memory { files } => {
                let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
                files.retain(|(c, _), _| *c != id);
                Ok(())
            }
        }
    }

    /// Deletes every checkpoint of the job (retention on cancel or finish).
    pub fn discard_all(&self) -> Result<(), StorageError> {
        match self {
            CheckpointStorage::Filesystem { job_dir } => match std::fs::remove_dir_all(job_dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(job_dir, e)),
            },
            CheckpointStorage::Memory { files } => {
                files.lock().unwrap_or_else(|p| p.into_inner()).clear();
                Ok(())
            }
        }
    }
}

/// Writes a file and fsyncs it.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut f = File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Fsyncs a folder, so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// The completed checkpoints in a job folder (those with `_metadata`),
/// newest first.
pub fn completed_in(job_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(job_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let id = name.to_str()?.strip_prefix("chk-")?.parse().ok()?;
            let p = e.path();
            p.join("_metadata").is_file().then_some((id, p))
        })
        .collect();
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    found
}

/// A fresh job id: 32 hex digits, like Flink's.
pub fn new_job_id() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos}-{}-{:p}", std::process::id(), &nanos);
    let a = xxhash_rust::xxh3::xxh3_64(seed.as_bytes());
    let b = xxhash_rust::xxh3::xxh3_64_with_seed(seed.as_bytes(), a);
    format!("{a:016x}{b:016x}")
}
