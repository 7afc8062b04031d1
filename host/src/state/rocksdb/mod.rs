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
//! - Value state is read and written through a write cache (the `values`
//!   and `write_cache` submodules).
//!
//! Memory is bounded by [`RocksDbOptions`]: a block cache and the write
//! buffers (memtables) of each column family (the `options` submodule).
//!
//! Checkpoints are portable snapshots (every key group encoded, as the
//! hashmap backend does) or, with `state.backend.incremental`, RocksDB's own
//! files (the `incremental` submodule).
//!
//! The small helpers that every state access calls across these files are
//! `#[inline]`: a module can be a code-generation unit of its own (the
//! release profile builds incrementally), and only inline functions are
//! inlined across units.

mod incremental;
mod keys;
mod limit;
mod open;
mod options;
mod scan;
#[cfg(test)]
mod tests;
mod values;
mod write_cache;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use rocksdb::{ColumnFamily, DB, Options, WriteOptions};

use self::keys::{
    decode_list, encode_list, entry_key, key_group_prefix, list_element, map_entry_key, prefix_end,
};
use self::options::{TtlFlags, family_options};
use self::write_cache::WriteCache;
use super::{
    EntryVisitor, HintedValue, KeyedStateBackend, MapEntries, StateError, StateId, StateKey,
    StateKind, ValueVisitor,
};
use crate::keygroup::KeyGroupRange;

pub use self::keys::push_entry_key;
pub use self::options::{RocksDbOptions, column_family_options};

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
    /// The column family of each state, by state id (`cf_name` of its
    /// name, made once rather than at every access).
    families: Vec<String>,
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
    /// `weir.state.max-bytes`, checked as writes add up.
    limit: limit::SizeLimit,
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
    /// The column family of the state named `name`.
    fn cf_name(name: &str) -> String {
        format!("state:{name}")
    }

    /// The column family of `state`, checked to be of `kind`.
    #[inline]
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
            .cf_handle(&self.families[state as usize])
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
    #[inline]
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

    /// Whether `cf` holds `key`.
    #[inline]
    fn exists(&self, cf: &ColumnFamily, key: &[u8]) -> Result<bool, StateError> {
        // The bloom filters and the memtable answer "surely not" without
        // reading a block, which is the common answer for a new key.
        if !self.db.key_may_exist_cf(cf, key) {
            return Ok(false);
        }
        Ok(self.db.get_pinned_cf(cf, key).map_err(storage)?.is_some())
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
        let bytes = key.len()
            + match &write {
                Write::Put(v) => v.len(),
                Write::Merge(v) => v.len(),
            };
        match write {
            Write::Put(v) => self.db.put_cf_opt(cf, &key, v, &self.write),
            Write::Merge(v) => self.db.merge_cf_opt(cf, &key, v, &self.write),
        }
        .map_err(storage)?;
        self.charge(bytes)?;
        if new {
            self.entries += 1;
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
        let family = Self::cf_name(name);
        self.ensure_family(&family)?;
        self.states.push((name.to_owned(), kind));
        self.families.push(family);
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
            if let Err(e) = self.visit_state(cf, id as StateId, *kind, &prefix, visit) {
                tracing::error!("rocksdb: scanning key group {key_group}: {e}");
            }
        }
    }

    fn value_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        self.get_value(state, &at)
    }

    fn value_get_hinted(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<HintedValue<'_>, StateError> {
        self.get_value_hinted(state, &at)
    }

    fn value_get_many(
        &self,
        state: StateId,
        keys: &[(u32, &[u8])],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), StateError> {
        self.get_values(state, keys, visit)
    }

    fn value_put_hinted(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
        hint: Option<usize>,
    ) -> Result<(), StateError> {
        self.put_value_hinted(state, &at, value, hint)
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
        let bytes = key.len() + value.len();
        self.db
            .put_cf_opt(cf, key, value, &self.write)
            .map_err(storage)?;
        if new {
            self.entries += 1;
        }
        self.charge(bytes)
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
        if kind == StateKind::Value {
            // Hints of presence read before this are stale now.
            self.cache.new_generation();
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
        always: bool,
    ) -> Result<Option<crate::state::incremental::NativeSnapshot>, StateError> {
        // Cached writes reach RocksDB before any snapshot, and a failure
        // fails the snapshot (the portable one's scan cannot report it).
        self.flush()?;
        if !self.incremental && !always {
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
