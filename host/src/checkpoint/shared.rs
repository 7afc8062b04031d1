//! The job's `shared/` folder (on disk, or a prefix in a bucket): files of
//! incremental checkpoints, each reference counted by the checkpoints
//! (pending or retained) that use it.
//!
//! A file is uploaded once, by the first checkpoint that needs it, and
//! referenced by later ones; when the last checkpoint that refers to it is
//! discarded (subsumed, failed or abandoned), it is deleted. After a crash
//! the counts are rebuilt from the retained `_metadata` files and every
//! other file in the folder is deleted, so nothing is orphaned (Flink's
//! FLINK-28984 and FLINK-30461 are this going wrong).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::fs::{StorageError, io_err, object_err};
use super::metadata::CheckpointMetadata;
use crate::confined::Folder;
use crate::objectstore::Bucket;

/// Where a job's shared files are.
#[derive(Debug)]
pub enum SharedDir {
    /// `<job-dir>/shared`, open.
    Local(Folder),
    /// Keys `<prefix>/<name>` of a bucket.
    Object {
        /// The bucket.
        bucket: Arc<Bucket>,
        /// `<job key>/shared`.
        prefix: String,
    },
}

impl SharedDir {
    /// `name` here, for messages.
    fn shown(&self, name: &str) -> String {
        match self {
            SharedDir::Local(dir) => dir.shown(name).display().to_string(),
            SharedDir::Object { bucket, prefix } => bucket.uri(&format!("{prefix}/{name}")),
        }
    }

    /// Stores file `src_name` of `src` as `name`, durably; its size and
    /// checksum.
    fn store(
        &self,
        src: &Folder,
        src_name: &str,
        name: &str,
    ) -> Result<(u64, String), StorageError> {
        match self {
            SharedDir::Local(dir) => dir
                .copy_in(src, src_name, name, true)
                .map_err(|e| io_err(&dir.shown(name), e)),
            SharedDir::Object { bucket, prefix } => {
                let (mut file, _) = src
                    .open_regular(src_name)
                    .map_err(|e| io_err(&src.shown(src_name), e))?;
                bucket
                    .upload(&format!("{prefix}/{name}"), &mut file)
                    .map_err(object_err)
            }
        }
    }

    /// Deletes `name`; one already gone is no error.
    fn remove(&self, name: &str) -> Result<(), String> {
        match self {
            SharedDir::Local(dir) => match dir.remove_file(name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
            SharedDir::Object { bucket, prefix } => bucket
                .delete(&format!("{prefix}/{name}"))
                .map_err(|e| e.to_string()),
        }
    }

    /// The names of the files here (none if they cannot be listed).
    fn names(&self) -> Vec<String> {
        match self {
            SharedDir::Local(dir) => dir.names().unwrap_or_default(),
            SharedDir::Object { bucket, prefix } => match bucket.list(prefix) {
                Ok(listed) => listed
                    .iter()
                    .filter_map(|o| o.key.strip_prefix(prefix.as_str()))
                    .filter_map(|n| n.strip_prefix('/'))
                    .map(str::to_owned)
                    .collect(),
                Err(e) => {
                    tracing::warn!("cannot list the shared checkpoint files: {e}");
                    Vec::new()
                }
            },
        }
    }
}

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
    dir: SharedDir,
    files: Mutex<HashMap<String, Shared>>,
}

impl SharedFiles {
    /// The registry of `dir` (`<job-dir>/shared`), empty until
    /// [`SharedFiles::recover`].
    pub fn new(dir: SharedDir) -> Self {
        SharedFiles {
            dir,
            files: Mutex::default(),
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Shared>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
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
        let (size, checksum) = self.dir.store(src, src_name, name)?;
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
        match &self.dir {
            SharedDir::Local(dir) => dir.sync().map_err(|e| io_err(dir.path(), e)),
            // A completed put is durable.
            SharedDir::Object { .. } => Ok(()),
        }
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
        if let Err(e) = self.dir.remove(name) {
            tracing::warn!(
                "cannot delete shared checkpoint file {}: {e}",
                self.dir.shown(name)
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
        for name in self.dir.names() {
            if !files.contains_key(&name) {
                self.delete(&name);
                deleted.push(name);
            }
        }
        if !deleted.is_empty() {
            tracing::info!(
                "deleted {} shared file(s) that no retained checkpoint uses, such as {}",
                deleted.len(),
                self.dir.shown(&deleted[0])
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
        let folder = dir.path().join("shared");
        let shared = SharedFiles::new(SharedDir::Local(
            Folder::open(&folder, None).expect("shared"),
        ));
        std::fs::write(dir.path().join("1.sst"), b"sst").expect("write");
        let src = Folder::open(dir.path(), None).expect("folder");
        shared.upload(1, "a-1.sst", &src, "1.sst").expect("upload");
        assert_eq!(shared.reference(1, "b-1.sst"), None);
        assert!(shared.reference(2, "a-1.sst").is_some());
        assert_eq!(shared.release(1), 0);
        assert!(folder.join("a-1.sst").exists());
        assert_eq!(shared.release(2), 1);
        assert!(!folder.join("a-1.sst").exists());
        // An orphan (a crash mid-upload) goes at the next recovery.
        std::fs::write(folder.join("orphan.sst"), b"x").expect("write");
        assert_eq!(shared.recover(&[], false), Vec::<String>::new());
        assert_eq!(shared.recover(&[], true), vec!["orphan.sst".to_owned()]);
        assert!(shared.referenced().is_empty());
    }
}
