//! Opening an instance of the RocksDB backend: a new one in an emptied
//! working folder or a temporary one, the database with every column family
//! it has, and the backend over it. A restore from checkpoint files is in
//! the `incremental` submodule.

use std::collections::HashMap;
use std::path::Path;

use rocksdb::{DB, Options, WriteOptions};

use super::options::{TtlFlags, family_options};
use super::write_cache::WriteCache;
use super::{RemoveOnDrop, RocksDbBackend, RocksDbOptions, storage};
use crate::keygroup::KeyGroupRange;
use crate::state::StateError;

use super::limit::SizeLimit;

impl RocksDbBackend {
    /// Opens a fresh instance in `dir` (created; anything there is removed
    /// first: a working folder holds no state across runs, restores do).
    #[cfg(test)]
    pub fn open(
        dir: &Path,
        range: KeyGroupRange,
        options: RocksDbOptions,
    ) -> Result<Self, StateError> {
        Self::restore(dir, range, options, &[])
    }

    /// Empties `dir` (created if missing).
    pub(super) fn clear_folder(dir: &Path) -> Result<(), StateError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| {
                StateError::Storage(format!("cannot clear the working folder: {e}"))
            })?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Storage(format!("cannot create the working folder: {e}")))
    }

    /// Opens the database in `dir` (new, or restored files) with every
    /// column family it has; their TTL flags go into `flags`.
    pub(super) fn open_db(
        dir: &Path,
        cf_options: &Options,
        flags: &mut TtlFlags,
    ) -> Result<DB, StateError> {
        let mut db_options = cf_options.clone();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        // A new database has no list yet.
        let families = DB::list_cf(&db_options, dir).unwrap_or_default();
        let descriptors: Vec<rocksdb::ColumnFamilyDescriptor> = families
            .into_iter()
            .filter(|n| n != rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .map(|n| {
                let options = family_options(cf_options, flags, &n);
                rocksdb::ColumnFamilyDescriptor::new(n, options)
            })
            .collect();
        DB::open_cf_descriptors(&db_options, dir, descriptors).map_err(storage)
    }

    /// The backend over an opened database.
    pub(super) fn over(
        (db, ttl_flags): (DB, TtlFlags),
        dir: &Path,
        range: KeyGroupRange,
        options: &RocksDbOptions,
        cf_options: Options,
        entries: usize,
        restored_shared: HashMap<String, String>,
    ) -> Self {
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        RocksDbBackend {
            db,
            range,
            states: Vec::new(),
            families: Vec::new(),
            cf_options,
            write,
            entries,
            cache: WriteCache::new(options.write_cache_bytes),
            incremental: options.incremental,
            dir: dir.to_path_buf(),
            instance: crate::state::incremental::new_instance_name(),
            restored_shared,
            ttl_flags,
            limit: SizeLimit::new(options.max_bytes),
            created_options: Vec::new(),
            _folder: RemoveOnDrop(dir.to_path_buf()),
        }
    }

    /// An instance with default options in a fresh temporary folder,
    /// removed with it.
    #[cfg(test)]
    pub fn temporary(range: KeyGroupRange) -> Result<Self, StateError> {
        Self::temporary_with(range, RocksDbOptions::default())
    }

    /// An instance with `options` in a fresh temporary folder, removed
    /// with it.
    #[cfg(test)]
    pub fn temporary_with(
        range: KeyGroupRange,
        options: RocksDbOptions,
    ) -> Result<Self, StateError> {
        let dir = tempfile::Builder::new()
            .prefix("weir-rocksdb-")
            .tempdir()
            .map_err(|e| StateError::Storage(format!("no temporary folder: {e}")))?
            .keep();
        Self::open(&dir, range, options)
    }
}
