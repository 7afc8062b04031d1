//! Savepoint folders: self-contained snapshots a user triggers, stored
//! outside the job's checkpoint folder and never deleted by Weir (except a
//! claimed one, see [`crate::config::ClaimMode`]).
//!
//! ```text
//! <target>/savepoint-<first 6 hex of the job id>-<12 random hex>/_metadata
//! <target>/savepoint-…/<node>-<uid>-<subtask>.keyed         (canonical and timers)
//! <target>/savepoint-…/<node>-<uid>-<subtask>.<file>        (native: RocksDB's files)
//! ```
//!
//! Every file `_metadata` names is inside the folder and named relative to
//! it, so the folder can be moved or copied anywhere and still restores,
//! and deleting it disposes of the savepoint completely.
//!
//! A savepoint is written into a hidden `.savepoint-….inprogress` folder
//! beside its final one, and renamed once its `_metadata` is durable, so a
//! half-written savepoint is never taken for a complete one. Before it
//! starts, a marker in the job's checkpoint folder names the in-progress
//! folder; a crash leaves the marker, and the next start of any job over
//! that checkpoint folder removes the folder it names
//! ([`sweep_in_progress`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Sender;
use thiserror::Error;

use super::fs::{StorageError, io_err, object_err, sync_dir};
use super::layout::{METADATA_FILE, METADATA_IN_PROGRESS, metadata_in};
use super::metadata::CheckpointMetadata;
use super::storage::random_hex;
use crate::config::{ObjectUri, S3Config, SavepointFormat};
use crate::confined::Folder;
use crate::objectstore::{Bucket, open_bucket};
use crate::state::incremental::{IncrementalHandle, NativeSnapshot};

/// The prefix of a savepoint folder's name.
pub const SAVEPOINT_PREFIX: &str = "savepoint-";
/// The suffix of a savepoint folder being written (hidden, with a `.`).
const IN_PROGRESS_SUFFIX: &str = ".inprogress";
/// The suffix of a marker naming an in-progress savepoint folder.
const MARKER_SUFFIX: &str = ".savepoint-inprogress";

/// What a user asked for: a savepoint of a running job, or a stop with one.
#[derive(Debug)]
pub struct SavepointRequest {
    /// The folder the savepoint folder goes into.
    pub target: PathBuf,
    /// Canonical or native.
    pub format: SavepointFormat,
    /// `Some`: stop the job with this savepoint (`drain`: end the input
    /// first, so event-time timers fire and windows flush).
    pub stop: Option<StopMode>,
    /// Where the outcome goes.
    pub reply: Sender<Result<SavepointDone, String>>,
}

/// How a stop with savepoint ends the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopMode {
    /// Advance the watermark to the end and end the input before the
    /// savepoint (`--drain`).
    pub drain: bool,
}

/// A completed savepoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SavepointDone {
    /// Its folder.
    pub path: String,
    /// Its checkpoint id.
    pub id: u64,
    /// Bytes of its files.
    pub size: u64,
    /// Its format.
    pub format: SavepointFormat,
    /// When it completed (ms since the epoch).
    pub timestamp: i64,
    /// Per operator uid, the SHA-256 of the component that wrote its
    /// state (WebAssembly operators).
    pub components: Vec<(String, String)>,
}

/// A savepoint that cannot be written, read or disposed of.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SavepointError {
    /// A file could not be written or read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The path is not a savepoint folder.
    #[error("{path}: not a savepoint ({why}); nothing was deleted")]
    NotASavepoint {
        /// The path given.
        path: String,
        /// Why not.
        why: String,
    },
}

/// A savepoint folder being written, every file named relative to a
/// handle on it. One in object storage is written to a local folder first
/// and uploaded when it completes, `_metadata` last.
#[derive(Debug)]
pub struct SavepointFolder {
    /// The folder the savepoint folder goes into, open.
    parent: Folder,
    /// The hidden folder the files go to, open.
    staging: Folder,
    /// Its name in `parent`.
    temp_name: String,
    /// The folder's final name in `parent`.
    name: String,
    /// The job's checkpoint folder and the marker in it naming `staging`,
    /// if any.
    marker: Option<(Arc<Folder>, String)>,
    /// Written (or renamed): nothing to remove on drop.
    done: bool,
    /// For a savepoint in object storage: where it goes, and the local
    /// folder `parent` is (removed when this is dropped).
    remote: Option<(Arc<Bucket>, String, tempfile::TempDir)>,
}

impl SavepointFolder {
    /// Starts savepoint folder `savepoint-<job>-<random>` under `target`;
    /// `job` (the job's checkpoint folder) gets a marker naming it.
    pub fn create(
        target: &Path,
        job_id: &str,
        job: Option<&Arc<Folder>>,
        s3: &S3Config,
    ) -> Result<Self, StorageError> {
        if let Some(uri) = ObjectUri::of(target) {
            return Self::create_in_bucket(&uri, job_id, s3);
        }
        std::fs::create_dir_all(target).map_err(|e| io_err(target, e))?;
        let target = std::fs::canonicalize(target).map_err(|e| io_err(target, e))?;
        let parent = Folder::open_existing(&target).map_err(|e| io_err(&target, e))?;
        let name = savepoint_name(job_id);
        let temp_name = format!(".{name}{IN_PROGRESS_SUFFIX}");
        let marker = match job {
            Some(job) => {
                let m = format!("{name}{MARKER_SUFFIX}");
                let temp = parent.shown(&temp_name).display().to_string();
                job.write_durably(&m, temp.as_bytes())
                    .map_err(|e| io_err(&job.shown(&m), e))?;
                Some((Arc::clone(job), m))
            }
            None => None,
        };
        let staging = match parent.sub(&temp_name, true) {
            Ok(staging) => staging,
            Err(e) => {
                if let Some((job, m)) = &marker {
                    let _ = job.remove_file(m);
                }
                return Err(io_err(&parent.shown(&temp_name), e));
            }
        };
        Ok(SavepointFolder {
            parent,
            staging,
            temp_name,
            name,
            marker,
            done: false,
            remote: None,
        })
    }

    /// Starts a savepoint under `target` in a bucket: staged in a local
    /// temporary folder until it completes. (No marker: a crash before
    /// the upload ends leaves at most files without `_metadata`, which
    /// no restore takes for a savepoint.)
    fn create_in_bucket(
        target: &ObjectUri,
        job_id: &str,
        s3: &S3Config,
    ) -> Result<Self, StorageError> {
        let bucket = open_bucket(target, s3).map_err(object_err)?;
        let name = savepoint_name(job_id);
        let tmp = tempfile::Builder::new()
            .prefix("weir-savepoint-")
            .tempdir()
            .map_err(|e| io_err(&std::env::temp_dir(), e))?;
        let parent = Folder::open_existing(tmp.path()).map_err(|e| io_err(tmp.path(), e))?;
        let temp_name = format!(".{name}{IN_PROGRESS_SUFFIX}");
        let staging = parent
            .sub(&temp_name, true)
            .map_err(|e| io_err(&parent.shown(&temp_name), e))?;
        let key = target.join(&name).key;
        Ok(SavepointFolder {
            parent,
            staging,
            temp_name,
            name,
            marker: None,
            done: false,
            remote: Some((bucket, key, tmp)),
        })
    }

    /// Where the savepoint will be once complete.
    pub fn path(&self) -> PathBuf {
        match &self.remote {
            Some((bucket, key, _)) => PathBuf::from(bucket.uri(key)),
            None => self.parent.shown(&self.name),
        }
    }

    /// The folder its files are written to until it completes.
    pub fn staging(&self) -> &Path {
        self.staging.path()
    }

    /// Writes file `name` durably.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.staging
            .write_durably(name, bytes)
            .map_err(|e| io_err(&self.staging.shown(name), e))
    }

    /// Copies every file of a native snapshot into the folder as
    /// `<stem>.<file>`: the handle (all files private, none shared) and
    /// the bytes written.
    pub fn write_native(
        &self,
        stem: &str,
        native: &NativeSnapshot,
    ) -> Result<(IncrementalHandle, u64), StorageError> {
        let src = native
            .open_folder()
            .map_err(|e| io_err(&native.folder, e))?;
        let mut handle = native.empty_handle();
        let mut written = 0;
        for f in &native.files {
            let file = native
                .copy_private(&src, &f.local, &self.staging, stem)
                .map_err(|(dst, e)| io_err(&dst, e))?;
            written += file.size;
            handle.private.push(file);
        }
        Ok((handle, written))
    }

    /// Writes `_metadata` durably and renames the folder to its final
    /// name: from here on the savepoint is complete. Returns its path.
    pub fn complete(mut self, metadata: &CheckpointMetadata) -> Result<PathBuf, StorageError> {
        let bytes = metadata.encode().map_err(|e| StorageError {
            path: METADATA_FILE.into(),
            message: e.to_string(),
        })?;
        if self.remote.is_some() {
            return self.upload(bytes);
        }
        let staging = &self.staging;
        staging
            .write_durably(METADATA_IN_PROGRESS, &bytes)
            .map_err(|e| io_err(&staging.shown(METADATA_IN_PROGRESS), e))?;
        staging
            .rename(METADATA_IN_PROGRESS, staging, METADATA_FILE)
            .map_err(|e| io_err(&staging.shown(METADATA_FILE), e))?;
        staging.sync().map_err(|e| io_err(staging.path(), e))?;
        let target = self.path();
        self.parent
            .rename(&self.temp_name, &self.parent, &self.name)
            .map_err(|e| io_err(&target, e))?;
        self.done = true;
        // Complete from here on: a failed fsync of the parent is worth a
        // warning, not a failed savepoint.
        if let Err(e) = self.parent.sync() {
            tracing::warn!("savepoint {}: {e}", target.display());
        }
        self.remove_marker();
        Ok(target)
    }

    /// Uploads every staged file, then `_metadata` (only if none is
    /// there); what was uploaded of a failed one is deleted again.
    fn upload(mut self, metadata: Vec<u8>) -> Result<PathBuf, StorageError> {
        let Some((bucket, key, _)) = &self.remote else {
            unreachable!("only a savepoint in object storage is uploaded");
        };
        let staging = &self.staging;
        let upload = || -> Result<(), StorageError> {
            for name in staging.names().map_err(|e| io_err(staging.path(), e))? {
                let (mut file, _) = staging
                    .open_regular(&name)
                    .map_err(|e| io_err(&staging.shown(&name), e))?;
                bucket
                    .upload(&format!("{key}/{name}"), &mut file)
                    .map_err(object_err)?;
            }
            super::object::put_metadata(bucket, key, &metadata)
        };
        if let Err(e) = upload() {
            if let Err(d) = bucket.delete_all(key) {
                tracing::warn!("cannot remove the unfinished savepoint: {d}");
            }
            return Err(e);
        }
        self.done = true;
        Ok(self.path())
    }

    fn remove_marker(&mut self) {
        if let Some((job, m)) = self.marker.take()
            && let Err(e) = job.remove_file(&m)
        {
            tracing::warn!(
                "cannot remove savepoint marker {}: {e}",
                job.shown(&m).display()
            );
        }
    }
}

impl Drop for SavepointFolder {
    /// A savepoint that did not complete leaves nothing behind.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = self.parent.remove_dir_all(&self.temp_name)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove unfinished savepoint {}: {e}",
                self.staging.path().display()
            );
        }
        self.remove_marker();
    }
}

/// A new savepoint folder's name: `savepoint-<first 6 of the job
/// id>-<12 random hex>`.
fn savepoint_name(job_id: &str) -> String {
    format!(
        "{SAVEPOINT_PREFIX}{}-{}",
        job_id.get(..6).unwrap_or(job_id),
        random_hex(6)
    )
}

/// Removes the in-progress savepoint folders that the markers in
/// `job_dir` name (left by a crash), and the markers.
pub fn sweep_in_progress(job_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(job_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let marker = entry.path();
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(MARKER_SUFFIX))
        {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let folder = PathBuf::from(text.trim());
            // Only ever a hidden in-progress savepoint folder, whatever the
            // marker says.
            let is_ours = folder
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| {
                    n.starts_with(&format!(".{SAVEPOINT_PREFIX}"))
                        && n.ends_with(IN_PROGRESS_SUFFIX)
                });
            if is_ours {
                match std::fs::remove_dir_all(&folder) {
                    Ok(()) => tracing::info!(
                        "removed the unfinished savepoint {} (left by a crash)",
                        folder.display()
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!("cannot remove {}: {e}", folder.display());
                        continue;
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&marker);
    }
}

/// Reads the `_metadata` of savepoint folder `path` (or of the folder
/// holding `path` if it is a `_metadata` file), checking it is a savepoint.
pub fn read_savepoint(path: &Path) -> Result<(PathBuf, CheckpointMetadata), SavepointError> {
    let not = |why: &str| SavepointError::NotASavepoint {
        path: path.display().to_string(),
        why: why.to_owned(),
    };
    let folder = if path.file_name().is_some_and(|n| n == METADATA_FILE) {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    if !folder.is_dir() {
        return Err(not("no such folder"));
    }
    let meta = metadata_in(&folder);
    let bytes = super::fs::read_metadata_file(&meta).map_err(|_| not("it has no _metadata"))?;
    let metadata = CheckpointMetadata::decode(&bytes).map_err(|e| not(&e.to_string()))?;
    if metadata.kind != "savepoint" {
        return Err(not("its _metadata is a checkpoint's"));
    }
    Ok((folder, metadata))
}

/// Deletes the savepoint at `path` as [`dispose`] does, one in a bucket
/// (`s3://`) reached with the settings `s3`: its `_metadata` first, then
/// every object under it.
pub fn dispose_in(path: &Path, s3: &S3Config) -> Result<PathBuf, SavepointError> {
    let Some(uri) = ObjectUri::of(path) else {
        return dispose(path);
    };
    let not = |why: &str| SavepointError::NotASavepoint {
        path: uri.to_string(),
        why: why.to_owned(),
    };
    let bucket = open_bucket(&uri, s3).map_err(object_err)?;
    let snapshot = super::object::ObjectCheckpoint::new(bucket.clone(), uri.key.clone());
    let metadata = snapshot
        .metadata()?
        .ok_or_else(|| not("it has no _metadata"))?;
    if metadata.kind != "savepoint" {
        return Err(not("its _metadata is a checkpoint's"));
    }
    let delete = |key: &str| bucket.delete(key).map_err(object_err);
    delete(&format!("{}/{METADATA_FILE}", uri.key))?;
    bucket.delete_all(&uri.key).map_err(object_err)?;
    Ok(uri.to_path())
}

/// Deletes savepoint folder `path` and everything in it, after checking
/// that it is one (its `_metadata` says so): a dispose of anything else is
/// refused and deletes nothing.
pub fn dispose(path: &Path) -> Result<PathBuf, SavepointError> {
    let (folder, _) = read_savepoint(path)?;
    // The folder itself, however it was named (a link, `..`, a trailing
    // `/`): that is what is deleted and what the index knows.
    let folder = std::fs::canonicalize(&folder).map_err(|e| io_err(&folder, e))?;
    // `_metadata` first: a crash midway leaves a folder that is plainly
    // not a savepoint any more.
    delete_snapshot_folder(&folder)?;
    if let Some(parent) = folder.parent() {
        sync_dir(parent)?;
    }
    Ok(folder)
}

/// Deletes a snapshot folder (a claimed savepoint or another job's
/// checkpoint), `_metadata` first so that no crash leaves a snapshot that
/// names deleted files.
pub fn delete_snapshot_folder(folder: &Path) -> Result<(), StorageError> {
    let meta = metadata_in(folder);
    match std::fs::remove_file(&meta) {
        Ok(()) => sync_dir(folder)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&meta, e)),
    }
    tracing::info!("deleting the claimed snapshot {}", folder.display());
    match std::fs::remove_dir_all(folder) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(folder, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The job's checkpoint folder `dir`, open.
    fn job_folder(dir: &Path) -> Arc<Folder> {
        Arc::new(Folder::open(dir, None).expect("job folder"))
    }

    fn metadata() -> CheckpointMetadata {
        let mut m = CheckpointMetadata::one_subtask(3, "hashmap", "count", None, None);
        m.kind = "savepoint".into();
        m
    }

    #[test]
    fn a_savepoint_appears_only_when_complete_and_disposes_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job_dir = dir.path().join("job");
        std::fs::create_dir_all(&job_dir).expect("mkdir");
        let target = dir.path().join("sp");
        let folder = SavepointFolder::create(
            &target,
            "abcdef0123",
            Some(&job_folder(&job_dir)),
            &Default::default(),
        )
        .expect("create");
        let name = folder
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        assert!(
            name.starts_with("savepoint-abcdef-") && name.len() == 29,
            "{name}"
        );
        folder.write("a.keyed", b"x").expect("write");
        assert!(!folder.path().exists(), "not visible before it completes");
        let path = folder.complete(&metadata()).expect("complete");
        assert!(path.join("a.keyed").is_file());
        assert_eq!(read_savepoint(&path).expect("read").1, metadata());
        assert_eq!(
            std::fs::read_dir(&job_dir).expect("ls").count(),
            0,
            "marker gone"
        );
        // Disposing of something else is refused and deletes nothing.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("data"), b"keep").expect("write");
        assert!(matches!(
            dispose(&other),
            Err(SavepointError::NotASavepoint { .. })
        ));
        assert!(other.join("data").is_file());
        dispose(&path).expect("dispose");
        assert!(!path.exists());
    }

    #[test]
    fn an_interrupted_savepoint_leaves_nothing_after_the_sweep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job_dir = dir.path().join("job");
        std::fs::create_dir_all(&job_dir).expect("mkdir");
        let target = dir.path().join("sp");
        let folder = SavepointFolder::create(
            &target,
            "abcdef",
            Some(&job_folder(&job_dir)),
            &Default::default(),
        )
        .expect("create");
        folder.write("a.keyed", b"x").expect("write");
        // A crash: nothing runs Drop.
        std::mem::forget(folder);
        assert_eq!(std::fs::read_dir(&target).expect("ls").count(), 1);
        sweep_in_progress(&job_dir);
        assert_eq!(std::fs::read_dir(&target).expect("ls").count(), 0);
        assert_eq!(std::fs::read_dir(&job_dir).expect("ls").count(), 0);
        // A failed one cleans up after itself.
        let folder = SavepointFolder::create(
            &target,
            "abcdef",
            Some(&job_folder(&job_dir)),
            &Default::default(),
        )
        .expect("create");
        drop(folder);
        assert_eq!(std::fs::read_dir(&target).expect("ls").count(), 0);
    }
}
