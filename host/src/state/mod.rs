//! Keyed state: the [`KeyedStateBackend`] trait and its backends.
//!
//! Every state entry is addressed by (state id, key group, key, namespace).
//! Backends store entries per key group, so that a snapshot can be cut per
//! key-group range and redistributed when a job is restored at another
//! parallelism. Values are opaque bytes: the guest SDK encodes them.
//!
//! This module imports no backend; each backend lives in its own module and
//! is named for its engine (`hashmap`, and `rocksdb` behind the default-on
//! cargo feature of that name). One conformance suite (`conformance.rs`)
//! runs against every backend. Beside them: [`snapshot`] (the portable
//! per-key-group snapshot), [`incremental`] (a backend's own snapshot files
//! and their handles), [`ttl`] (states with a time-to-live, wrapping any
//! backend), [`operator_state`] and [`workdir`].

#[cfg(test)]
mod conformance;
mod hashmap;
pub mod incremental;
pub mod operator_state;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
pub mod snapshot;
pub mod ttl;
pub mod workdir;

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use crate::keygroup::KeyGroupRange;

pub use hashmap::HashMapBackend;
pub use snapshot::EntryRef;

/// Byte-string equality for the short keys of state lookups: two 8-byte
/// loads for 8 to 16 bytes instead of a call to `memcmp`, which showed up as
/// the largest single cost of the keyed count.
#[inline]
pub(crate) fn key_eq(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// What [`KeyedStateBackend::visit_key_group`] calls per entry: (state,
/// key, namespace, entry).
pub type EntryVisitor<'v> = dyn FnMut(StateId, &[u8], &[u8], EntryRef<'_>) + 'v;

/// What [`KeyedStateBackend::value_get_many`] calls per key: (value, hint).
pub type ValueVisitor<'v> = dyn FnMut(Option<&[u8]>, Option<usize>) + 'v;

/// A value read with [`KeyedStateBackend::value_get_hinted`]: the value
/// and the hint for writing it back.
pub type HintedValue<'a> = (Option<Cow<'a, [u8]>>, Option<usize>);

/// The entries of a map state, ordered by map key.
pub type MapEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// The id of a declared state, dense from 0 in declaration order.
pub type StateId = u32;

/// The kind of a declared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// One value per key and namespace.
    Value,
    /// A list of values per key and namespace.
    List,
    /// A map per key and namespace.
    Map,
}

/// A keyed state as an operator declared it (name, kind, time-to-live):
/// snapshots record these so that a restore can check a new version of
/// the operator against them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeclaredState {
    /// The state's name.
    pub name: String,
    /// Value, list or map.
    pub kind: StateKind,
    /// Its time-to-live, if declared with one (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
        })
    }
}

/// Where an entry lives: the key (and its key group) and the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateKey<'a> {
    /// The key group of `key`.
    pub key_group: u32,
    /// The element key.
    pub key: &'a [u8],
    /// The namespace; empty for the default.
    pub namespace: &'a [u8],
}

/// A state operation that cannot be done.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The same name was declared with two kinds.
    #[error("state `{name}` is declared as {declared} and again as {requested}")]
    KindConflict {
        /// State name.
        name: String,
        /// First kind.
        declared: StateKind,
        /// Second kind.
        requested: StateKind,
    },
    /// A state id that was never declared.
    #[error("state id {0} was never declared")]
    UnknownState(StateId),
    /// An operation of one kind on a state of another.
    #[error("state `{name}` is a {kind} state, not a {used} state")]
    WrongKind {
        /// State name.
        name: String,
        /// Declared kind.
        kind: StateKind,
        /// Kind of the operation.
        used: StateKind,
    },
    /// The subtask's state grew past `weir.state.max-bytes`.
    #[error("the subtask's keyed state exceeds its limit of {} MiB (weir.state.max-bytes)", limit >> 20)]
    Full {
        /// The limit in bytes.
        limit: usize,
    },
    /// The storage engine failed (RocksDB: an I/O error, a damaged file).
    #[error("state storage: {0}")]
    Storage(String),
    /// A key whose key group this backend does not own (a routing bug).
    #[error("key group {key_group} is outside this subtask's range {}..={}", range.start, range.end)]
    KeyGroupOutOfRange {
        /// The key group.
        key_group: u32,
        /// The owned range.
        range: KeyGroupRange,
    },
}

/// The id of state `name` among `declared`, if it is declared already
/// (with `kind`; another kind is an error). Every backend's `register`
/// starts here.
pub(crate) fn declared_id(
    declared: &[(String, StateKind)],
    name: &str,
    kind: StateKind,
) -> Result<Option<StateId>, StateError> {
    let Some(i) = declared.iter().position(|(n, _)| n == name) else {
        return Ok(None);
    };
    let existing = declared[i].1;
    if existing != kind {
        return Err(StateError::KindConflict {
            name: name.to_owned(),
            declared: existing,
            requested: kind,
        });
    }
    Ok(Some(i as StateId))
}

/// Keyed state of one subtask of one operator, for the key groups it owns.
pub trait KeyedStateBackend: Send {
    /// Declares a state by name (the same name twice gives the same id).
    fn register(&mut self, name: &str, kind: StateKind) -> Result<StateId, StateError>;
    /// Declares a state whose entries expire `ttl_ms` after they were last
    /// written; only [`ttl::TtlBackend`] keeps the expiry.
    fn register_with_ttl(
        &mut self,
        name: &str,
        _kind: StateKind,
        _ttl_ms: u64,
    ) -> Result<StateId, StateError> {
        Err(StateError::Storage(format!(
            "state `{name}`: this backend keeps no time-to-live (wrap it in TtlBackend)"
        )))
    }
    /// The names of the states declared with a time-to-live.
    fn ttl_states(&self) -> Vec<String> {
        Vec::new()
    }
    /// Lets the backend drop expired entries of `state` on its own (RocksDB
    /// in compaction); entries are stamped as [`ttl`] describes.
    fn expire_in_background(&mut self, _state: StateId) {}
    /// The key groups this backend holds.
    fn key_groups(&self) -> KeyGroupRange;
    /// The declared states, indexed by [`StateId`].
    fn declared(&self) -> &[(String, StateKind)];
    /// Calls `visit(state, key, namespace, entry)` for every entry of
    /// `key_group`, in no particular order: what a snapshot copies.
    fn visit_key_group(&self, key_group: u32, visit: &mut EntryVisitor<'_>);
    /// Starts a copy-on-write snapshot of every key group (a checkpoint's
    /// synchronous part, in time proportional to the key groups, not the
    /// entries): from now on the first write to an entry of a key group
    /// not visited yet keeps the entry's old value aside, and
    /// [`Self::visit_snapshot_group`] reads each key group as it was now,
    /// while writes go on. A snapshot still in progress is abandoned.
    /// Returns `false` if the backend has no such snapshot (then a
    /// snapshot visits every key group at once with
    /// [`Self::visit_key_group`]).
    fn begin_snapshot(&mut self) -> bool {
        false
    }
    /// Calls `visit` for entries `key_group` held when
    /// [`Self::begin_snapshot`] was called, a step at a time: returns
    /// whether the key group is done (every such entry visited once, and
    /// its copy-on-write ended); until then, call it again for the rest.
    fn visit_snapshot_group(&mut self, key_group: u32, visit: &mut EntryVisitor<'_>) -> bool {
        self.visit_key_group(key_group, visit);
        true
    }
    /// Reads a value state.
    fn value_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError>;
    /// Reads a value state and returns a hint that makes a following
    /// [`Self::value_put_hinted`] of the same entry cheaper (the hashmap
    /// backend's bucket index). A backend without hints returns `None`.
    fn value_get_hinted(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<HintedValue<'_>, StateError> {
        Ok((self.value_get(state, at)?, None))
    }
    /// Reads the default-namespace value of state `state` for each of
    /// `keys` (key group, key), in order, calling `visit(value, hint)` for
    /// each: what a batch's prefetch does. A backend may overlap the
    /// lookups' cache misses; the default reads one key after the other.
    fn value_get_many(
        &self,
        state: StateId,
        keys: &[(u32, &[u8])],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), StateError> {
        for &(key_group, key) in keys {
            let at = StateKey {
                key_group,
                key,
                namespace: &[],
            };
            let (value, hint) = self.value_get_hinted(state, at)?;
            visit(value.as_deref(), hint);
        }
        Ok(())
    }
    /// Writes a value state, using a hint from [`Self::value_get_hinted`]
    /// when it still points at the entry; a stale hint is harmless.
    fn value_put_hinted(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
        hint: Option<usize>,
    ) -> Result<(), StateError> {
        let _ = hint;
        self.value_put(state, at, value)
    }
    /// Writes a value state.
    fn value_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError>;
    /// Reads a list state (empty if absent).
    fn list_get(&self, state: StateId, at: StateKey<'_>) -> Result<Vec<Vec<u8>>, StateError>;
    /// Appends to a list state.
    fn list_add(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError>;
    /// Replaces a list state.
    fn list_set(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        values: Vec<Vec<u8>>,
    ) -> Result<(), StateError>;
    /// Reads one map entry.
    fn map_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<Option<Cow<'_, [u8]>>, StateError>;
    /// Writes one map entry.
    fn map_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError>;
    /// Removes one map entry.
    fn map_remove(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<(), StateError>;
    /// Every map entry, ordered by map key.
    fn map_entries(&self, state: StateId, at: StateKey<'_>) -> Result<MapEntries, StateError>;
    /// Removes the entry of any kind.
    fn clear(&mut self, state: StateId, at: StateKey<'_>) -> Result<(), StateError>;
    /// Takes the backend's own snapshot for checkpoint `id` if it makes
    /// them: when it checkpoints incrementally, or `always` (a native
    /// savepoint); `None`: the caller encodes a portable snapshot.
    fn native_snapshot(
        &self,
        _id: u64,
        _always: bool,
    ) -> Result<Option<incremental::NativeSnapshot>, StateError> {
        Ok(None)
    }

    /// Number of (state, key, namespace) entries held, for metrics and tests.
    fn entry_count(&self) -> usize;
    /// Approximate bytes held: keys, namespaces and values plus a fixed
    /// overhead per entry. A backend made with a limit refuses writes that
    /// take it past the limit with [`StateError::Full`].
    fn size_bytes(&self) -> usize;
}
