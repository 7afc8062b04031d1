//! Where checkpoint files go: `filesystem` (Flink's layout under
//! `state.checkpoints.dir`) or `jobmanager` (memory, for in-process
//! restarts and tests).
//!
//! ```text
//! <state.checkpoints.dir>/<job-id>/chk-<n>/_metadata
//! <state.checkpoints.dir>/<job-id>/chk-<n>/<node>-<uid>-<subtask>.keyed
//! <state.checkpoints.dir>/<job-id>/chk-<n>/<node>-<uid>-<subtask>.<file>   (incremental: RocksDB's MANIFEST, CURRENT, OPTIONS)
//! <state.checkpoints.dir>/<job-id>/shared/<instance>-<n>.sst          (incremental: SST files, see [`super::shared`])
//! <state.checkpoints.dir>/<job-id>/taskowned/
//! <state.checkpoints.dir>/<job-id>/.lock     (held by the process running the job)
//! ```
//!
//! A checkpoint folder without `_metadata` is incomplete and never read;
//! a starting job removes it ([`CheckpointStorage::recover`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fs::{StorageError, io_err, sync_dir, write_durably};
use super::layout::{
    CheckpointLayout, METADATA_FILE, METADATA_IN_PROGRESS, checkpoint_folder_name, metadata_in,
    shared_reference,
};
use super::shared::SharedFiles;
use crate::config::StorageKind;
use crate::state::incremental::{IncrementalHandle, NativeSnapshot, StateFile};

/// Files of the `jobmanager` storage: (checkpoint id, file name) to bytes.
type MemoryFiles = Arc<Mutex<HashMap<(u64, String), Arc<Vec<u8>>>>>;

/// Reads the files of one checkpoint.
pub trait ReadCheckpoint: Send + Sync + std::fmt::Debug {
    /// The file `name` of the checkpoint.
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError>;
    /// The file `name`, which `_metadata` says holds `size` bytes: refused
    /// without reading it if it holds more, so a damaged `_metadata`
    /// cannot make a restore read without bound.
    fn read_sized(&self, name: &str, size: u64) -> Result<Vec<u8>, StorageError> {
        let bytes = self.read(name)?;
        if bytes.len() as u64 != size {
            return Err(StorageError {
                path: format!("{}/{name}", self.location()),
                message: format!(
                    "{} bytes, but _metadata says {size} (the file is damaged)",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
    /// Where it is, for messages (`<dir>/<job>/chk-<n>`).
    fn location(&self) -> String;
    /// The folder on disk, if it is on disk (incremental handles name
    /// files relative to it).
    fn folder(&self) -> Option<PathBuf> {
        None
    }
}

/// A checkpoint folder on disk.
#[derive(Debug, Clone)]
pub struct CheckpointDir(pub PathBuf);

impl ReadCheckpoint for CheckpointDir {
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        use std::io::Read;
        let (p, f, _) = self.open_regular(name)?;
        let mut bytes = Vec::new();
        (&f).read_to_end(&mut bytes).map_err(|e| io_err(&p, e))?;
        Ok(bytes)
    }

    fn read_sized(&self, name: &str, size: u64) -> Result<Vec<u8>, StorageError> {
        use std::io::Read;
        let (p, f, len) = self.open_regular(name)?;
        if len != size {
            return Err(StorageError {
                path: p.display().to_string(),
                message: format!("{len} bytes, but _metadata says {size} (the file is damaged)"),
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        f.take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(&p, e))?;
        Ok(bytes)
    }

    fn location(&self) -> String {
        self.0.display().to_string()
    }

    fn folder(&self) -> Option<PathBuf> {
        Some(self.0.clone())
    }
}

impl CheckpointDir {
    /// Opens file `name` of the folder for reading: a plain name, opened
    /// through a `cap-std` handle on the folder (so never a path out of
    /// it), without blocking (a FIFO), and only if what was opened is a
    /// regular file (never a link, a folder or a device); its path, the
    /// open file and its size.
    fn open_regular(&self, name: &str) -> Result<(PathBuf, std::fs::File, u64), StorageError> {
        use cap_std::fs::OpenOptionsExt;
        let p = self.0.join(name);
        if !crate::state::incremental::is_plain_name(name) {
            return Err(StorageError {
                path: self.0.display().to_string(),
                message: format!("{name:?} is not a file name of the checkpoint folder"),
            });
        }
        let not_regular = || StorageError {
            path: p.display().to_string(),
            message: "not a regular file (a link, a folder or a device)".into(),
        };
        // A link is refused before anything is opened.
        let meta = std::fs::symlink_metadata(&p).map_err(|e| io_err(&p, e))?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        let dir = cap_std::fs::Dir::open_ambient_dir(&self.0, cap_std::ambient_authority())
            .map_err(|e| io_err(&self.0, e))?;
        let mut options = cap_std::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let f = dir
            .open_with(name, &options)
            .map_err(|e| io_err(&p, e))?
            .into_std();
        // What was opened, not what the name meant a moment before.
        let meta = f.metadata().map_err(|e| io_err(&p, e))?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        Ok((p, f, meta.len()))
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
        /// Its `shared/` folder.
        shared: Arc<SharedFiles>,
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
                let job_dir = CheckpointLayout::new(&dir, job_id).job_dir().to_path_buf();
                let layout = CheckpointLayout::of_job_dir(&job_dir);
                for p in [layout.shared(), layout.taskowned()] {
                    std::fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
                }
                let shared = Arc::new(SharedFiles::new(
                    CheckpointLayout::of_job_dir(&job_dir).shared(),
                ));
                CheckpointStorage::Filesystem { job_dir, shared }
            }
        })
    }

    /// Where checkpoint `id` is (its external path).
    pub fn location(&self, id: u64) -> String {
        match self {
            CheckpointStorage::Filesystem { job_dir, .. } => job_dir
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
            CheckpointStorage::Filesystem { job_dir, .. } => {
                let dir = CheckpointLayout::of_job_dir(job_dir).checkpoint(id);
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
            CheckpointStorage::Filesystem { job_dir, .. } => {
                let layout = CheckpointLayout::of_job_dir(job_dir);
                let dir = layout.checkpoint(id);
                std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                let tmp = dir.join(METADATA_IN_PROGRESS);
                write_durably(&tmp, bytes)?;
                let target = layout.metadata(id);
                std::fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
                sync_dir(&dir)?;
                Ok(dir.display().to_string())
            }
            CheckpointStorage::Memory { .. } => {
                self.write(id, METADATA_FILE, bytes)?;
                Ok(self.location(id))
            }
        }
    }

    /// A reader of checkpoint `id`.
    pub fn reader(&self, id: u64) -> Arc<dyn ReadCheckpoint> {
        match self {
            CheckpointStorage::Filesystem { job_dir, .. } => Arc::new(CheckpointDir(
                CheckpointLayout::of_job_dir(job_dir).checkpoint(id),
            )),
            CheckpointStorage::Memory { files } => Arc::new(MemoryCheckpoint {
                id,
                files: files.clone(),
            }),
        }
    }

    /// Deletes checkpoint `id` (subsumed or aborted), and the shared files
    /// only it used.
    pub fn discard(&self, id: u64) -> Result<(), StorageError> {
        match self {
            CheckpointStorage::Filesystem { job_dir, shared } => {
                // `_metadata` first, durably: a crash after it leaves an
                // unfinished folder and unused shared files, both removed at
                // the next start, never a checkpoint that names deleted
                // files.
                let dir = CheckpointLayout::of_job_dir(job_dir).checkpoint(id);
                let meta = metadata_in(&dir);
                match std::fs::remove_file(&meta) {
                    Ok(()) => sync_dir(&dir)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&meta, e)),
                }
                shared.release(id);
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
            CheckpointStorage::Filesystem { job_dir, .. } => match std::fs::remove_dir_all(job_dir)
            {
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

impl CheckpointStorage {
    /// Uploads the files of a subtask's native snapshot for checkpoint
    /// `id`: SST files not yet in `shared/` go there, those already there
    /// are referenced, the others go into the checkpoint's folder as
    /// `<stem>.<name>`. Returns the handle and the bytes written.
    pub fn write_incremental(
        &self,
        id: u64,
        stem: &str,
        native: &NativeSnapshot,
    ) -> Result<(IncrementalHandle, u64), StorageError> {
        let CheckpointStorage::Filesystem { job_dir, shared } = self else {
            return Err(StorageError {
                path: self.location(id),
                message: "incremental checkpoints need execution.checkpointing.storage: filesystem"
                    .into(),
            });
        };
        let dir = CheckpointLayout::of_job_dir(job_dir).checkpoint(id);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let mut handle = native.empty_handle();
        let mut written = 0;
        let mut uploaded_shared = false;
        for f in &native.files {
            let src = native.folder.join(&f.local);
            match &f.shared {
                Some(name) => {
                    let (size, checksum) = match shared.reference(id, name) {
                        Some(known) => known,
                        None => {
                            let up = shared.upload(id, name, &src)?;
                            written += up.0;
                            uploaded_shared = true;
                            up
                        }
                    };
                    handle.shared.push(StateFile {
                        local: f.local.clone(),
                        file: shared_reference(name),
                        size,
                        checksum,
                    });
                }
                None => {
                    let file = native
                        .copy_private(&f.local, &dir, stem)
                        .map_err(|(dst, e)| io_err(&dst, e))?;
                    written += file.size;
                    handle.private.push(file);
                }
            }
        }
        if uploaded_shared {
            shared.sync()?;
        }
        Ok((handle, written))
    }
}

/// A fresh job id: 32 random hex digits, like Flink's.
pub fn new_job_id() -> String {
    random_hex(16)
}

/// `n` (at most 16) random bytes in hex: the job ids, and the random part
/// of savepoint folder names.
pub fn random_hex(n: usize) -> String {
    let mut bytes = [0u8; 16];
    let bytes = &mut bytes[..n.min(16)];
    if getrandom::fill(bytes).is_err() {
        // No system randomness: the time and the process still make the id
        // unique on this machine.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
        bytes.copy_from_slice(&seed[..bytes.len()]);
    }
    hex::encode(bytes)
}
