//! Reading a checkpoint's files: the [`ReadCheckpoint`] trait a restore
//! reads through, and [`CheckpointDir`], a checkpoint folder on disk.

use std::path::PathBuf;

use super::fs::{StorageError, io_err};
use crate::confined::Folder;

/// Reads the files of one checkpoint.
pub trait ReadCheckpoint: Send + Sync + std::fmt::Debug {
    /// The file `name` of the checkpoint.
    fn read(&self, name: &str) -> Result<Vec<u8>, StorageError>;
    /// The file `name`, which `_metadata` says holds `size` bytes: refused
    /// without reading it if it holds more, so a damaged `_metadata`
    /// cannot make a restore read without bound.
    fn read_sized(&self, name: &str, size: u64) -> Result<Vec<u8>, StorageError> {
        let bytes = self.read(name)?;
        of_size(bytes, size, || format!("{}/{name}", self.location()))
    }
    /// Where it is, for messages (`<dir>/<job>/chk-<n>`).
    fn location(&self) -> String;
    /// Whether the storage answers now, or did not answer a request of
    /// the current restore attempt: an error when it cannot be reached (a
    /// passing failure, not damage: the checkpoint is tried again later).
    /// On disk and in memory, always `Ok`.
    fn reachable(&self) -> Result<(), StorageError> {
        Ok(())
    }
    /// A restore attempt from this checkpoint begins: what
    /// [`Self::reachable`] remembers of earlier ones is forgotten.
    fn begin_attempt(&self) {}
    /// The folder on disk, if it is on disk or can be fetched there
    /// (incremental handles name files relative to it).
    fn folder(&self) -> Result<Option<PathBuf>, StorageError> {
        Ok(None)
    }
}

/// `bytes` if they are the `size` bytes `_metadata` says the file at
/// `path()` holds; an error naming it otherwise.
pub fn of_size(
    bytes: Vec<u8>,
    size: u64,
    path: impl FnOnce() -> String,
) -> Result<Vec<u8>, StorageError> {
    if bytes.len() as u64 == size {
        return Ok(bytes);
    }
    Err(StorageError {
        path: path(),
        message: format!(
            "{} bytes, but _metadata says {size} (the file is damaged)",
            bytes.len()
        ),
    })
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

    fn folder(&self) -> Result<Option<PathBuf>, StorageError> {
        Ok(Some(self.0.clone()))
    }
}

impl CheckpointDir {
    /// Opens file `name` of the folder for reading: a plain name, opened
    /// through a `cap-std` handle on the folder (so never a path out of
    /// it), without blocking (a FIFO), and only if what was opened is a
    /// regular file (never a link, a folder or a device); its path, the
    /// open file and its size.
    fn open_regular(&self, name: &str) -> Result<(PathBuf, std::fs::File, u64), StorageError> {
        let p = self.0.join(name);
        if !crate::state::incremental::is_plain_name(name) {
            return Err(StorageError {
                path: self.0.display().to_string(),
                message: format!("{name:?} is not a file name of the checkpoint folder"),
            });
        }
        let folder = Folder::open_existing(&self.0).map_err(|e| io_err(&self.0, e))?;
        let (f, len) = folder.open_regular(name).map_err(|e| io_err(&p, e))?;
        Ok((p, f, len))
    }
}
