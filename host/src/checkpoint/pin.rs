//! Pinning a restore source: a job that restores from a checkpoint in
//! another job's folder gets its own copy of it, so that the other job's
//! retention (a newer checkpoint subsuming it, a cancel deleting its
//! folder) cannot take it away before the new job has checkpoints of its
//! own, and a crash-resume finds it again.
//!
//! The copy is made of hard links where the filesystem allows (the same
//! bytes, no space), otherwise of copies: `<into>/chk-<n>/` holds the
//! checkpoint folder's files and `<into>/shared/` the incremental files it
//! references as `../shared/<name>`, so the copy restores as the original.

use std::path::{Path, PathBuf};

use super::fs::{StorageError, io_err, sync_dir};
use super::restore::RestorePoint;
use super::storage::CheckpointDir;
use crate::state::incremental::copy_file;

/// The name of the folder in a job's checkpoint folder that holds its
/// pinned restore source.
pub const PIN_FOLDER: &str = "restore-source";

/// Links (or copies) regular file `src` to `dst`, unless `dst` exists
/// (pinned already: a copy over it could truncate `src` itself, when `dst`
/// is a link to it).
fn link_or_copy(src: &Path, dst: &Path) -> Result<(), StorageError> {
    if std::fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(src).map_err(|e| io_err(src, e))?;
    if !meta.is_file() {
        return Err(io_err(src, "not a regular file"));
    }
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    copy_file(src, dst, true)
        .map(|_| ())
        .map_err(|e| io_err(dst, e))
}

/// Pins `point` (a checkpoint folder on disk) into folder `into`; returns
/// the pinned copy, reading from its new place (its `path`, which messages
/// and the API show, stays the one the user named).
pub fn pin(point: &RestorePoint, into: &Path) -> Result<RestorePoint, StorageError> {
    let src = point
        .reader
        .folder()
        .ok_or_else(|| io_err(Path::new(&point.path), "not a folder on disk"))?;
    let name = src
        .file_name()
        .ok_or_else(|| io_err(&src, "has no folder name"))?;
    let dst = into.join(name);
    std::fs::create_dir_all(&dst).map_err(|e| io_err(&dst, e))?;
    let entries = std::fs::read_dir(&src).map_err(|e| io_err(&src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(&src, e))?;
        // Files only: a checkpoint folder holds no folders of its own.
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            link_or_copy(&entry.path(), &dst.join(entry.file_name()))?;
        }
    }
    let shared = point
        .metadata
        .operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|s| s.incremental.as_ref())
        .flat_map(|h| &h.shared);
    for file in shared {
        // `_metadata` decode admitted only `../shared/<plain name>`.
        let target = dst.join(&file.file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        link_or_copy(&src.join(&file.file), &target)?;
    }
    // Durable before the job that relies on it is recorded.
    sync_dir(&dst)?;
    if let Some(shared) = dst
        .join("../shared")
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
    {
        sync_dir(&shared)?;
    }
    sync_dir(into)?;
    let mut pinned = point.clone();
    pinned.reader = std::sync::Arc::new(CheckpointDir(dst));
    Ok(pinned)
}

/// The pinned restore source of the job whose checkpoint folder is
/// `job_dir`, if it has one.
pub fn pin_folder(job_dir: &Path) -> PathBuf {
    job_dir.join(PIN_FOLDER)
}
