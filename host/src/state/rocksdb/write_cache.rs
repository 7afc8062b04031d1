//! The RocksDB backend's write cache of value state: values written lately,
//! by (state, RocksDB key), so that a key updated many times between
//! flushes is written to RocksDB once.
//!
//! The backend writes the dirty entries as one batch before every snapshot
//! (they stay, clean, to serve reads) and when the cache outgrows its limit
//! (then it is emptied). The cache itself knows nothing of RocksDB.

use std::cell::{Cell, Ref, RefCell};

use smallvec::SmallVec;

use crate::state::{StateError, StateId};

/// Bytes a cached entry is counted for beyond its key and value.
const CACHE_ENTRY_OVERHEAD: usize = 48;

/// A value in the write cache, and whether RocksDB has it yet. Small
/// values (a count, a sum) sit inline, without an allocation of their own.
#[derive(Debug)]
struct CachedValue {
    value: SmallVec<[u8; 16]>,
    dirty: bool,
}

/// Cached value state of one state: RocksDB key to value (looked up by
/// `&[u8]`, so a read allocates nothing; foldhash, not SipHash).
type StateCache = hashbrown::HashMap<Vec<u8>, CachedValue>;

/// What [`WriteCache::each_dirty`] calls per state: the state and its
/// dirty (key, value) entries in key order.
pub(super) type DirtyWriter<'w> =
    dyn FnMut(StateId, &[(&[u8], &[u8])]) -> Result<(), StateError> + 'w;

/// Value state written lately, per state id, with the bytes it holds; the
/// backend reads and writes through it from `&self` (snapshots flush it),
/// hence the cells.
#[derive(Debug, Default)]
pub(super) struct WriteCache {
    /// Per state id, its cached values.
    states: RefCell<Vec<StateCache>>,
    /// Bytes the cache holds (keys, values and overhead).
    bytes: Cell<usize>,
    /// Whether any cached entry is dirty.
    dirty: Cell<bool>,
    /// How many times the cache was emptied or a value entry removed: while
    /// it stays the same, a key read as absent and still not cached has not
    /// been written since (every write goes through the cache), and one
    /// read as present has not been removed.
    generation: Cell<usize>,
    /// Bytes past which the backend writes and empties the cache.
    limit: usize,
}

impl WriteCache {
    /// An empty cache that is over its limit past `limit` bytes.
    pub(super) fn new(limit: usize) -> Self {
        WriteCache {
            limit,
            ..WriteCache::default()
        }
    }

    /// The cached value of `key` in value state `state`, if there is one.
    #[inline]
    pub(super) fn get(&self, state: StateId, key: &[u8]) -> Option<Vec<u8>> {
        self.states
            .borrow()
            .get(state as usize)?
            .get(key)
            .map(|c| c.value.to_vec())
    }

    /// A reader of the cached values of `state` that lends them out
    /// without copies; the cache cannot be written while it lives.
    pub(super) fn reader(&self, state: StateId) -> CacheReader<'_> {
        CacheReader {
            states: self.states.borrow(),
            state: state as usize,
        }
    }

    /// Replaces the cached value of `key` with `value`, marked dirty, if it
    /// is cached (cached, dirty or clean, means RocksDB or the cache has
    /// the entry); returns whether it was.
    #[inline]
    pub(super) fn update(&self, state: StateId, key: &[u8], value: &[u8]) -> bool {
        let mut states = self.states.borrow_mut();
        let Some(cached) = states.get_mut(state as usize).and_then(|m| m.get_mut(key)) else {
            return false;
        };
        self.bytes
            .set((self.bytes.get() + value.len()).saturating_sub(cached.value.len()));
        cached.value.clear();
        cached.value.extend_from_slice(value);
        cached.dirty = true;
        self.dirty.set(true);
        true
    }

    /// Caches `value` for `key`, which is not cached yet, marked dirty.
    #[inline]
    pub(super) fn insert(&self, state: StateId, key: Vec<u8>, value: &[u8]) {
        let mut states = self.states.borrow_mut();
        if states.len() <= state as usize {
            states.resize_with(state as usize + 1, StateCache::new);
        }
        self.bytes
            .set(self.bytes.get() + key.len() + value.len() + CACHE_ENTRY_OVERHEAD);
        states[state as usize].insert(
            key,
            CachedValue {
                value: SmallVec::from_slice(value),
                dirty: true,
            },
        );
        self.dirty.set(true);
    }

    /// Drops the cached value of `key`, if any; returns whether there was
    /// one.
    pub(super) fn remove(&self, state: StateId, key: &[u8]) -> bool {
        let removed = self
            .states
            .borrow_mut()
            .get_mut(state as usize)
            .and_then(|m| m.remove(key));
        if let Some(r) = &removed {
            let bytes = key.len() + r.value.len() + CACHE_ENTRY_OVERHEAD;
            self.bytes.set(self.bytes.get().saturating_sub(bytes));
        }
        removed.is_some()
    }

    /// Whether any cached value is not in RocksDB yet.
    #[inline]
    pub(super) fn is_dirty(&self) -> bool {
        self.dirty.get()
    }

    /// Whether the cache holds more than its limit.
    #[inline]
    pub(super) fn is_over_limit(&self) -> bool {
        self.bytes.get() > self.limit
    }

    /// Bytes the cache holds (keys, values and overhead).
    #[inline]
    pub(super) fn bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Calls `write(state, entries)` with the dirty (key, value) entries of
    /// every state that caches any entry, in key order: the memtable's skip
    /// list inserts a sorted run next to the previous key instead of
    /// searching from the top. The first error stops it.
    pub(super) fn each_dirty(&self, write: &mut DirtyWriter<'_>) -> Result<(), StateError> {
        let states = self.states.borrow();
        for (state, entries) in states.iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let mut dirty: Vec<(&[u8], &[u8])> = entries
                .iter()
                .filter(|(_, c)| c.dirty)
                .map(|(k, c)| (k.as_slice(), c.value.as_slice()))
                .collect();
            dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write(state as StateId, &dirty)?;
        }
        Ok(())
    }

    /// Marks every cached value clean: RocksDB has them all now.
    pub(super) fn mark_clean(&self) {
        for cached in self
            .states
            .borrow_mut()
            .iter_mut()
            .flat_map(|m| m.values_mut())
        {
            cached.dirty = false;
        }
        self.dirty.set(false);
    }

    /// Drops every cached value (after they were written), starting a new
    /// generation.
    pub(super) fn clear(&self) {
        self.states.borrow_mut().iter_mut().for_each(|m| m.clear());
        self.bytes.set(0);
        self.new_generation();
    }

    /// Starts a new generation without emptying the cache: an entry was
    /// removed, so hints of presence read before are stale.
    pub(super) fn new_generation(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
    }

    /// The generation: how many times the cache was emptied or an entry
    /// removed.
    #[inline]
    pub(super) fn generation(&self) -> usize {
        self.generation.get()
    }
}

/// Cached values of one state, lent out by reference (see
/// [`WriteCache::reader`]).
pub(super) struct CacheReader<'c> {
    states: Ref<'c, Vec<StateCache>>,
    state: usize,
}

impl CacheReader<'_> {
    /// The cached value of `key`, if there is one.
    #[inline]
    pub(super) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.states
            .get(self.state)?
            .get(key)
            .map(|c| c.value.as_slice())
    }
}
