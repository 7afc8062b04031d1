//! The job's `shared/` folder: files of incremental checkpoints, each
//! reference counted by the checkpoints (pending or retained) that use it.
//!
//! A file is uploaded once, by the first checkpoint that needs it, and
//! referenced by later ones; when the last checkpoint that refers to it is
//! discarded (subsumed, failed or abandoned), it is deleted. After a crash
//! the counts are rebuilt from the retained `_metadata` files and every
//! other file in the folder is deleted, so nothing is orphaned (Flink's
//! FLINK-28984 and FLINK-30461 are this going wrong).

use std::collections::{BTreeSet, HashMap};
#[cfg(test)]
use std::path::Path;
use std::sync::Mutex;

use super::fs::{StorageError, io_err};
use super::metadata::CheckpointMetadata;
use crate::confined::Folder;

/// A shared file and the checkpoints that use it.
#[derive(Debug)]
struct Shared {
    size: u64,
    checksum: String,
    users: BTreeSet<u64>,
}

/// The reference-counted `shared/` folder of one job.
#[derive(Debug)]
pub struct SharedFiles {
    dir: Folder,
    files: Mutex<HashMap<String, Shared>>,
}

impl SharedFiles {
    /// The registry of folder `dir` (`<job-dir>/shared`, open), empty
    /// until [`SharedFiles::recover`].
    pub fn new(dir: Folder) -> Self {
        SharedFiles {
            dir,
            files: Mutex::default(),
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Shared>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The folder.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// If a checkpoint holds file `name` already, makes checkpoint `id`
    /// refer to it too and returns its size and checksum.
    pub fn reference(&self, id: u64, name: &str) -> Option<(u64, String)> {
        let mut files = self.files();
        let f = files.get_mut(name)?;
        f.users.insert(id);
        Some((f.size, f.checksum.clone()))
    }

    /// Uploads file `src_name` of folder `src` as file `name` for
    /// checkpoint `id` (the file made durable; [`SharedFiles::sync`] makes
    /// its name durable); its size and checksum.
    pub fn upload(
        &self,
        id: u64,
        name: &str,
        src: &Folder,
        src_name: &str,
    ) -> Result<(u64, String), StorageError> {
        let (size, checksum) = self
            .dir
            .copy_in(src, src_name, name, true)
            .map_err(|e| io_err(&self.dir.shown(name), e))?;
        let mut files = self.files();
        let f = files.entry(name.to_owned()).or_insert_with(|| Shared {
            size,
            checksum: checksum.clone(),
            users: BTreeSet::new(),
        });
        f.users.insert(id);
        Ok((size, checksum))
    }

    /// Makes the names of uploaded files durable.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.dir.sync().map_err(|e| io_err(self.dir.path(), e))
    }

    /// Checkpoint `id` is gone: drops its references and deletes the files
    /// no other checkpoint refers to; returns how many were deleted.
    pub fn release(&self, id: u64) -> usize {
        let mut files = self.files();
        let mut unused = Vec::new();
        for (name, f) in files.iter_mut() {
            if f.users.remove(&id) && f.users.is_empty() {
                unused.push(name.clone());
            }
        }
        for name in &unused {
            files.remove(name);
            self.delete(name);
        }
        unused.len()
    }

    fn delete(&self, name: &str) {
        if let Err(e) = self.dir.remove_file(name)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot delete shared checkpoint file {}: {e}",
                self.dir.shown(name).display()
            );
        }
    }

    /// Rebuilds the counts from the `retained` checkpoints (after a start
    /// or a crash) and, with `delete_unused`, deletes every file in the
    /// folder none of them uses; returns the names deleted.
    pub fn recover(&self, retained: &[CheckpointMetadata], delete_unused: bool) -> Vec<String> {
        let mut files = self.files();
        files.clear();
        for m in retained {
            for s in m.operators.iter().flat_map(|o| &o.subtasks) {
                let Some(h) = &s.incremental else { continue };
                for f in &h.shared {
                    // A name that is not plain never reaches a deletion.
                    let Some(name) = f.shared_name() else {
                        continue;
                    };
                    files
                        .entry(name.to_owned())
                        .or_insert_with(|| Shared {
                            size: f.size,
                            checksum: f.checksum.clone(),
                            users: BTreeSet::new(),
                        })
                        .users
                        .insert(m.checkpoint_id);
                }
            }
        }
        let mut deleted = Vec::new();
        if !delete_unused {
            return deleted;
        }
        for name in self.dir.names().unwrap_or_default() {
            if !files.contains_key(&name) {
                self.delete(&name);
                deleted.push(name);
            }
        }
        if !deleted.is_empty() {
            tracing::info!(
                "deleted {} file(s) in {} that no retained checkpoint uses",
                deleted.len(),
                self.dir.path().display()
            );
        }
        deleted
    }

    /// The names of the files some checkpoint uses.
    #[cfg(test)]
    pub fn referenced(&self) -> BTreeSet<String> {
        self.files().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_a_file_when_its_last_user_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared =
            SharedFiles::new(Folder::open(&dir.path().join("shared"), None).expect("shared"));
        std::fs::write(dir.path().join("1.sst"), b"sst").expect("write");
        let src = Folder::open(dir.path(), None).expect("folder");
        shared.upload(1, "a-1.sst", &src, "1.sst").expect("upload");
        assert_eq!(shared.reference(1, "b-1.sst"), None);
        assert!(shared.reference(2, "a-1.sst").is_some());
        assert_eq!(shared.release(1), 0);
        assert!(shared.dir().join("a-1.sst").exists());
        assert_eq!(shared.release(2), 1);
        assert!(!shared.dir().join("a-1.sst").exists());
        // An orphan (a crash mid-upload) goes at the next recovery.
        std::fs::write(shared.dir().join("orphan.sst"), b"x").expect("write");
        assert_eq!(shared.recover(&[], false), Vec::<String>::new());
        assert_eq!(shared.recover(&[], true), vec!["orphan.sst".to_owned()]);
        assert!(shared.referenced().is_empty());
    }
}
