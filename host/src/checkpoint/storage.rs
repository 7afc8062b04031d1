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
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fs::{StorageError, io_err, sync_dir, write_durably};
use super::layout::{
    CheckpointLayout, METADATA_FILE, METADATA_IN_PROGRESS, checkpoint_folder_name,
    is_job_folder_name, metadata_in, parse_checkpoint_folder, shared_reference,
};
use super::metadata::CheckpointMetadata;
use super::retention::{self, Removal};
use super::shared::SharedFiles;
use crate::config::StorageKind;
use crate::state::incremental::{IncrementalHandle, NativeSnapshot, StateFile, copy_file};

/// Files of the `jobmanager` storage: (checkpoint id, file name) to bytes.
type MemoryFiles = Arc<Mutex<HashMap<(u64, String), Arc<Vec<u8>>>>>;

/// Reads the files of one checkpoint.
pub trait ReadCheckpoint: Send + Sync + std::fmt::Debug {
    /// The file `name` of the checkpoint.
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError>;
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
        let p = self.0.join(name);
        std::fs::read(&p).map_err(|e| io_err(&p, e))
    }

    fn location(&self) -> String {
        self.0.display().to_string()
    }

    fn folder(&self) -> Option<PathBuf> {
        Some(self.0.clone())
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
                let job_dir = dir.join(job_id);
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
            CheckpointStorage::Filesystem { job_dir, .. } => {
                let dir = job_dir.join(checkpoint_folder_name(id));
                std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                let tmp = dir.join(METADATA_IN_PROGRESS);
                write_durably(&tmp, bytes)?;
                let target = metadata_in(&dir);
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
            CheckpointStorage::Filesystem { job_dir, .. } => {
                Arc::new(CheckpointDir(job_dir.join(checkpoint_folder_name(id))))
            }
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
                let dir = job_dir.join(checkpoint_folder_name(id));
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
        let dir = job_dir.join(checkpoint_folder_name(id));
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let mut handle = IncrementalHandle {
            key_group_range: native.range,
            instance: native.instance.clone(),
            entries: native.entries,
            shared: Vec::new(),
            private: Vec::new(),
        };
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
                        file: shared_reference(&name),
                        size,
                        checksum,
                    });
                }
                None => {
                    let name = format!("{stem}.{}", f.local);
                    let dst = dir.join(&name);
                    let (size, checksum) =
                        copy_file(&src, &dst, true).map_err(|e| io_err(&dst, e))?;
                    written += size;
                    handle.private.push(StateFile {
                        local: f.local.clone(),
                        file: name,
                        size,
                        checksum,
                    });
                }
            }
        }
        if uploaded_shared {
            shared.sync()?;
        }
        Ok((handle, written))
    }

    /// Brings the job's folder in line with its retained checkpoints at
    /// start (after a crash or a restart): removes unfinished checkpoint
    /// folders (no `_metadata`), completed ones beyond the newest
    /// `num_retained`, and, when `keep` (a checkpoint of this folder being
    /// restored) is given, every one newer than it; then every shared file
    /// none of the retained ones uses. A `_metadata` that cannot be read is
    /// left alone, and then no shared file is deleted (it may use them).
    pub fn recover(&self, num_retained: u32, keep: Option<u64>) -> Recovered {
        let mut out = Recovered::default();
        let CheckpointStorage::Filesystem { job_dir, shared } = self else {
            return out;
        };
        let mut complete = Vec::new();
        let mut unreadable = false;
        for entry in std::fs::read_dir(job_dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(parse_checkpoint_folder) else {
                continue;
            };
            out.highest_id = out.highest_id.max(id);
            let dir = entry.path();
            let meta = metadata_in(&dir);
            if !meta.is_file() {
                tracing::info!("removing unfinished checkpoint {}", dir.display());
                remove_checkpoint_folder(&dir);
                continue;
            }
            match std::fs::read(&meta)
                .map_err(|e| e.to_string())
                .and_then(|b| CheckpointMetadata::decode(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => complete.push((id, m, dir)),
                Err(e) => {
                    tracing::warn!("{}: {e}; left alone", meta.display());
                    unreadable = true;
                }
            }
        }
        complete.sort_by_key(|c| c.0);
        let ids: Vec<u64> = complete.iter().map(|c| c.0).collect();
        let (_, removed) = retention::on_start(&ids, num_retained, keep);
        for (id, m, dir) in complete {
            match removed.iter().find(|r| r.0 == id) {
                Some((_, Removal::NewerThanRestored)) => {
                    tracing::info!("removing checkpoint {id}, newer than the one restored");
                    remove_checkpoint_folder(&dir);
                }
                Some((_, Removal::BeyondRetained)) => {
                    tracing::info!(
                        "removing checkpoint {} beyond the retained count",
                        dir.display()
                    );
                    remove_checkpoint_folder(&dir);
                }
                None => out.retained.push((m, dir.display().to_string())),
            }
        }
        let metas: Vec<CheckpointMetadata> = out.retained.iter().map(|(m, _)| m.clone()).collect();
        shared.recover(&metas, !unreadable);
        out
    }

    /// `<state.checkpoints.dir>/<job-id>` (filesystem storage).
    pub fn job_dir(&self) -> Option<&Path> {
        match self {
            CheckpointStorage::Filesystem { job_dir, .. } => Some(job_dir),
            CheckpointStorage::Memory { .. } => None,
        }
    }

    /// The shared files of the job (filesystem storage).
    pub fn shared(&self) -> Option<&SharedFiles> {
        match self {
            CheckpointStorage::Filesystem { shared, .. } => Some(shared),
            CheckpointStorage::Memory { .. } => None,
        }
    }
}

/// What [`CheckpointStorage::recover`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The retained checkpoints, oldest first, with their paths.
    pub retained: Vec<(CheckpointMetadata, String)>,
    /// The highest `chk-<n>` id in the folder, readable or not: new
    /// checkpoints must come after it.
    pub highest_id: u64,
}

/// Removes a checkpoint folder, `_metadata` first (made durable), so that
/// no crash leaves a `_metadata` whose files are gone. Shared files are
/// released separately.
fn remove_checkpoint_folder(dir: &Path) {
    let meta = metadata_in(&dir);
    if std::fs::remove_file(&meta).is_ok()
        && let Err(e) = sync_dir(dir)
    {
        tracing::warn!("{e}");
    }
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", dir.display());
    }
}

/// How long a starting job waits for its folder's lock.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The lock a running job holds on its checkpoint folder, released when
/// dropped (or when its process dies).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Locks `job_dir` for this process; `None` if another process holds it.
fn try_lock_folder(job_dir: &Path) -> Result<Option<FolderLock>, StorageError> {
    let p = CheckpointLayout::of_job_dir(job_dir).lock_file();
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| io_err(&p, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(FolderLock { _file: f })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&p, e)),
    }
}

impl CheckpointStorage {
    /// Locks the job's checkpoint folder for the run of the job, so that
    /// no other process writes or sweeps it meanwhile.
    /// A sweep by another starting job holds the lock for a moment, so a
    /// busy lock is tried again for a while before it is an error.
    pub fn lock(&self) -> Result<Option<FolderLock>, StorageError> {
        let Some(job_dir) = self.job_dir() else {
            return Ok(None);
        };
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            if let Some(lock) = try_lock_folder(job_dir)? {
                return Ok(Some(lock));
            }
            if std::time::Instant::now() > deadline {
                return Err(StorageError {
                    path: job_dir.display().to_string(),
                    message:
                        "the checkpoint folder is in use by another process running the same job"
                            .into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Removes what a crash left in another job's checkpoint folder
/// `job_dir` (unfinished checkpoints, shared files no completed checkpoint
/// uses) and keeps all its completed checkpoints; does nothing while a
/// process runs that job.
pub fn sweep_folder(job_dir: &Path) {
    let Ok(Some(_lock)) = try_lock_folder(job_dir) else {
        return;
    };
    let storage = CheckpointStorage::Filesystem {
        job_dir: job_dir.to_path_buf(),
        shared: Arc::new(SharedFiles::new(
            CheckpointLayout::of_job_dir(&job_dir).shared(),
        )),
    };
    storage.recover(u32::MAX, None);
}

/// [`sweep_folder`] for every job folder under `root`
/// (`state.checkpoints.dir`) whose job is not running: what a crash left
/// of a job that is never resumed is removed too.
pub fn sweep_jobs(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let is_job = entry.file_name().to_str().is_some_and(is_job_folder_name);
        if is_job
            && CheckpointLayout::of_job_dir(&entry.path())
                .shared()
                .is_dir()
        {
            sweep_folder(&entry.path());
        }
    }
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
            let id = parse_checkpoint_folder(name.to_str()?)?;
            let p = e.path();
            metadata_in(&p).is_file().then_some((id, p))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{OperatorSnapshot, SubtaskState};
    use crate::state::incremental::{IncrementalHandle, StateFile};

    /// A checkpoint `id` whose one subtask uses the shared files `names`.
    fn checkpoint(storage: &CheckpointStorage, id: u64, names: &[&str]) {
        let shared = names
            .iter()
            .map(|n| StateFile {
                local: "1.sst".into(),
                file: shared_reference(&n),
                size: 1,
                checksum: String::new(),
            })
            .collect();
        let m = CheckpointMetadata {
            job_id: "job".into(),
            job_name: "job".into(),
            checkpoint_id: id,
            kind: "checkpoint".into(),
            trigger_timestamp: 0,
            completed_timestamp: 0,
            duration_ms: 0.0,
            state_size: 0,
            checkpointed_size: 0,
            max_parallelism: 128,
            mode: "EXACTLY_ONCE".into(),
            backend: "rocksdb".into(),
            is_final: false,
            operators: vec![OperatorSnapshot {
                uid: "op".into(),
                node: "op".into(),
                parallelism: 1,
                subtasks: vec![SubtaskState {
                    subtask: 0,
                    keyed: None,
                    incremental: Some(IncrementalHandle {
                        key_group_range: (0, 127),
                        instance: "i".into(),
                        entries: 1,
                        shared,
                        private: Vec::new(),
                    }),
                    operator_state: Vec::new(),
                    sync_ms: 0.0,
                    async_ms: 0.0,
                    alignment_ms: 0.0,
                }],
            }],
        };
        let bytes = m.encode().expect("encode");
        storage.write_metadata(id, &bytes).expect("write");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn recovery_keeps_what_retained_checkpoints_use_and_ids_move_past_every_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            CheckpointStorage::new(StorageKind::Filesystem, dir.path(), "job").expect("storage");
        let job = dir.path().join("job");
        for f in ["a.sst", "b.sst", "c.sst", "orphan.sst"] {
            std::fs::write(job.join("shared").join(f), b"x").expect("write");
        }
        checkpoint(&storage, 3, &["a.sst"]);
        checkpoint(&storage, 4, &["a.sst", "b.sst"]);
        checkpoint(&storage, 5, &["c.sst", "../../outside"]);
        std::fs::write(dir.path().join("outside"), b"keep me").expect("write");
        std::fs::create_dir_all(job.join("chk-6")).expect("unfinished");
        // Restoring chk-4 of this folder: chk-5 is newer and goes, chk-3 is
        // beyond num-retained 1, the unfinished chk-6 goes; shared files
        // only the gone ones used are deleted; the hostile name is never
        // followed out of shared/.
        let r = storage.recover(1, Some(4));
        assert_eq!(r.highest_id, 6, "new ids start after every folder");
        let ids: Vec<u64> = r.retained.iter().map(|(m, _)| m.checkpoint_id).collect();
        assert_eq!(ids, vec![4]);
        assert_eq!(names(&job), vec!["chk-4", "shared", "taskowned"]);
        assert_eq!(names(&job.join("shared")), vec!["a.sst", "b.sst"]);
        assert!(dir.path().join("outside").exists());
        // A _metadata that cannot be read may use any shared file: none is
        // deleted while it is there.
        std::fs::write(job.join("shared").join("orphan.sst"), b"x").expect("write");
        std::fs::create_dir_all(job.join("chk-9")).expect("mkdir");
        std::fs::write(job.join("chk-9").join("_metadata"), b"garbage").expect("write");
        let r = storage.recover(1, None);
        assert_eq!(r.highest_id, 9);
        assert!(job.join("shared").join("orphan.sst").exists());
        assert!(job.join("chk-9").exists(), "left alone");
    }
}
