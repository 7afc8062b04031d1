//! What a starting job does with its checkpoint folder: locks it for the
//! run, removes what a crash left (unfinished checkpoints, checkpoints
//! beyond the retained number, shared files no retained checkpoint uses)
//! and finds the retained checkpoints; and the same sweep of other job
//! folders nobody holds.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::fs::{StorageError, io_err, object_err};
use super::layout::{
    CheckpointLayout, METADATA_FILE, STOPPED_FILE, is_job_folder_name, metadata_in,
    parse_checkpoint_folder,
};
use super::metadata::CheckpointMetadata;
use super::object::{OWNER_FILE, ObjectJob};
use super::retention::{self, Removal};
use super::shared::SharedFiles;
use super::storage::CheckpointStorage;
use crate::config::{ObjectUri, S3Config};
use crate::confined::Folder;
use crate::objectstore::ObjectError;

impl CheckpointStorage {
    /// Brings the job's folder in line with its retained checkpoints at
    /// start (after a crash or a restart): removes unfinished checkpoint
    /// folders (no `_metadata`), completed ones beyond the newest
    /// `num_retained`, and, when `keep` (a checkpoint of this folder being
    /// restored) is given, every one newer than it; then every shared file
    /// none of the retained ones uses. A `_metadata` that cannot be read is
    /// left alone, and then no shared file is deleted (it may use them).
    pub fn recover(&self, num_retained: u32, keep: Option<u64>) -> Recovered {
        let mut out = Recovered::default();
        let (job_dir, root, shared) = match self {
            CheckpointStorage::Filesystem {
                job_dir,
                root,
                shared,
            } => (job_dir, root, shared),
            CheckpointStorage::Object { job, shared } => {
                return recover_object(job, shared, num_retained, keep);
            }
            CheckpointStorage::Memory { .. } => return out,
        };
        super::savepoint::sweep_in_progress(job_dir);
        let mut complete = Vec::new();
        let mut unreadable = false;
        for name in root.names().unwrap_or_default() {
            let Some(id) = parse_checkpoint_folder(&name) else {
                continue;
            };
            out.highest_id = out.highest_id.max(id);
            let dir = root.shown(&name);
            let meta = metadata_in(&dir);
            if !meta.is_file() {
                tracing::info!("removing unfinished checkpoint {}", dir.display());
                warn_on_error(remove_checkpoint_folder(root, &name, || {}));
                continue;
            }
            match super::fs::read_metadata_file(&meta)
                .map_err(|e| e.to_string())
                .and_then(|b| CheckpointMetadata::decode(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => complete.push((id, m, name)),
                Err(e) => {
                    tracing::warn!("{}: {e}; left alone", meta.display());
                    unreadable = true;
                }
            }
        }
        complete.sort_by_key(|c| c.0);
        let ids: Vec<u64> = complete.iter().map(|c| c.0).collect();
        let (_, removed) = retention::on_start(&ids, num_retained, keep);
        for (id, m, name) in complete {
            let dir = root.shown(&name);
            match removed.iter().find(|r| r.0 == id) {
                Some((_, Removal::NewerThanRestored)) => {
                    tracing::info!("removing checkpoint {id}, newer than the one restored");
                    warn_on_error(remove_checkpoint_folder(root, &name, || {}));
                }
                Some((_, Removal::BeyondRetained)) => {
                    tracing::info!(
                        "removing checkpoint {} beyond the retained count",
                        dir.display()
                    );
                    warn_on_error(remove_checkpoint_folder(root, &name, || {}));
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
            CheckpointStorage::Object { .. } | CheckpointStorage::Memory { .. } => None,
        }
    }

    /// `<state.checkpoints.dir>/<job-id>`, open (filesystem storage).
    pub fn job_folder(&self) -> Option<&std::sync::Arc<Folder>> {
        match self {
            CheckpointStorage::Filesystem { root, .. } => Some(root),
            CheckpointStorage::Object { .. } | CheckpointStorage::Memory { .. } => None,
        }
    }

    /// Records in the job's folder that it stopped with the savepoint at
    /// `path` ([`STOPPED_FILE`]; nothing for memory storage).
    pub fn mark_stopped(&self, path: &str) -> Result<(), StorageError> {
        match self {
            CheckpointStorage::Filesystem { root, job_dir, .. } => root
                .write_durably(STOPPED_FILE, path.as_bytes())
                .map_err(|e| io_err(&job_dir.join(STOPPED_FILE), e)),
            CheckpointStorage::Object { job, .. } => job
                .bucket
                .put(
                    &format!("{}/{STOPPED_FILE}", job.key),
                    path.as_bytes().to_vec(),
                )
                .map_err(object_err),
            CheckpointStorage::Memory { .. } => Ok(()),
        }
    }
}

/// The completed checkpoints of job folder `job_dir`, newest first: as
/// [`completed_in`] on disk, and in a bucket for an `s3://` one (reached
/// with the settings `s3`).
pub fn completed_at(job_dir: &Path, s3: &S3Config) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let Some(uri) = ObjectUri::of(job_dir) else {
        return Ok(completed_in(job_dir));
    };
    let bucket = crate::objectstore::open_bucket(&uri, s3).map_err(object_err)?;
    let folder = format!("{}/", uri.key);
    let mut found: Vec<(u64, PathBuf)> = bucket
        .list(&uri.key)
        .map_err(object_err)?
        .into_iter()
        .filter_map(|o| {
            let name = o
                .key
                .strip_prefix(&folder)?
                .strip_suffix(&format!("/{METADATA_FILE}"))?;
            Some((parse_checkpoint_folder(name)?, uri.join(name).to_path()))
        })
        .collect();
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    Ok(found)
}

/// The savepoint a stop recorded in job folder `job_dir` (see
/// [`STOPPED_FILE`]), on disk or in a bucket; `None` if there is none, an
/// error if the folder cannot be read.
pub fn stopped_marker_at(job_dir: &Path, s3: &S3Config) -> Result<Option<String>, StorageError> {
    let bytes = match ObjectUri::of(job_dir) {
        None => {
            let file = job_dir.join(STOPPED_FILE);
            match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&file, e)),
            }
        }
        Some(uri) => {
            let bucket = crate::objectstore::open_bucket(&uri, s3).map_err(object_err)?;
            match bucket.get(&uri.join(STOPPED_FILE).key, 64 << 10) {
                Ok(b) => b,
                Err(ObjectError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(object_err(e)),
            }
        }
    };
    Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
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

/// Removes checkpoint folder `name` of job folder `root`, `_metadata`
/// first (made durable), so that no crash leaves a `_metadata` whose files
/// are gone; `between` runs once `_metadata` is gone (it releases the
/// checkpoint's shared files). A folder already gone is no error.
pub(super) fn remove_checkpoint_folder(
    root: &Folder,
    name: &str,
    between: impl FnOnce(),
) -> Result<(), StorageError> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    match root.sub(name, false) {
        Ok(dir) => match dir.remove_file(METADATA_FILE) {
            Ok(()) => dir.sync().map_err(|e| io_err(dir.path(), e))?,
            Err(e) if gone(&e) => {}
            Err(e) => return Err(io_err(&dir.shown(METADATA_FILE), e)),
        },
        Err(e) if gone(&e) => {}
        Err(e) => return Err(io_err(&root.shown(name), e)),
    }
    between();
    match root.remove_dir_all(name) {
        Err(e) if !gone(&e) => Err(io_err(&root.shown(name), e)),
        _ => Ok(()),
    }
}

/// Logs the error of a removal a starting job can do without.
fn warn_on_error(r: Result<(), StorageError>) {
    if let Err(e) = r {
        tracing::warn!("cannot remove {e}");
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
    match CheckpointStorage::on_disk(job_dir) {
        Ok(storage) => {
            storage.recover(u32::MAX, None);
        }
        Err(e) => tracing::warn!("cannot sweep {e}"),
    }
}

/// Whether a process (this one included) holds job folder `job_dir`: its
/// job is running.
pub fn is_held(job_dir: &Path) -> bool {
    matches!(try_lock_folder(job_dir), Ok(None))
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

/// What a starting job does with its checkpoints in a bucket, as
/// [`CheckpointStorage::recover`](super::storage::CheckpointStorage::recover)
/// does on disk: removes unfinished checkpoints (no `_metadata`), those
/// beyond the newest `num_retained` and those newer than `keep`, then
/// every shared file no retained checkpoint names (unless a `_metadata`
/// could not be read). Two runs of one job id must not share a bucket
/// prefix at once: nothing locks it.
pub(super) fn recover_object(
    job: &ObjectJob,
    shared: &SharedFiles,
    num_retained: u32,
    keep: Option<u64>,
) -> Recovered {
    let mut out = Recovered::default();
    let names = match job.bucket.children(&job.key) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot list the job's checkpoints: {e}");
            return out;
        }
    };
    let mut complete = Vec::new();
    let mut unreadable = false;
    for name in names {
        let Some(id) = parse_checkpoint_folder(&name) else {
            continue;
        };
        out.highest_id = out.highest_id.max(id);
        let folder = format!("{}/{name}", job.key);
        match super::object::ObjectCheckpoint::new(job.bucket.clone(), folder.clone()).metadata() {
            Ok(Some(m)) => complete.push((id, m)),
            Ok(None) => {
                tracing::info!("removing unfinished checkpoint {}", job.bucket.uri(&folder));
                warn_on_error(job.bucket.delete_all(&folder).map(drop).map_err(object_err));
            }
            Err(e) => {
                tracing::warn!("{e}; left alone");
                unreadable = true;
            }
        }
    }
    complete.sort_by_key(|c| c.0);
    let ids: Vec<u64> = complete.iter().map(|c| c.0).collect();
    let (_, removed) = retention::on_start(&ids, num_retained, keep);
    for (id, m) in complete {
        if removed.iter().any(|r| r.0 == id) {
            tracing::info!(
                "removing checkpoint {id} ({:?})",
                removed.iter().find(|r| r.0 == id).map(|r| &r.1)
            );
            warn_on_error(job.discard(id, || {}));
        } else {
            out.retained
                .push((m, job.bucket.uri(&job.checkpoint_key(id))));
        }
    }
    let metas: Vec<CheckpointMetadata> = out.retained.iter().map(|(m, _)| m.clone()).collect();
    shared.recover(&metas, !unreadable);
    out
}

/// What [`sweep_folder`] does on disk, for the job folder of checkpoint
/// `chk` in a bucket: removes what a killed run left there (unfinished
/// checkpoints, shared files no completed checkpoint names) and keeps
/// every completed checkpoint; but only once the process that ran that
/// job is gone (object storage has no lock: its `_owner` names the host
/// and pid, and a folder owned on another machine is never swept).
pub fn sweep_object_folder(chk: &ObjectUri, s3: &S3Config) {
    let (job, name) = chk.split_last();
    if !name.starts_with("chk-") {
        return;
    }
    match CheckpointStorage::in_bucket(&job, s3) {
        Ok(CheckpointStorage::Object { job: folder, .. }) if folder.may_run() => {
            tracing::info!(
                "{job} is not swept: the process that ran its job may still run it (see its {OWNER_FILE})"
            );
        }
        Ok(storage) => drop(storage.recover(u32::MAX, None)),
        Err(e) => tracing::warn!("cannot sweep {job}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::layout::shared_reference;
    use crate::config::StorageKind;
    use crate::state::incremental::{IncrementalHandle, StateFile};

    /// A checkpoint `id` whose one subtask uses the shared files `names`.
    fn checkpoint(storage: &CheckpointStorage, id: u64, names: &[&str]) {
        let shared = names
            .iter()
            .map(|n| StateFile {
                local: "1.sst".into(),
                file: shared_reference(n),
                size: 1,
                checksum: String::new(),
            })
            .collect();
        let handle = IncrementalHandle {
            key_group_range: (0, 127),
            instance: "i".into(),
            entries: 1,
            shared,
            private: Vec::new(),
        };
        let m = CheckpointMetadata::one_subtask(id, "rocksdb", "op", None, Some(handle));
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
        let storage = CheckpointStorage::new(
            StorageKind::Filesystem,
            dir.path(),
            "job",
            &Default::default(),
        )
        .expect("storage");
        let job = dir.path().join("job");
        for f in ["a.sst", "b.sst", "c.sst", "orphan.sst"] {
            std::fs::write(job.join("shared").join(f), b"x").expect("write");
        }
        checkpoint(&storage, 3, &["a.sst"]);
        checkpoint(&storage, 4, &["a.sst", "b.sst"]);
        checkpoint(&storage, 5, &["c.sst"]);
        std::fs::create_dir_all(job.join("chk-6")).expect("unfinished");
        // Restoring chk-4 of this folder: chk-5 is newer and goes, chk-3 is
        // beyond num-retained 1, the unfinished chk-6 goes; shared files
        // only the gone ones used are deleted.
        let r = storage.recover(1, Some(4));
        assert_eq!(r.highest_id, 6, "new ids start after every folder");
        let ids: Vec<u64> = r.retained.iter().map(|(m, _)| m.checkpoint_id).collect();
        assert_eq!(ids, vec![4]);
        assert_eq!(names(&job), vec!["chk-4", "shared", "taskowned"]);
        assert_eq!(names(&job.join("shared")), vec!["a.sst", "b.sst"]);
        // A _metadata naming a file outside shared/ is refused as damaged:
        // it is left alone, and what it names is never followed.
        checkpoint(&storage, 8, &["a.sst", "../../outside"]);
        std::fs::write(dir.path().join("outside"), b"keep me").expect("write");
        // A _metadata that cannot be read may use any shared file: none is
        // deleted while it is there.
        std::fs::write(job.join("shared").join("orphan.sst"), b"x").expect("write");
        std::fs::create_dir_all(job.join("chk-9")).expect("mkdir");
        std::fs::write(job.join("chk-9").join("_metadata"), b"garbage").expect("write");
        let r = storage.recover(1, None);
        assert_eq!(r.highest_id, 9);
        assert!(job.join("shared").join("orphan.sst").exists());
        assert!(job.join("chk-9").exists(), "left alone");
        assert!(job.join("chk-8").exists(), "left alone");
        assert!(dir.path().join("outside").exists());
    }
}
