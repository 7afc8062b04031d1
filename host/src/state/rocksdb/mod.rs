//! The embedded RocksDB backend (`state.backend.type: rocksdb`): keyed
//! state larger than memory, one RocksDB instance per subtask in a working
//! folder of its own.
//!
//! - A column family per declared state (`state:<name>`).
//! - Every RocksDB key starts with its key group (2 bytes, big-endian), so
//!   one key group, or a range of them, is one ordered scan; then the
//!   element key and the namespace, each with a 4-byte big-endian length,
//!   and for map state the map key (the `keys` submodule).
//! - List state is one value of length-prefixed elements, appended with a
//!   merge operator (no read on append); map state is one RocksDB entry per
//!   map entry, so a map is iterated, not decoded whole.
//! - The write-ahead log is off: checkpoints, not the WAL, make state
//!   durable, as in Flink.
//!
//! Memory is bounded by [`RocksDbOptions`]: a block cache and the write
//! buffers (memtables) of each column family.
//!
//! Checkpoints are portable snapshots (every key group encoded, as the
//! hashmap backend does) or, with `state.backend.incremental`, RocksDB's own
//! files (the `incremental` submodule).

mod incremental;
mod keys;
mod options;
mod write_cache;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, Options, ReadOptions, WriteOptions};

use self::keys::{
    decode_list, encode_list, entry_key, key_group_prefix, list_element, map_entry_key, parse_key,
    prefix_end,
};
use self::options::{TtlFlags, family_options};
use self::write_cache::WriteCache;
use super::{
    EntryRef, EntryVisitor, KeyedStateBackend, MapEntries, StateError, StateId, StateKey, StateKind,
};
use crate::keygroup::KeyGroupRange;

pub use self::options::RocksDbOptions;

/// Hint of a value read as present.
const EXISTED: usize = 1;
/// Hint of a value read as absent.
const ABSENT: usize = 0;

/// A map being gathered from its entries: (key, namespace, entries).
type GatheredMap = (Vec<u8>, Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>);

/// A RocksDB error as a state error.
fn storage(e: rocksdb::Error) -> StateError {
    StateError::Storage(e.into_string())
}

/// How [`RocksDbBackend::write_counted`] writes an entry.
enum Write<'a> {
    /// Replaces the value.
    Put(&'a [u8]),
    /// Merges an operand into it (list append).
    Merge(Vec<u8>),
}

/// Keyed state of one subtask in an embedded RocksDB.
pub struct RocksDbBackend {
    db: DB,
    range: KeyGroupRange,
    states: Vec<(String, StateKind)>,
    cf_options: Options,
    write: WriteOptions,
    /// (state, key, namespace) entries held, kept exact.
    entries: usize,
    /// Value state written lately: its dirty entries are written as one
    /// batch before every snapshot (and stay, clean, to serve reads); when
    /// it outgrows its limit it is written and emptied.
    cache: WriteCache,
    /// Whether [`KeyedStateBackend::native_snapshot`] takes incremental
    /// snapshots.
    incremental: bool,
    /// The working folder.
    dir: PathBuf,
    /// This opening of the folder: names the SST files it uploads.
    instance: String,
    /// Names in `shared/` of the SST files a restore brought in, by local
    /// name: they are referenced again, not uploaded again.
    restored_shared: HashMap<String, String>,
    /// Per column family: whether compaction drops its expired entries.
    ttl_flags: TtlFlags,
    /// The options of the column families made with `create_cf`: RocksDB
    /// keeps pointers into them (the compaction filter) but the crate does
    /// not keep them alive, so they live as long as `db` (declared first,
    /// so dropped first).
    created_options: Vec<Options>,
    /// Removes the working folder once `db` (declared first, so dropped
    /// first) has closed.
    _folder: RemoveOnDrop,
}

/// Removes a folder when dropped.
#[derive(Debug)]
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove RocksDB folder {}: {e}", self.0.display());
        }
    }
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("path", &self.db.path())
            .field("range", &self.range)
            .field("states", &self.states)
            .field("entries", &self.entries)
            .finish()
    }
}

impl RocksDbBackend {
    /// Opens a fresh instance in `dir` (created; anything there is removed
    /// first: a working folder holds no state across runs, restores do).
    pub fn open(
        dir: &Path,
        range: KeyGroupRange,
        options: RocksDbOptions,
    ) -> Result<Self, StateError> {
        Self::restore(dir, range, options, &[])
    }

    /// Empties `dir` (created if missing).
    fn clear_folder(dir: &Path) -> Result<(), StateError> {
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
    fn open_db(dir: &Path, cf_options: &Options, flags: &mut TtlFlags) -> Result<DB, StateError> {
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
    fn over(
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
            cf_options,
            write,
            entries,
            cache: WriteCache::new(options.write_cache_bytes),
            incremental: options.incremental,
            dir: dir.to_path_buf(),
            instance: crate::state::incremental::new_instance_name(),
            restored_shared,
            ttl_flags,
            created_options: Vec::new(),
            _folder: RemoveOnDrop(dir.to_path_buf()),
        }
    }

    /// An instance with default options in a fresh temporary folder,
    /// removed with it.
    pub fn temporary(range: KeyGroupRange) -> Result<Self, StateError> {
        Self::temporary_with(range, RocksDbOptions::default())
    }

    /// An instance with `options` in a fresh temporary folder, removed
    /// with it.
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

    fn cf_name(name: &str) -> String {
        format!("state:{name}")
    }

    /// The column family of `state`, checked to be of `kind`.
    fn cf(&self, state: StateId, kind: StateKind) -> Result<&ColumnFamily, StateError> {
        let (name, declared) = self
            .states
            .get(state as usize)
            .ok_or(StateError::UnknownState(state))?;
        if *declared != kind {
            return Err(StateError::WrongKind {
                name: name.clone(),
                kind: *declared,
                used: kind,
            });
        }
        self.db
            .cf_handle(&Self::cf_name(name))
            .ok_or_else(|| StateError::Storage(format!("column family of `{name}` is missing")))
    }

    /// Creates column family `family` unless the database has it (a
    /// restored one does), with its TTL compaction filter.
    fn ensure_family(&mut self, family: &str) -> Result<(), StateError> {
        if self.db.cf_handle(family).is_none() {
            let options = family_options(&self.cf_options, &mut self.ttl_flags, family);
            self.db.create_cf(family, &options).map_err(storage)?;
            self.created_options.push(options);
        }
        Ok(())
    }

    /// Whether `at` lies in the key groups this backend owns.
    fn check(&self, at: &StateKey<'_>) -> Result<(), StateError> {
        if self.range.contains(at.key_group) {
            Ok(())
        } else {
            Err(StateError::KeyGroupOutOfRange {
                key_group: at.key_group,
                range: self.range,
            })
        }
    }

    fn exists(&self, cf: &ColumnFamily, key: &[u8]) -> Result<bool, StateError> {
        // The bloom filters and the memtable answer "surely not" without
        // reading a block, which is the common answer for a new key.
        if !self.db.key_may_exist_cf(cf, key) {
            return Ok(false);
        }
        Ok(self.db.get_pinned_cf(cf, key).map_err(storage)?.is_some())
    }

    /// Writes value state through the cache (a limit of 0 flushes it at
    /// once); `existed` says whether the entry existed before (`None`:
    /// find out).
    fn put_value(
        &mut self,
        state: StateId,
        at: &StateKey<'_>,
        value: &[u8],
        existed: Option<bool>,
    ) -> Result<(), StateError> {
        self.check(at)?;
        let cf = self.cf(state, StateKind::Value)?;
        let key = entry_key(at);
        if !self.cache.update(state, &key, value) {
            let new = match existed {
                Some(e) => !e,
                None => !self.exists(cf, &key)?,
            };
            self.entries += usize::from(new);
            self.cache.insert(state, key, value);
        }
        if self.cache.is_over_limit() {
            self.evict()?;
        }
        Ok(())
    }

    /// Writes every dirty cached value to RocksDB in one batch; once it is
    /// written they stay in the cache, clean.
    fn flush(&self) -> Result<(), StateError> {
        if !self.cache.is_dirty() {
            return Ok(());
        }
        let mut batch = rocksdb::WriteBatch::default();
        self.cache.each_dirty(&mut |state, dirty| {
            let cf = self.cf(state, StateKind::Value)?;
            for (key, value) in dirty {
                batch.put_cf(cf, key, value);
            }
            Ok(())
        })?;
        self.db.write_opt(batch, &self.write).map_err(storage)?;
        self.cache.mark_clean();
        Ok(())
    }

    /// Writes the dirty cached values and empties the cache.
    fn evict(&self) -> Result<(), StateError> {
        self.flush()?;
        self.cache.clear();
        Ok(())
    }

    /// Writes the entry at `at` of `state` and counts it if it is new.
    fn write_counted(
        &mut self,
        state: StateId,
        kind: StateKind,
        at: &StateKey<'_>,
        write: Write<'_>,
    ) -> Result<(), StateError> {
        let cf = self.cf(state, kind)?;
        let key = entry_key(at);
        let new = !self.exists(cf, &key)?;
        match write {
            Write::Put(v) => self.db.put_cf_opt(cf, &key, v, &self.write),
            Write::Merge(v) => self.db.merge_cf_opt(cf, &key, v, &self.write),
        }
        .map_err(storage)?;
        if new {
            self.entries += 1;
        }
        Ok(())
    }

    /// Whether any RocksDB key in `cf` starts with `prefix`.
    fn any_with_prefix(&self, cf: &ColumnFamily, prefix: &[u8]) -> Result<bool, StateError> {
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek(prefix);
        it.status().map_err(storage)?;
        Ok(it.key().is_some_and(|k| k.starts_with(prefix)))
    }

    /// Calls `f(key, value)` for every RocksDB key in `cf` that starts with
    /// `prefix`, in key order.
    fn scan(
        &self,
        cf: &ColumnFamily,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        let mut read = ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let iter =
            self.db
                .iterator_cf_opt(cf, read, IteratorMode::From(prefix, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(storage)?;
            if !k.starts_with(prefix) {
                break;
            }
            f(&k, &v);
        }
        Ok(())
    }
}

impl KeyedStateBackend for RocksDbBackend {
    fn register(&mut self, name: &str, kind: StateKind) -> Result<StateId, StateError> {
        if let Some(id) = super::declared_id(&self.states, name, kind)? {
            return Ok(id);
        }
        // A restored database has the column family already.
        self.ensure_family(&Self::cf_name(name))?;
        self.states.push((name.to_owned(), kind));
        Ok((self.states.len() - 1) as StateId)
    }

    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn declared(&self) -> &[(String, StateKind)] {
        &self.states
    }

    fn visit_key_group(&self, key_group: u32, visit: &mut EntryVisitor<'_>) {
        if !self.range.contains(key_group) {
            return;
        }
        if let Err(e) = self.flush() {
            tracing::error!("rocksdb: cannot flush cached writes before a scan: {e}");
        }
        let prefix = key_group_prefix(key_group);
        for (id, (_, kind)) in self.states.iter().enumerate() {
            let Ok(cf) = self.cf(id as StateId, *kind) else {
                continue;
            };
            let state = id as StateId;
            // A map's entries arrive in order; they are gathered per (key,
            // namespace) and handed over when the next one starts.
            let mut map: Option<GatheredMap> = None;
            let scanned = self.scan(cf, &prefix, &mut |k, v| {
                let Some((key, namespace, map_key)) = parse_key(k) else {
                    tracing::error!("rocksdb: a key of state {state} is damaged; skipped");
                    return;
                };
                match kind {
                    StateKind::Value => visit(state, key, namespace, EntryRef::Value(v)),
                    StateKind::List => match decode_list(v) {
                        Ok(list) => visit(state, key, namespace, EntryRef::List(&list)),
                        Err(e) => tracing::error!("rocksdb: state {state}: {e}; skipped"),
                    },
                    StateKind::Map => {
                        let same = map
                            .as_ref()
                            .is_some_and(|(k0, n0, _)| k0 == key && n0 == namespace);
                        if !same {
                            if let Some((k0, n0, m)) = map.take() {
                                visit(state, &k0, &n0, EntryRef::Map(&m));
                            }
                            map = Some((key.to_vec(), namespace.to_vec(), BTreeMap::new()));
                        }
                        if let Some((_, _, m)) = map.as_mut() {
                            m.insert(map_key.to_vec(), v.to_vec());
                        }
                    }
                }
            });
            if let Some((k0, n0, m)) = map.take() {
                visit(state, &k0, &n0, EntryRef::Map(&m));
            }
            if let Err(e) = scanned {
                tracing::error!("rocksdb: scanning key group {key_group}: {e}");
            }
        }
    }

    fn value_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        self.check(&at)?;
        let cf = self.cf(state, StateKind::Value)?;
        let key = entry_key(&at);
        if let Some(v) = self.cache.get(state, &key) {
            return Ok(Some(Cow::Owned(v)));
        }
        let v = self.db.get_pinned_cf(cf, key).map_err(storage)?;
        Ok(v.map(|v| Cow::Owned(v.to_vec())))
    }

    /// The hint says whether the entry existed when it was read
    /// ([`EXISTED`]) or not ([`ABSENT`]), so that writing it back needs no
    /// second read to keep the entry count.
    fn value_get_hinted(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<super::HintedValue<'_>, StateError> {
        let value = self.value_get(state, at)?;
        let hint = if value.is_some() { EXISTED } else { ABSENT };
        Ok((value, Some(hint)))
    }

    /// One `multi_get` for the whole batch.
    fn value_get_many(
        &self,
        state: StateId,
        keys: &[(u32, &[u8])],
        visit: &mut super::ValueVisitor<'_>,
    ) -> Result<(), StateError> {
        let cf = self.cf(state, StateKind::Value)?;
        let mut encoded = Vec::with_capacity(keys.len());
        for &(key_group, key) in keys {
            let at = StateKey {
                key_group,
                key,
                namespace: &[],
            };
            self.check(&at)?;
            encoded.push(entry_key(&at));
        }
        // Cached writes first; one multi_get for the rest.
        let cached: Vec<Option<Vec<u8>>> =
            encoded.iter().map(|k| self.cache.get(state, k)).collect();
        let misses: Vec<&Vec<u8>> = encoded
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(k, _)| k)
            .collect();
        let mut read = self.db.batched_multi_get_cf(cf, misses, false).into_iter();
        for c in cached {
            let value: Option<Vec<u8>> = match c {
                Some(v) => Some(v),
                None => read
                    .next()
                    .transpose()
                    .map_err(storage)?
                    .flatten()
                    .map(|v| v.to_vec()),
            };
            let hint = if value.is_some() { EXISTED } else { ABSENT };
            visit(value.as_deref(), Some(hint));
        }
        Ok(())
    }

    fn value_put_hinted(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
        hint: Option<usize>,
    ) -> Result<(), StateError> {
        // An entry read as existing is trusted to exist still (the write
        // goes to its key whatever the hint); any other hint is checked.
        let existed = (hint == Some(EXISTED)).then_some(true);
        self.put_value(state, &at, value, existed)
    }

    fn value_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        self.put_value(state, &at, value, None)
    }

    fn list_get(&self, state: StateId, at: StateKey<'_>) -> Result<Vec<Vec<u8>>, StateError> {
        self.check(&at)?;
        let cf = self.cf(state, StateKind::List)?;
        match self.db.get_pinned_cf(cf, entry_key(&at)).map_err(storage)? {
            Some(v) => decode_list(&v),
            None => Ok(Vec::new()),
        }
    }

    fn list_add(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        self.check(&at)?;
        let element = list_element(value);
        self.write_counted(state, StateKind::List, &at, Write::Merge(element))
    }

    fn list_set(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        values: Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        self.check(&at)?;
        if values.is_empty() {
            return self.clear(state, at);
        }
        let encoded = encode_list(&values);
        self.write_counted(state, StateKind::List, &at, Write::Put(&encoded))
    }

    fn map_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        self.check(&at)?;
        let cf = self.cf(state, StateKind::Map)?;
        let key = map_entry_key(entry_key(&at), map_key);
        let v = self.db.get_pinned_cf(cf, key).map_err(storage)?;
        Ok(v.map(|v| Cow::Owned(v.to_vec())))
    }

    fn map_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        self.check(&at)?;
        let cf = self.cf(state, StateKind::Map)?;
        let prefix = entry_key(&at);
        let new = !self.any_with_prefix(cf, &prefix)?;
        let key = map_entry_key(prefix, map_key);
        self.db
            .put_cf_opt(cf, key, value, &self.write)
            .map_err(storage)?;
        if new {
            self.entries += 1;
        }
        Ok(())
    }

    fn map_remove(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<(), StateError> {
        self.check(&at)?;
        let cf = self.cf(state, StateKind::Map)?;
        let prefix = entry_key(&at);
        let existed = self.any_with_prefix(cf, &prefix)?;
        let key = map_entry_key(prefix.clone(), map_key);
        self.db
            .delete_cf_opt(cf, key, &self.write)
            .map_err(storage)?;
        if existed && !self.any_with_prefix(cf, &prefix)? {
            self.entries -= 1;
        }
        Ok(())
    }

    fn map_entries(&self, state: StateId, at: StateKey<'_>) -> Result<MapEntries, StateError> {
        self.check(&at)?;
        let cf = self.cf(state, StateKind::Map)?;
        let prefix = entry_key(&at);
        let mut out = Vec::new();
        self.scan(cf, &prefix, &mut |k, v| {
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
        })?;
        Ok(out)
    }

    fn clear(&mut self, state: StateId, at: StateKey<'_>) -> Result<(), StateError> {
        self.check(&at)?;
        let (_, kind) = *self
            .states
            .get(state as usize)
            .ok_or(StateError::UnknownState(state))?;
        let cf = self.cf(state, kind)?;
        let key = entry_key(&at);
        let was_cached = kind == StateKind::Value && self.cache.remove(state, &key);
        let existed = was_cached
            || match kind {
                StateKind::Map => self.any_with_prefix(cf, &key)?,
                _ => self.exists(cf, &key)?,
            };
        if !existed {
            return Ok(());
        }
        match kind {
            StateKind::Map => {
                let mut batch = rocksdb::WriteBatch::default();
                match prefix_end(&key) {
                    Some(end) => batch.delete_range_cf(cf, &key, &end),
                    None => batch.delete_cf(cf, &key),
                }
                self.db.write_opt(batch, &self.write).map_err(storage)?;
            }
            _ => self
                .db
                .delete_cf_opt(cf, &key, &self.write)
                .map_err(storage)?,
        }
        self.entries -= 1;
        Ok(())
    }

    /// Value and map state only: a list's elements carry their stamps
    /// inside one RocksDB value, which a compaction filter cannot rewrite.
    fn expire_in_background(&mut self, state: StateId) {
        let Some((name, kind)) = self.states.get(state as usize) else {
            return;
        };
        if *kind == StateKind::List {
            return;
        }
        if let Some(flag) = self.ttl_flags.get(&Self::cf_name(name)) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn native_snapshot(
        &self,
        id: u64,
    ) -> Result<Option<crate::state::incremental::NativeSnapshot>, StateError> {
        // Cached writes reach RocksDB before any snapshot, and a failure
        // fails the snapshot (the portable one's scan cannot report it).
        self.flush()?;
        if !self.incremental {
            return Ok(None);
        }
        self.checkpoint_files(id).map(Some)
    }

    fn entry_count(&self) -> usize {
        self.entries
    }

    fn size_bytes(&self) -> usize {
        // RocksDB's own estimate of live data plus what sits in memtables.
        let mut total = 0u64;
        for (name, _) in &self.states {
            let Some(cf) = self.db.cf_handle(&Self::cf_name(name)) else {
                continue;
            };
            for property in [
                "rocksdb.estimate-live-data-size",
                "rocksdb.cur-size-all-mem-tables",
            ] {
                total += self
                    .db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
            }
        }
        usize::try_from(total)
            .unwrap_or(usize::MAX)
            .saturating_add(self.cache.bytes())
    }
}

#[cfg(test)]
mod tests {
    crate::state_conformance_tests!(
        |range| super::RocksDbBackend::temporary(range).expect("a temporary rocksdb")
    );

    /// Every write straight to RocksDB.
    mod without_write_cache {
        crate::state_conformance_tests!(|range| {
            let options = crate::state::rocksdb::RocksDbOptions {
                write_cache_bytes: 0,
                ..Default::default()
            };
            crate::state::rocksdb::RocksDbBackend::temporary_with(range, options)
                .expect("a temporary rocksdb")
        });
    }

    /// A cache so small that every write flushes it.
    mod with_a_tiny_write_cache {
        crate::state_conformance_tests!(|range| {
            let options = crate::state::rocksdb::RocksDbOptions {
                write_cache_bytes: 1,
                ..Default::default()
            };
            crate::state::rocksdb::RocksDbBackend::temporary_with(range, options)
                .expect("a temporary rocksdb")
        });
    }
}

#[cfg(test)]
mod ttl_tests {
    use super::*;
    use crate::state::ttl::stamp;

    fn keys_in(db: &DB, family: &str) -> usize {
        let cf = db.cf_handle(family).expect("family");
        db.iterator_cf(cf, IteratorMode::Start).count()
    }

    #[test]
    fn compaction_drops_expired_values_and_map_entries() {
        let range = KeyGroupRange { start: 0, end: 0 };
        let mut b = RocksDbBackend::temporary(range).expect("open");
        let v = b.register("v", StateKind::Value).expect("v");
        let m = b.register("m", StateKind::Map).expect("m");
        let plain = b.register("plain", StateKind::Value).expect("plain");
        b.expire_in_background(v);
        b.expire_in_background(m);
        let now = crate::clock::epoch_ms();
        for i in 0..100u32 {
            let key = i.to_be_bytes();
            let at = StateKey {
                key_group: 0,
                key: &key,
                namespace: b"",
            };
            // Half expired a day ago, half expire in a day.
            let expiry = if i % 2 == 0 {
                now - 86_400_000
            } else {
                now + 86_400_000
            };
            b.value_put(v, at, &stamp(b"x", expiry)).expect("put");
            b.map_put(m, at, b"k", &stamp(b"y", expiry)).expect("map");
            b.value_put(plain, at, &stamp(b"z", now - 86_400_000))
                .expect("put");
        }
        b.flush().expect("flush the write cache");
        for family in ["state:v", "state:m", "state:plain"] {
            let cf = b.db.cf_handle(family).expect("family");
            b.db.flush_cf(cf).expect("flush");
            b.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        assert_eq!(keys_in(&b.db, "state:v"), 50, "expired values dropped");
        assert_eq!(keys_in(&b.db, "state:m"), 50, "expired map entries dropped");
        assert_eq!(
            keys_in(&b.db, "state:plain"),
            100,
            "a state without TTL keeps everything"
        );
    }
}
