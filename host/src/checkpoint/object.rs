//! Checkpoints and savepoints in S3-compatible object storage, laid out
//! as on disk (see [`super::storage`]) under an `s3://bucket/prefix`:
//!
//! ```text
//! s3://<bucket>/<prefix>/<job-id>/chk-<n>/_metadata      (written last, conditionally)
//! s3://<bucket>/<prefix>/<job-id>/chk-<n>/<files>
//! s3://<bucket>/<prefix>/<job-id>/shared/<instance>-<n>.sst
//! s3://<bucket>/<prefix>/<job-id>/_owner                 (host and pid of the process running it)
//! ```
//!
//! A `chk-<n>/` without `_metadata` is incomplete: `_metadata` is put
//! with `If-None-Match: *` after every file it names, so it is never
//! overwritten and never names a file that is not there yet. A restore
//! reads small files from the bucket, and when a backend needs files on
//! disk (RocksDB's, a sink's copies) downloads the checkpoint's files and
//! the shared files it names into a local folder, as Flink downloads
//! RocksDB files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::fs::{MAX_METADATA_BYTES, StorageError, io_err, object_err};
use super::layout::{METADATA_FILE, SHARED_DIR, checkpoint_folder_name};
use super::metadata::CheckpointMetadata;
use super::reader::{CheckpointDir, ReadCheckpoint, of_size};
use crate::confined::Folder;
use crate::objectstore::{Bucket, ObjectError};
use crate::state::incremental::{StateFile, is_plain_name};

/// The keys of one job's checkpoints in a bucket.
#[derive(Debug, Clone)]
pub struct ObjectJob {
    /// The bucket.
    pub bucket: Arc<Bucket>,
    /// `<prefix>/<job-id>`.
    pub key: String,
}

impl ObjectJob {
    /// `<job>/chk-<id>`.
    pub fn checkpoint_key(&self, id: u64) -> String {
        format!("{}/{}", self.key, checkpoint_folder_name(id))
    }

    /// `<job>/shared`.
    pub fn shared_key(&self) -> String {
        format!("{}/{SHARED_DIR}", self.key)
    }

    /// `<job>/_owner`: which process runs the job (see
    /// [`ObjectJob::claim`]).
    fn owner_key(&self) -> String {
        format!("{}/{OWNER_FILE}", self.key)
    }

    /// Records this process as the one running the job (its host and
    /// pid), so that a job restored from one of its checkpoints sweeps
    /// its folder only once it no longer runs ([`ObjectJob::may_run`]).
    pub fn claim(&self) -> Result<(), StorageError> {
        let owner = format!(
            "{}\n{}\n",
            crate::machine::host_name(),
            crate::machine::own_pid()
        );
        self.bucket
            .put(&self.owner_key(), owner.into_bytes())
            .map_err(object_err)
    }

    /// Whether the job of this folder may still be running: its owner is
    /// a live process of this machine, or of another machine (which
    /// cannot be told). `false` when no owner is recorded or its process
    /// on this machine is gone.
    pub fn may_run(&self) -> bool {
        let text = match self.bucket.get(&self.owner_key(), 4096) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(ObjectError::NotFound { .. }) => return false,
            Err(_) => return true,
        };
        let mut lines = text.lines();
        let (Some(host), Some(pid)) = (lines.next(), lines.next().and_then(|p| p.parse().ok()))
        else {
            return true;
        };
        host != crate::machine::host_name() || crate::machine::process_may_run(pid)
    }

    /// Writes file `name` of checkpoint `id`.
    pub fn write(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let key = format!("{}/{name}", self.checkpoint_key(id));
        self.bucket.put(&key, bytes.to_vec()).map_err(object_err)
    }

    /// Uploads file `local` of a native snapshot's folder `src` into
    /// checkpoint `id` as `<stem>.<local>`; what a handle records of it.
    pub fn upload_private(
        &self,
        id: u64,
        stem: &str,
        src: &Folder,
        local: &str,
    ) -> Result<StateFile, StorageError> {
        let name = format!("{stem}.{local}");
        let (mut file, _) = src
            .open_regular(local)
            .map_err(|e| io_err(&src.shown(local), e))?;
        let key = format!("{}/{name}", self.checkpoint_key(id));
        let (size, checksum) = self.bucket.upload(&key, &mut file).map_err(object_err)?;
        Ok(StateFile {
            local: local.to_owned(),
            file: name,
            size,
            checksum,
        })
    }

    /// Puts `_metadata` of checkpoint `id`, only if none is there; its
    /// external path (`s3://…/chk-<id>`).
    pub fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<String, StorageError> {
        let folder = self.checkpoint_key(id);
        put_metadata(&self.bucket, &folder, bytes)?;
        Ok(self.bucket.uri(&folder))
    }

    /// Deletes checkpoint `id`: `_metadata` first, so that no crash
    /// leaves a `_metadata` whose files are gone; `between` runs once it
    /// is gone (it releases the shared files).
    pub fn discard(&self, id: u64, between: impl FnOnce()) -> Result<(), StorageError> {
        let folder = self.checkpoint_key(id);
        self.bucket
            .delete(&format!("{folder}/{METADATA_FILE}"))
            .map_err(object_err)?;
        between();
        self.bucket
            .delete_all(&folder)
            .map(drop)
            .map_err(object_err)
    }
}

/// The object naming the process that runs a job (`<host>\n<pid>\n`).
pub const OWNER_FILE: &str = "_owner";

/// Puts `<folder>/_metadata` only if none is there. A put the client
/// retried after a lost answer finds its own `_metadata`: equal bytes are
/// success, other bytes an error (a completed checkpoint is never
/// overwritten).
pub fn put_metadata(bucket: &Bucket, folder: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let key = format!("{folder}/{METADATA_FILE}");
    match bucket.put_new(&key, bytes.to_vec()) {
        Ok(()) => Ok(()),
        Err(ObjectError::AlreadyExists { uri }) => match bucket.get(&key, MAX_METADATA_BYTES) {
            Ok(there) if there == bytes => Ok(()),
            _ => Err(StorageError {
                path: uri,
                message:
                    "a _metadata is there already; a completed checkpoint is never overwritten"
                        .into(),
            }),
        },
        Err(e) => Err(object_err(e)),
    }
}

/// A checkpoint or savepoint folder in a bucket, read for a restore.
#[derive(Debug)]
pub struct ObjectCheckpoint {
    bucket: Arc<Bucket>,
    /// `<…>/chk-<n>` or `<…>/savepoint-…`.
    folder: String,
    /// Its files downloaded (when first asked for; a failed download is
    /// tried again next time), with the shared files its `_metadata`
    /// names in `../shared/`.
    local: Mutex<Option<tempfile::TempDir>>,
    /// Whether a request of the current restore attempt went unanswered
    /// (any subtask's: one reader serves them all): a restore that failed
    /// then is not taken for damage, even if the server answers again by
    /// the time the restart loop asks. Cleared when an attempt begins.
    unanswered: AtomicBool,
}

impl ObjectCheckpoint {
    /// The folder `folder` of `bucket`.
    pub fn new(bucket: Arc<Bucket>, folder: String) -> Self {
        ObjectCheckpoint {
            bucket,
            folder,
            local: Mutex::new(None),
            unanswered: AtomicBool::new(false),
        }
    }

    /// `result` of a request, noted if it failed for want of an answer.
    fn noted<T>(&self, result: Result<T, ObjectError>) -> Result<T, ObjectError> {
        if matches!(&result, Err(e) if e.is_unreachable()) {
            self.unanswered.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Its `_metadata`, read and decoded; `None` if there is none.
    pub fn metadata(&self) -> Result<Option<CheckpointMetadata>, StorageError> {
        let key = format!("{}/{METADATA_FILE}", self.folder);
        let bytes = match self.noted(self.bucket.get(&key, MAX_METADATA_BYTES)) {
            Ok(b) => b,
            Err(ObjectError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(object_err(e)),
        };
        CheckpointMetadata::decode(&bytes)
            .map(Some)
            .map_err(|e| StorageError {
                path: self.bucket.uri(&key),
                message: e.to_string(),
            })
    }

    /// Downloads every file of the folder, and the shared files its
    /// `_metadata` names, into a new local folder.
    fn download(&self) -> Result<tempfile::TempDir, StorageError> {
        let local_err = |p: &std::path::Path, e: std::io::Error| StorageError {
            path: p.display().to_string(),
            message: format!("downloading {}: {e}", self.location()),
        };
        let tmp = tempfile::Builder::new()
            .prefix("weir-restore-")
            .tempdir()
            .map_err(|e| local_err(&std::env::temp_dir(), e))?;
        let dir = tmp.path().join(self.name());
        let shared = tmp.path().join(SHARED_DIR);
        for d in [&dir, &shared] {
            std::fs::create_dir_all(d).map_err(|e| local_err(d, e))?;
        }
        let prefix = format!("{}/", self.folder);
        for o in self
            .noted(self.bucket.list(&self.folder))
            .map_err(object_err)?
        {
            let Some(file) = o.key.strip_prefix(&prefix).filter(|n| is_plain_name(n)) else {
                continue;
            };
            self.fetch(&o.key, o.size, &dir.join(file))?;
        }
        // `_metadata` came down with the folder's other files.
        let local = dir.join(METADATA_FILE);
        let bytes = super::fs::read_metadata_file(&local).map_err(|e| local_err(&local, e))?;
        let meta = CheckpointMetadata::decode(&bytes).map_err(|e| StorageError {
            path: format!("{}/{METADATA_FILE}", self.location()),
            message: e.to_string(),
        })?;
        let parent = self.folder.rsplit_once('/').map_or("", |p| p.0);
        let handles = meta.operators.iter().flat_map(|o| &o.subtasks);
        for f in handles
            .filter_map(|s| s.incremental.as_ref())
            .flat_map(|h| &h.shared)
        {
            let Some(name) = f.shared_name() else {
                continue;
            };
            let to = shared.join(name);
            if !to.exists() {
                self.fetch(&format!("{parent}/{SHARED_DIR}/{name}"), f.size, &to)?;
            }
        }
        Ok(tmp)
    }

    /// Downloads object `key` (at most `size` bytes) to `to`.
    fn fetch(&self, key: &str, size: u64, to: &std::path::Path) -> Result<(), StorageError> {
        let mut file = std::fs::File::create(to).map_err(|e| StorageError {
            path: to.display().to_string(),
            message: e.to_string(),
        })?;
        self.noted(self.bucket.download(key, size, &mut file))
            .map(drop)
            .map_err(object_err)
    }
}

impl ReadCheckpoint for ObjectCheckpoint {
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        match self.local_copy() {
            Some(local) => local.read(name),
            None => self.get(name, MAX_METADATA_BYTES),
        }
    }

    fn read_sized(&self, name: &str, size: u64) -> Result<Vec<u8>, StorageError> {
        if let Some(local) = self.local_copy() {
            return local.read_sized(name, size);
        }
        let bytes = self.get(name, size)?;
        of_size(bytes, size, || format!("{}/{name}", self.location()))
    }

    fn location(&self) -> String {
        self.bucket.uri(&self.folder)
    }

    fn begin_attempt(&self) {
        self.unanswered.store(false, Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), StorageError> {
        if self.unanswered.load(Ordering::SeqCst) {
            return Err(StorageError {
                path: self.location(),
                message: "the server did not answer a request of this restore".into(),
            });
        }
        match self.bucket.list(&self.folder) {
            Ok(_) | Err(ObjectError::NotFound { .. } | ObjectError::NoBucket { .. }) => Ok(()),
            Err(e) => Err(object_err(e)),
        }
    }

    fn folder(&self) -> Result<Option<PathBuf>, StorageError> {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.is_none() {
            *local = Some(self.download()?);
        }
        Ok(local.as_ref().map(|tmp| tmp.path().join(self.name())))
    }
}

impl ObjectCheckpoint {
    /// The folder's last segment (`chk-<n>`, `savepoint-…`).
    fn name(&self) -> &str {
        self.folder.rsplit('/').next().unwrap_or("checkpoint")
    }

    /// The local copy, once downloaded.
    fn local_copy(&self) -> Option<CheckpointDir> {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local
            .as_ref()
            .map(|tmp| CheckpointDir(tmp.path().join(self.name())))
    }

    /// File `name` of the folder in the bucket, at most `max` bytes.
    fn get(&self, name: &str, max: u64) -> Result<Vec<u8>, StorageError> {
        if !is_plain_name(name) {
            return Err(StorageError {
                path: self.location(),
                message: format!("{name:?} is not a file name of the checkpoint folder"),
            });
        }
        self.noted(self.bucket.get(&format!("{}/{name}", self.folder), max))
            .map_err(object_err)
    }
}
