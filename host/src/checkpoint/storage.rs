//! Where checkpoint files go: `filesystem` (Flink's layout under
//! `state.checkpoints.dir`, a local folder or an `s3://` location, see
//! [`super::object`]) or `jobmanager` (memory, for in-process restarts and
//! tests).
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

use super::fs::{StorageError, io_err};
use super::layout::{
    CheckpointLayout, METADATA_FILE, METADATA_IN_PROGRESS, SHARED_DIR, TASKOWNED_DIR,
    checkpoint_folder_name, shared_reference,
};
use super::object::{ObjectCheckpoint, ObjectJob};
use super::shared::{SharedDir, SharedFiles};
use crate::config::{ObjectUri, S3Config, StorageKind};
use crate::confined::Folder;
use crate::state::incremental::{IncrementalHandle, NativeSnapshot, StateFile};

/// Files of the `jobmanager` storage: (checkpoint id, file name) to bytes.
type MemoryFiles = Arc<Mutex<HashMap<(u64, String), Arc<Vec<u8>>>>>;

pub use super::reader::{CheckpointDir, ReadCheckpoint};

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
    /// Files under `<dir>/<job-id>/`, every one named relative to a
    /// handle on that folder.
    Filesystem {
        /// `<state.checkpoints.dir>/<job-id>`.
        job_dir: PathBuf,
        /// The folder, open.
        root: Arc<Folder>,
        /// Its `shared/` folder.
        shared: Arc<SharedFiles>,
    },
    /// Keys under `s3://<bucket>/<prefix>/<job-id>/`, laid out as on
    /// disk.
    Object {
        /// The bucket and the job's key.
        job: ObjectJob,
        /// Its `shared/` keys.
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
    /// `state.checkpoints.dir` (a folder or an `s3://` location, reached
    /// with the settings `s3`).
    pub fn new(
        kind: StorageKind,
        dir: &Path,
        job_id: &str,
        s3: &S3Config,
    ) -> Result<Self, StorageError> {
        if kind == StorageKind::Filesystem
            && let Some(uri) = ObjectUri::of(dir)
        {
            let storage = Self::in_bucket(&uri.join(job_id), s3)?;
            if let CheckpointStorage::Object { job, .. } = &storage {
                job.claim()?;
            }
            return Ok(storage);
        }
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
                Self::on_disk(CheckpointLayout::new(&dir, job_id).job_dir())?
            }
        })
    }

    /// Filesystem storage of job folder `job_dir` (created, with its
    /// `shared/` and `taskowned/` folders, if missing).
    pub fn on_disk(job_dir: &Path) -> Result<Self, StorageError> {
        let root = Folder::open(job_dir, None).map_err(|e| io_err(job_dir, e))?;
        let _ = root
            .sub(TASKOWNED_DIR, true)
            .map_err(|e| io_err(&root.shown(TASKOWNED_DIR), e))?;
        let shared = root
            .sub(SHARED_DIR, true)
            .map_err(|e| io_err(&root.shown(SHARED_DIR), e))?;
        Ok(CheckpointStorage::Filesystem {
            job_dir: job_dir.to_path_buf(),
            root: Arc::new(root),
            shared: Arc::new(SharedFiles::new(SharedDir::Local(shared))),
        })
    }

    /// Object storage of the job at `job` (nothing is created: keys need
    /// no folders); a missing bucket or refused credentials fail here.
    pub fn in_bucket(job: &ObjectUri, s3: &S3Config) -> Result<Self, StorageError> {
        let bucket = crate::objectstore::open_bucket(job, s3).map_err(super::fs::object_err)?;
        let job = ObjectJob {
            bucket,
            key: job.key.clone(),
        };
        let shared = SharedDir::Object {
            bucket: job.bucket.clone(),
            prefix: job.shared_key(),
        };
        Ok(CheckpointStorage::Object {
            job,
            shared: Arc::new(SharedFiles::new(shared)),
        })
    }

    /// The folder of checkpoint `id` (created if missing) in job folder
    /// `root`.
    fn checkpoint_folder(root: &Folder, id: u64) -> Result<Folder, StorageError> {
        let name = checkpoint_folder_name(id);
        root.sub(&name, true)
            .map_err(|e| io_err(&root.shown(&name), e))
    }

    /// Where checkpoint `id` is (its external path).
    pub fn location(&self, id: u64) -> String {
        match self {
            CheckpointStorage::Filesystem { job_dir, .. } => job_dir
                .join(checkpoint_folder_name(id))
                .display()
                .to_string(),
            CheckpointStorage::Object { job, .. } => job.bucket.uri(&job.checkpoint_key(id)),
            CheckpointStorage::Memory { .. } => {
                format!("jobmanager://{}", checkpoint_folder_name(id))
            }
        }
    }

    /// Writes file `name` of checkpoint `id` and makes it durable.
    pub fn write(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            CheckpointStorage::Filesystem { root, .. } => {
                let dir = Self::checkpoint_folder(root, id)?;
                dir.write_durably(name, bytes)
                    .map_err(|e| io_err(&dir.shown(name), e))
            }
            CheckpointStorage::Object { job, .. } => job.write(id, name, bytes),
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
            CheckpointStorage::Filesystem { root, .. } => {
                let dir = Self::checkpoint_folder(root, id)?;
                dir.write_durably(METADATA_IN_PROGRESS, bytes)
                    .map_err(|e| io_err(&dir.shown(METADATA_IN_PROGRESS), e))?;
                dir.rename(METADATA_IN_PROGRESS, &dir, METADATA_FILE)
                    .map_err(|e| io_err(&dir.shown(METADATA_FILE), e))?;
                dir.sync().map_err(|e| io_err(dir.path(), e))?;
                Ok(dir.path().display().to_string())
            }
            CheckpointStorage::Object { job, .. } => job.write_metadata(id, bytes),
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
            CheckpointStorage::Object { job, .. } => Arc::new(ObjectCheckpoint::new(
                job.bucket.clone(),
                job.checkpoint_key(id),
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
            CheckpointStorage::Filesystem { root, shared, .. } => {
                // `_metadata` first, durably: a crash after it leaves an
                // unfinished folder and unused shared files, both removed at
                // the next start, never a checkpoint that names deleted
                // files.
                super::recovery::remove_checkpoint_folder(root, &checkpoint_folder_name(id), || {
                    shared.release(id);
                })
            }
            CheckpointStorage::Object { job, shared } => job.discard(id, || {
                shared.release(id);
            }),
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
            CheckpointStorage::Object { job, .. } => job
                .bucket
                .delete_all(&job.key)
                .map(drop)
                .map_err(super::fs::object_err),
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
        let (shared, dir) = match self {
            CheckpointStorage::Filesystem { root, shared, .. } => {
                (shared, Some(Self::checkpoint_folder(root, id)?))
            }
            CheckpointStorage::Object { shared, .. } => (shared, None),
            CheckpointStorage::Memory { .. } => {
                return Err(StorageError {
                    path: self.location(id),
                    message:
                        "incremental checkpoints need execution.checkpointing.storage: filesystem"
                            .into(),
                });
            }
        };
        let src = native
            .open_folder()
            .map_err(|e| io_err(&native.folder, e))?;
        let mut handle = native.empty_handle();
        let mut written = 0;
        let mut uploaded_shared = false;
        for f in &native.files {
            match &f.shared {
                Some(name) => {
                    let (size, checksum) = match shared.reference(id, name) {
                        Some(known) => known,
                        None => {
                            let up = shared.upload(id, name, &src, &f.local)?;
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
                    let file = match (&dir, self) {
                        (Some(dir), _) => native
                            .copy_private(&src, &f.local, dir, stem)
                            .map_err(|(dst, e)| io_err(&dst, e))?,
                        (None, CheckpointStorage::Object { job, .. }) => {
                            job.upload_private(id, stem, &src, &f.local)?
                        }
                        (None, _) => unreachable!("only object storage has no folder"),
                    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_files_are_written_through_the_job_folders_handle() {
        let dir = tempfile::tempdir().expect("dir");
        let outside = tempfile::tempdir().expect("outside");
        let storage = CheckpointStorage::new(
            StorageKind::Filesystem,
            dir.path(),
            "job",
            &Default::default(),
        )
        .expect("storage");
        let job = dir.path().join("job");
        storage.write(1, "a.keyed", b"one").expect("write");
        storage.write_metadata(1, b"{}").expect("metadata");
        // A link planted where the next checkpoint's folder goes is not
        // followed out of the job folder: that checkpoint fails.
        std::os::unix::fs::symlink(outside.path(), job.join("chk-2")).expect("link");
        assert!(storage.write(2, "a.keyed", b"two").is_err());
        // The job folder swapped for a link after the storage opened it:
        // writes still go to the folder it opened.
        std::fs::rename(&job, dir.path().join("moved")).expect("move");
        std::os::unix::fs::symlink(outside.path(), &job).expect("link");
        storage.write(3, "a.keyed", b"three").expect("write");
        assert!(dir.path().join("moved/chk-3/a.keyed").is_file());
        storage.discard(1).expect("discard");
        assert!(!dir.path().join("moved/chk-1").exists());
        assert_eq!(std::fs::read_dir(outside.path()).expect("dir").count(), 0);
    }
}
