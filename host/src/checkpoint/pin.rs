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

use super::fs::{StorageError, io_err};
use super::layout::SHARED_DIR;
use super::restore::RestorePoint;
use super::storage::CheckpointDir;
use crate::confined::Folder;
use crate::state::incremental::SHARED_PREFIX;

/// The name of the folder in a job's checkpoint folder that holds its
/// pinned restore source.
pub const PIN_FOLDER: &str = "restore-source";

/// Pins `point` (a checkpoint folder on disk) into folder `into`; returns
/// the pinned copy, reading from its new place (its `path`, which messages
/// and the API show, stays the one the user named). Every file is linked
/// (or copied) between handles on the folders, and an existing file of
/// the pin is left alone: a copy over it could truncate the original
/// through a link.
pub fn pin(point: &RestorePoint, into: &Path) -> Result<RestorePoint, StorageError> {
    let src = point
        .reader
        .folder()?
        .ok_or_else(|| io_err(Path::new(&point.path), "not a folder on disk"))?;
    let name = src
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io_err(&src, "has no folder name"))?;
    let from = Folder::open_existing(&src).map_err(|e| io_err(&src, e))?;
    let into = Folder::open(into, None).map_err(|e| io_err(into, e))?;
    let to = into
        .sub(name, true)
        .map_err(|e| io_err(&into.shown(name), e))?;
    // Files only: a checkpoint folder holds no folders of its own.
    for file in from.file_names().map_err(|e| io_err(&src, e))? {
        to.link_in(&from, &file, &file)
            .map_err(|e| io_err(&from.shown(&file), e))?;
    }
    let shared: Vec<&str> = point
        .metadata
        .operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|s| s.incremental.as_ref())
        .flat_map(|h| &h.shared)
        // `_metadata` decode admitted only `../shared/<plain name>`.
        .filter_map(|f| f.shared_name())
        .collect();
    let shared_to = if shared.is_empty() {
        None
    } else {
        let from_dir = src.join(SHARED_PREFIX);
        let from = Folder::open_existing(&from_dir).map_err(|e| io_err(&from_dir, e))?;
        let to = into
            .sub(SHARED_DIR, true)
            .map_err(|e| io_err(&into.shown(SHARED_DIR), e))?;
        for file in shared {
            to.link_in(&from, file, file)
                .map_err(|e| io_err(&from.shown(file), e))?;
        }
        Some(to)
    };
    // Durable before the job that relies on it is recorded.
    for folder in std::iter::once(&to).chain(&shared_to).chain([&into]) {
        folder.sync().map_err(|e| io_err(folder.path(), e))?;
    }
    let mut pinned = point.clone();
    pinned.reader = std::sync::Arc::new(CheckpointDir(to.path().to_path_buf()));
    Ok(pinned)
}

/// The pinned restore source of the job whose checkpoint folder is
/// `job_dir`, if it has one.
pub fn pin_folder(job_dir: &Path) -> PathBuf {
    job_dir.join(PIN_FOLDER)
}
