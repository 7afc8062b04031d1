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

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rocksdb::compaction_filter::Decision as CompactionDecision;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, DB, Direction, IteratorMode, MergeOperands, Options,
    ReadOptions, WriteOptions,
};

use self::keys::{
    decode_list, encode_list, entry_key, key_group_prefix, list_element, map_entry_key, parse_key,
    prefix_end,
};
use super::{
    EntryRef, EntryVisitor, KeyedStateBackend, MapEntries, StateError, StateId, StateKey, StateKind,
};
use crate::keygroup::KeyGroupRange;

/// Memory settings of one RocksDB instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksDbOptions {
    /// Block cache for reads (`state.backend.rocksdb.block.cache-size`).
    pub block_cache_bytes: usize,
    /// Size of one memtable (`state.backend.rocksdb.writebuffer.size`).
    pub write_buffer_bytes: usize,
    /// Memtables per column family (`state.backend.rocksdb.writebuffer.count`).
    pub write_buffer_count: i32,
    /// Value-state writes held in memory before they go to RocksDB in one
    /// batch (`state.backend.rocksdb.write-cache.size`; 0: none).
    pub write_cache_bytes: usize,
    /// Checkpoints are RocksDB's own files, uploaded incrementally
    /// (`state.backend.incremental`).
    pub incremental: bool,
}

impl Default for RocksDbOptions {
    /// Flink's defaults: 8 MiB of block cache, two 64 MiB write buffers.
    fn default() -> Self {
        RocksDbOptions {
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 64 << 20,
            write_buffer_count: 2,
            write_cache_bytes: 32 << 20,
            incremental: false,
        }
    }
}

/// Hint of a value read as present.
const EXISTED: usize = 1;
/// Hint of a value read as absent.
const ABSENT: usize = 0;

/// The name of the list-append merge operator, stored in RocksDB's options.
const LIST_APPEND: &str = "weir-list-append";

/// Appends list elements: each operand is one length-prefixed element, so
/// concatenation is the whole merge (and is associative).
fn list_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for op in operands {
        out.extend_from_slice(op);
    }
    Some(out)
}

/// A value in the write cache, and whether RocksDB has it yet.
#[derive(Debug)]
struct CachedValue {
    value: Vec<u8>,
    dirty: bool,
}

/// Cached value state: per state id, RocksDB key to value (looked up by
/// `&[u8]`, so a read allocates nothing; foldhash, not SipHash).
type WriteCache = Vec<hashbrown::HashMap<Vec<u8>, CachedValue>>;

/// Bytes a cached entry is counted for beyond its key and value.
const CACHE_ENTRY_OVERHEAD: usize = 48;

/// Per column family: whether its compaction filter drops expired entries.
type TtlFlags = HashMap<String, Arc<AtomicBool>>;

/// A map being gathered from its entries: (key, namespace, entries).
type GatheredMap = (Vec<u8>, Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>);

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
    /// Value state written lately, by (state, RocksDB key): a key updated
    /// many times between flushes is written to RocksDB once. Its dirty
    /// entries are written as one batch before every snapshot (and stay,
    /// clean, to serve reads); when it outgrows `write_cache_limit` it is
    /// written and emptied.
    cache: RefCell<WriteCache>,
    /// Bytes the cache holds (keys, values and overhead).
    cache_bytes: Cell<usize>,
    /// Whether any cached entry is dirty.
    cache_dirty: Cell<bool>,
    write_cache_limit: usize,
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

    /// The column-family options every state gets.
    fn cf_options(options: &RocksDbOptions) -> Options {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        let mut cf_options = Options::default();
        cf_options.set_block_based_table_factory(&table);
        cf_options.set_write_buffer_size(options.write_buffer_bytes);
        cf_options.set_max_write_buffer_number(options.write_buffer_count.max(2));
        cf_options.set_merge_operator_associative(LIST_APPEND, list_append);
        // Without the write cache, a value written again while it is still
        // in the memtable replaces the old one in place instead of adding a
        // version: a keyed count updates the same keys over and over, and
        // the skip list would grow by one entry per update. The cache
        // already writes each key once per flush, and in-place updates cost
        // a search per write, so with it they are off.
        cf_options.set_inplace_update_support(options.write_cache_bytes == 0);
        cf_options.set_allow_concurrent_memtable_write(false);
        cf_options
    }

    /// The options of column family `name`: `base` with a compaction filter
    /// that drops expired entries once the family's state is declared with
    /// a time-to-live (its flag in `flags`).
    fn family_options(base: &Options, flags: &mut TtlFlags, name: &str) -> Options {
        let flag = flags.entry(name.to_owned()).or_default().clone();
        let mut options = base.clone();
        options.set_compaction_filter("weir-ttl", move |_level: u32, _key: &[u8], value: &[u8]| {
            if flag.load(Ordering::Relaxed)
                && crate::state::ttl::is_expired(value, crate::clock::epoch_ms())
            {
                CompactionDecision::Remove
            } else {
                CompactionDecision::Keep
            }
        });
        options
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
                let options = Self::family_options(cf_options, flags, &n);
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
            cache: RefCell::default(),
            cache_bytes: Cell::new(0),
            cache_dirty: Cell::new(false),
            write_cache_limit: options.write_cache_bytes,
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

    /// Writes every dirty cached value to RocksDB in one batch; once it is
    /// written they stay in the cache, clean.
    fn flush(&self) -> Result<(), StateError> {
        if !self.cache_dirty.get() {
            return Ok(());
        }
        let mut cache = self.cache.borrow_mut();
        let mut batch = rocksdb::WriteBatch::default();
        for (state, entries) in cache.iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let cf = self.cf(state as StateId, StateKind::Value)?;
            // In key order: the memtable's skip list inserts a sorted run
            // next to the previous key instead of searching from the top.
            let mut dirty: Vec<(&Vec<u8>, &CachedValue)> =
                entries.iter().filter(|(_, c)| c.dirty).collect();
            dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, cached) in dirty {
                batch.put_cf(cf, key, &cached.value);
            }
        }
        self.db.write_opt(batch, &self.write).map_err(storage)?;
        for cached in cache.iter_mut().flat_map(|m| m.values_mut()) {
            cached.dirty = false;
        }
        self.cache_dirty.set(false);
        Ok(())
    }

    /// Writes the dirty cached values and empties the cache.
    fn evict(&self) -> Result<(), StateError> {
        self.flush()?;
        self.cache.borrow_mut().iter_mut().for_each(|m| m.clear());
        self.cache_bytes.set(0);
        Ok(())
    }

    /// The cached value of value state, if there is one.
    fn cached(&self, state: StateId, key: &[u8]) -> Option<Vec<u8>> {
        self.cache
            .borrow()
            .get(state as usize)?
            .get(key)
            .map(|c| c.value.clone())
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
        let mut cache = self.cache.borrow_mut();
        if cache.len() <= state as usize {
            cache.resize_with(state as usize + 1, hashbrown::HashMap::new);
        }
        let map = &mut cache[state as usize];
        let bytes = self.cache_bytes.get();
        if let Some(cached) = map.get_mut(key.as_slice()) {
            // Cached (dirty or clean) means RocksDB or the cache has it.
            self.cache_bytes
                .set((bytes + value.len()).saturating_sub(cached.value.len()));
            cached.value.clear();
            cached.value.extend_from_slice(value);
            cached.dirty = true;
        } else {
            let new = match existed {
                Some(e) => !e,
                None => !self.exists(cf, &key)?,
            };
            self.entries += usize::from(new);
            self.cache_bytes
                .set(bytes + key.len() + value.len() + CACHE_ENTRY_OVERHEAD);
            map.insert(
                key,
                CachedValue {
                    value: value.to_vec(),
                    dirty: true,
                },
            );
        }
        drop(cache);
        self.cache_dirty.set(true);
        if self.cache_bytes.get() > self.write_cache_limit {
            self.evict()?;
        }
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
        let cf = Self::cf_name(name);
        if self.db.cf_handle(&cf).is_none() {
            let options = Self::family_options(&self.cf_options, &mut self.ttl_flags, &cf);
            self.db.create_cf(cf, &options).map_err(storage)?;
            self.created_options.push(options);
        }
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
        if let Some(v) = self.cached(state, &key) {
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
        let cached: Vec<Option<Vec<u8>>> = encoded.iter().map(|k| self.cached(state, k)).collect();
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
        let removed = if kind == StateKind::Value {
            self.cache
                .borrow_mut()
                .get_mut(state as usize)
                .and_then(|m| m.remove(&key))
        } else {
            None
        };
        if let Some(r) = &removed {
            let bytes = key.len() + r.value.len() + CACHE_ENTRY_OVERHEAD;
            self.cache_bytes
                .set(self.cache_bytes.get().saturating_sub(bytes));
        }
        let was_cached = removed.is_some();
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
            .saturating_add(self.cache_bytes.get())
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
