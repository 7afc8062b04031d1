//! Incremental checkpoints of an embedded backend: what a subtask hands the
//! checkpoint coordinator ([`NativeSnapshot`]: a folder of hard-linked
//! files) and what `_metadata` records of it ([`IncrementalHandle`]).
//!
//! Immutable files (RocksDB's SST files) go to the job's `shared/` folder
//! under a name unique to the RocksDB instance that wrote them, so that a
//! file already uploaded by an earlier checkpoint is referenced, not copied
//! again; the small mutable files (MANIFEST, CURRENT, OPTIONS) go into the
//! checkpoint's own folder.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::confined::Folder;
use crate::keygroup::KeyGroupRange;

/// One file of an incremental handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// Its name in the backend's working folder (for RocksDB, `000012.sst`).
    pub local: String,
    /// Where it is stored, relative to the checkpoint folder
    /// (`../shared/<name>` for a shared file).
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// xxh3-64 of its bytes, in hex.
    pub checksum: String,
}

/// How a state file's `file` refers to a file in the job's `shared/`
/// folder (a persistent format: `_metadata` files name shared files so).
pub const SHARED_PREFIX: &str = "../shared/";

/// Whether `name` is one plain file name (no folder, no `..`).
/// Whether `name` is a file name of its folder, not a path out of it.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

impl StateFile {
    /// Its name in `shared/`, if it is a shared file (`../shared/<name>`
    /// with a plain name).
    pub fn shared_name(&self) -> Option<&str> {
        self.file
            .strip_prefix(SHARED_PREFIX)
            .filter(|n| is_plain_name(n))
    }

    /// Refuses names that would reach outside the checkpoint's folder, the
    /// job's `shared/` folder or the working folder (a hostile
    /// `_metadata`).
    pub fn check_names(&self) -> Result<(), String> {
        let stored_ok = is_plain_name(&self.file) || self.shared_name().is_some();
        if is_plain_name(&self.local) && stored_ok {
            Ok(())
        } else {
            Err(format!(
                "_metadata names a state file outside the checkpoint: {:?} -> {:?}",
                self.file, self.local
            ))
        }
    }
}

/// What `_metadata` records about an incremental snapshot of one subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalHandle {
    /// The key groups of the subtask that wrote it (first, last).
    pub key_group_range: (u32, u32),
    /// The instance (working folder opening) that wrote it.
    pub instance: String,
    /// (state, key, namespace) entries it holds.
    pub entries: u64,
    /// Immutable files, in the job's `shared/` folder.
    pub shared: Vec<StateFile>,
    /// The other files, in the checkpoint's folder.
    pub private: Vec<StateFile>,
}

impl IncrementalHandle {
    /// Whether any key group of this handle lies in `range`.
    pub fn overlaps(&self, range: KeyGroupRange) -> bool {
        self.key_group_range.0 <= range.end && range.start <= self.key_group_range.1
    }

    /// Every file, shared and private.
    pub fn files(&self) -> impl Iterator<Item = &StateFile> {
        self.shared.iter().chain(&self.private)
    }

    /// Bytes of all its files: the full size of the state.
    pub fn size(&self) -> u64 {
        self.files().map(|f| f.size).sum()
    }
}

/// An incremental handle with the folder its relative paths start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedHandle {
    /// The handle.
    pub handle: IncrementalHandle,
    /// The checkpoint folder.
    pub base: PathBuf,
}

/// A file of a native snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeFile {
    /// Its name in the snapshot folder.
    pub local: String,
    /// For an immutable file, its name in `shared/`; `None`: it goes into
    /// the checkpoint's folder.
    pub shared: Option<String>,
}

/// A backend's own snapshot of one subtask for one checkpoint: a folder of
/// files (hard links into the live instance) that the coordinator uploads.
/// The folder is removed when this is dropped.
#[derive(Debug)]
pub struct NativeSnapshot {
    /// The subtask's key groups (first, last).
    pub range: (u32, u32),
    /// The instance that took it.
    pub instance: String,
    /// Entries it holds.
    pub entries: u64,
    /// The folder of the files.
    pub folder: PathBuf,
    /// The files.
    pub files: Vec<NativeFile>,
}

impl NativeSnapshot {
    /// The handle of this snapshot, before any file is stored.
    pub fn empty_handle(&self) -> IncrementalHandle {
        IncrementalHandle {
            key_group_range: self.range,
            instance: self.instance.clone(),
            entries: self.entries,
            shared: Vec::new(),
            private: Vec::new(),
        }
    }

    /// Copies its file `local` (of `src`, its folder opened) into `dir` as
    /// `<stem>.<local>` (fsynced) and returns what a handle records of it;
    /// an error names the target.
    pub fn copy_private(
        &self,
        src: &Folder,
        local: &str,
        dir: &Folder,
        stem: &str,
    ) -> Result<StateFile, (PathBuf, std::io::Error)> {
        let name = format!("{stem}.{local}");
        match dir.copy_in(src, local, &name, true) {
            Ok((size, checksum)) => Ok(StateFile {
                local: local.to_owned(),
                file: name,
                size,
                checksum,
            }),
            Err(e) => Err((dir.shown(&name), e)),
        }
    }

    /// The snapshot's folder, open, to copy its files from.
    pub fn open_folder(&self) -> std::io::Result<Folder> {
        Folder::open_existing(&self.folder)
    }
}

impl Drop for NativeSnapshot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.folder)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove snapshot folder {}: {e}",
                self.folder.display()
            );
        }
    }
}

/// A fresh instance name: 16 hex digits, unique in practice.
#[cfg_attr(
    not(any(feature = "rocksdb", test)),
    expect(dead_code, reason = "only the RocksDB backend names instances")
)]
pub fn new_instance_name() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}-{}-{seq}", std::process::id());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_with_the_checksum_of_the_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = Folder::open(dir.path(), None).expect("open");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("a"), &bytes).expect("write");
        let (size, sum) = folder.copy_in(&folder, "a", "b", true).expect("copy");
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sum, super::super::snapshot::checksum(&bytes));
        assert_eq!(std::fs::read(dir.path().join("b")).expect("read"), bytes);
        assert!(folder.copy_in(&folder, "missing", "b", false).is_err());
        assert!(
            dir.path().join("b").exists(),
            "a failed open of the source leaves the target alone"
        );
        assert_ne!(new_instance_name(), new_instance_name());
    }
}
