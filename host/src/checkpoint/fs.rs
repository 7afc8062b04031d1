//! Durable file writes for checkpoints, and the error of a checkpoint
//! file that cannot be written or read.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use thiserror::Error;

/// A checkpoint file that cannot be written or read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{path}: {message}")]
pub struct StorageError {
    /// The file or folder.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// A [`StorageError`] for an error `e` at `path`.
pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A [`StorageError`] for a failed object-storage request.
pub(crate) fn object_err(e: crate::objectstore::ObjectError) -> StorageError {
    let path = e.uri().to_owned();
    let text = e.to_string();
    StorageError {
        message: text
            .strip_prefix(&format!("{path}: "))
            .unwrap_or(&text)
            .to_owned(),
        path,
    }
}

/// The largest `_metadata` a reader accepts; a larger file is damaged or
/// hostile, and is not read.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// Reads a `_metadata` file: a regular file (a link is followed, a
/// device is not) of at most [`MAX_METADATA_BYTES`].
pub fn read_metadata_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("_metadata is not a regular file"));
    }
    if meta.len() > MAX_METADATA_BYTES {
        return Err(std::io::Error::other(format!(
            "_metadata holds {} bytes, more than the {MAX_METADATA_BYTES} a checkpoint's can",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    File::open(path)?
        .take(MAX_METADATA_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
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
