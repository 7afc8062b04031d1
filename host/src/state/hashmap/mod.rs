//! The `hashmap` backend: state on the heap, tables per key group.
//!
//! Each key group has two tables keyed by (state id, namespace, key): one
//! for value state, the hot path, and one for list and map state. An access
//! is one hash lookup, and lookups borrow the caller's bytes, so reading
//! allocates nothing. With many keys the cost of an access is its cache
//! misses, so a value-state entry is one 64-byte, cache-line-aligned slot
//! holding short keys, namespaces and values inline ([`ValueSlot`]): a
//! lookup that misses the cache misses once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use hashbrown::hash_map::RawEntryMut;
use hashbrown::hash_table::Entry as SlotEntry;
use hashbrown::{Equivalent, HashMap, HashTable};
use smallvec::SmallVec;

use super::{
    EntryRef, EntryVisitor, HintedValue, KeyedStateBackend, MapEntries, StateError, StateId,
    StateKey, StateKind, ValueVisitor, key_eq,
};
use crate::keygroup::KeyGroupRange;
use cow::GroupCow;
use slot::{MAX_NAMESPACE, ValueSlot, grow_early, slot_hash};

/// The tables of one key group.
#[derive(Debug, Default)]
struct KeyGroupTables {
    values: HashTable<ValueSlot>,
    others: HashMap<EntryKey, Entry>,
    /// While a copy-on-write snapshot has not read all of this key group:
    /// what it keeps for it (see `cow.rs`).
    cow: Option<Box<GroupCow>>,
    /// The mark of every value slot while no snapshot reads the group.
    clean: bool,
    /// Bumped whenever an insert may have moved the value slots (grown or
    /// rehashed the table), so a snapshot reading it by position starts
    /// over.
    moves: u64,
}

/// A list or map entry.
#[derive(Debug, Clone)]
enum Entry {
    List(Vec<Vec<u8>>),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The owned address of an entry within a key group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryKey {
    state: StateId,
    namespace: SmallVec<[u8; 16]>,
    key: SmallVec<[u8; 24]>,
}

/// The borrowed address used for lookups; hashes like [`EntryKey`].
#[derive(Hash)]
struct Lookup<'a> {
    state: StateId,
    namespace: &'a [u8],
    key: &'a [u8],
}

impl Hash for EntryKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        Lookup {
            state: self.state,
            namespace: &self.namespace,
            key: &self.key,
        }
        .hash(h)
    }
}

impl From<&Lookup<'_>> for EntryKey {
    fn from(l: &Lookup<'_>) -> Self {
        EntryKey {
            state: l.state,
            namespace: SmallVec::from_slice(l.namespace),
            key: SmallVec::from_slice(l.key),
        }
    }
}

impl Equivalent<EntryKey> for Lookup<'_> {
    fn equivalent(&self, k: &EntryKey) -> bool {
        self.state == k.state && key_eq(self.key, &k.key) && key_eq(self.namespace, &k.namespace)
    }
}

/// Bytes counted for a table entry beyond its keys and values.
const ENTRY_OVERHEAD: usize = 64;
/// Bytes counted per list element or map entry beyond its bytes.
const ELEMENT_OVERHEAD: usize = 24;

impl Entry {
    /// The entry as a snapshot reads it.
    fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::List(l) => EntryRef::List(l),
            Entry::Map(m) => EntryRef::Map(m),
        }
    }

    /// Bytes this entry is counted as, beyond its address.
    fn size(&self) -> usize {
        match self {
            Entry::List(l) => l.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum(),
            Entry::Map(m) => m
                .iter()
                .map(|(k, v)| k.len() + v.len() + ELEMENT_OVERHEAD)
                .sum(),
        }
    }
}

/// Keyed state on the heap: one table per key group.
#[derive(Debug)]
pub struct HashMapBackend {
    /// Bytes of keys, namespaces and values held, with a fixed overhead per
    /// entry: what `max_bytes` limits.
    bytes: usize,
    max_bytes: usize,
    range: KeyGroupRange,
    states: Vec<(String, StateKind)>,
    /// `groups[kg - range.start]`.
    groups: Vec<KeyGroupTables>,
    /// How many buckets of a key group's value table a copy-on-write
    /// snapshot reads per step.
    snapshot_step: usize,
}

/// The default of [`HashMapBackend::with_snapshot_step`]: 256 KiB of
/// slots, at most a few milliseconds of a task's time.
const SNAPSHOT_STEP_BUCKETS: usize = 4096;

impl HashMapBackend {
    /// An empty backend for the key groups of `range`, without a size limit.
    pub fn new(range: KeyGroupRange) -> Self {
        Self::with_limit(range, usize::MAX)
    }

    /// An empty backend that refuses to grow past `max_bytes` (see
    /// [`KeyedStateBackend::size_bytes`]).
    pub fn with_limit(range: KeyGroupRange, max_bytes: usize) -> Self {
        HashMapBackend {
            bytes: 0,
            max_bytes,
            range,
            states: Vec::new(),
            groups: (0..range.len())
                .map(|_| KeyGroupTables::default())
                .collect(),
            snapshot_step: SNAPSHOT_STEP_BUCKETS,
        }
    }

    /// The same backend, its copy-on-write snapshots reading `buckets`
    /// buckets of a value table per step (at least one).
    #[cfg(test)]
    pub(crate) fn with_snapshot_step(mut self, buckets: usize) -> Self {
        self.snapshot_step = buckets.max(1);
        self
    }

    fn check(
        &self,
        state: StateId,
        at: &StateKey<'_>,
        used: StateKind,
    ) -> Result<usize, StateError> {
        let (name, kind) = self
            .states
            .get(state as usize)
            .ok_or(StateError::UnknownState(state))?;
        if *kind != used {
            return Err(StateError::WrongKind {
                name: name.clone(),
                kind: *kind,
                used,
            });
        }
        if !self.range.contains(at.key_group) {
            return Err(StateError::KeyGroupOutOfRange {
                key_group: at.key_group,
                range: self.range,
            });
        }
        Ok((at.key_group - self.range.start) as usize)
    }

    fn lookup<'a>(state: StateId, at: &StateKey<'a>) -> Lookup<'a> {
        Lookup {
            state,
            namespace: at.namespace,
            key: at.key,
        }
    }

    fn entry(
        &self,
        state: StateId,
        at: &StateKey<'_>,
        used: StateKind,
    ) -> Result<Option<&Entry>, StateError> {
        let g = self.check(state, at, used)?;
        Ok(self.groups[g].others.get(&Self::lookup(state, at)))
    }

    /// The list or map entry at `at`, created with `new` if absent; with the
    /// bytes a newly created entry's address counts (0 if it existed).
    fn entry_mut(
        &mut self,
        state: StateId,
        at: &StateKey<'_>,
        used: StateKind,
        new: impl FnOnce() -> Entry,
    ) -> Result<(&mut Entry, usize), StateError> {
        let g = self.check(state, at, used)?;
        let tables = &mut self.groups[g];
        let lookup = Self::lookup(state, at);
        if let Some(cow) = tables.cow.as_deref_mut() {
            cow.before_other_write(&lookup, tables.others.get(&lookup));
        }
        Ok(match tables.others.raw_entry_mut().from_key(&lookup) {
            RawEntryMut::Occupied(o) => (o.into_mut(), 0),
            RawEntryMut::Vacant(v) => (
                v.insert(EntryKey::from(&lookup), new()).1,
                at.key.len() + at.namespace.len() + ENTRY_OVERHEAD,
            ),
        })
    }

    fn remove(&mut self, state: StateId, at: &StateKey<'_>) -> Result<(), StateError> {
        let kind = self
            .states
            .get(state as usize)
            .ok_or(StateError::UnknownState(state))?
            .1;
        let g = self.check(state, at, kind)?;
        let tables = &mut self.groups[g];
        let address = at.key.len() + at.namespace.len() + ENTRY_OVERHEAD;
        if kind == StateKind::Value {
            let h = slot_hash(state, at.key, at.namespace);
            if let Ok(mut e) = tables
                .values
                .find_entry(h, |s| s.is(state, at.key, at.namespace))
            {
                if let Some(cow) = tables.cow.as_deref_mut() {
                    cow.before_value_write(e.get_mut());
                }
                let (slot, _) = e.remove();
                self.bytes = self.bytes.saturating_sub(address + slot.value.len());
            }
        } else {
            let lookup = Self::lookup(state, at);
            if let Some(cow) = tables.cow.as_deref_mut() {
                cow.before_other_write(&lookup, tables.others.get(&lookup));
            }
            if let Some(entry) = tables.others.remove(&lookup) {
                self.bytes = self.bytes.saturating_sub(address + entry.size());
            }
        }
        Ok(())
    }

    /// Adds `added` and removes `removed` bytes; an error once over the limit.
    fn account(&mut self, added: usize, removed: usize) -> Result<(), StateError> {
        self.bytes = self.bytes.saturating_add(added).saturating_sub(removed);
        if self.bytes > self.max_bytes {
            return Err(StateError::Full {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

impl KeyedStateBackend for HashMapBackend {
    fn register(&mut self, name: &str, kind: StateKind) -> Result<StateId, StateError> {
        if let Some(id) = super::declared_id(&self.states, name, kind)? {
            return Ok(id);
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
        let tables = &self.groups[(key_group - self.range.start) as usize];
        for slot in &tables.values {
            let (key, namespace) = slot.split();
            visit(slot.state, key, namespace, EntryRef::Value(&slot.value));
        }
        for (k, e) in &tables.others {
            visit(k.state, &k.key, &k.namespace, e.as_ref());
        }
    }

    fn begin_snapshot(&mut self) -> bool {
        self.begin_cow();
        true
    }

    fn visit_snapshot_group(&mut self, key_group: u32, visit: &mut EntryVisitor<'_>) -> bool {
        self.visit_cow_group(key_group, visit)
    }

    fn value_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        let g = self.check(state, &at, StateKind::Value)?;
        let h = slot_hash(state, at.key, at.namespace);
        Ok(self.groups[g]
            .values
            .find(h, |s| s.is(state, at.key, at.namespace))
            .map(|s| Cow::Borrowed(s.value.as_slice())))
    }

    fn value_get_hinted(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<HintedValue<'_>, StateError> {
        let g = self.check(state, &at, StateKind::Value)?;
        let h = slot_hash(state, at.key, at.namespace);
        let table = &self.groups[g].values;
        let index = table.find_bucket_index(h, |s| s.is(state, at.key, at.namespace));
        let value = index
            .and_then(|i| table.get_bucket(i))
            .map(|s| Cow::Borrowed(s.value.as_slice()));
        Ok((value, index))
    }

    fn value_get_many(
        &self,
        state: StateId,
        keys: &[(u32, &[u8])],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), StateError> {
        // Three passes, so that the table lookups (each a cache miss or
        // two) follow one another in a tight loop whose iterations do not
        // depend on each other, and the processor overlaps their misses.
        let mut found: Vec<(usize, u64)> = Vec::with_capacity(keys.len());
        for &(key_group, key) in keys {
            let at = StateKey {
                key_group,
                key,
                namespace: &[],
            };
            let g = self.check(state, &at, StateKind::Value)?;
            found.push((g, slot_hash(state, key, &[])));
        }
        for (f, &(_, key)) in found.iter_mut().zip(keys) {
            let (g, h) = *f;
            let index = self.groups[g]
                .values
                .find_bucket_index(h, |s| s.is(state, key, &[]));
            *f = (g, index.map_or(u64::MAX, |i| i as u64));
        }
        for (g, index) in found {
            let hint = (index != u64::MAX).then_some(index as usize);
            let value = hint
                .and_then(|i| self.groups[g].values.get_bucket(i))
                .map(|s| s.value.as_slice());
            visit(value, hint);
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
        let g = self.check(state, &at, StateKind::Value)?;
        let KeyGroupTables { values, cow, .. } = &mut self.groups[g];
        // Inserts since the hint was taken may have moved entries: the
        // slot is checked before it is written.
        if let Some(slot) = hint.and_then(|i| values.get_bucket_mut(i))
            && slot.is(state, at.key, at.namespace)
        {
            if let Some(cow) = cow.as_deref_mut() {
                cow.before_value_write(slot);
            }
            let old = slot.value.len();
            slot.value.clear();
            slot.value.extend_from_slice(value);
            return self.account(value.len(), old);
        }
        self.value_put(state, at, value)
    }

    fn value_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        let g = self.check(state, &at, StateKind::Value)?;
        if at.namespace.len() > MAX_NAMESPACE {
            // Longer than any guest can hand over; counted as over the limit.
            return Err(StateError::Full {
                limit: self.max_bytes,
            });
        }
        let h = slot_hash(state, at.key, at.namespace);
        let KeyGroupTables {
            values,
            cow,
            clean,
            moves,
            ..
        } = &mut self.groups[g];
        // Full, the table grows or rehashes in `entry` even for a key it
        // holds.
        if grow_early(values, at.key_group) || values.len() >= values.capacity() {
            *moves += 1;
        }
        let (added, removed) =
            match values.entry(h, |s| s.is(state, at.key, at.namespace), ValueSlot::hash) {
                SlotEntry::Occupied(mut e) => {
                    if let Some(cow) = cow.as_deref_mut() {
                        cow.before_value_write(e.get_mut());
                    }
                    let v = &mut e.get_mut().value;
                    let old = v.len();
                    v.clear();
                    v.extend_from_slice(value);
                    (value.len(), old)
                }
                SlotEntry::Vacant(e) => {
                    let mut slot = ValueSlot::new(state, at.key, at.namespace, value);
                    // New since the snapshot began: not part of it.
                    slot.set_mark(cow.as_deref().map_or(*clean, GroupCow::done_mark));
                    e.insert(slot);
                    (
                        at.key.len() + at.namespace.len() + ENTRY_OVERHEAD + value.len(),
                        0,
                    )
                }
            };
        self.account(added, removed)
    }

    fn list_get(&self, state: StateId, at: StateKey<'_>) -> Result<Vec<Vec<u8>>, StateError> {
        Ok(match self.entry(state, &at, StateKind::List)? {
            Some(Entry::List(l)) => l.clone(),
            _ => Vec::new(),
        })
    }

    fn list_add(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        let (entry, new) =
            self.entry_mut(state, &at, StateKind::List, || Entry::List(Vec::new()))?;
        if let Entry::List(l) = entry {
            l.push(value.to_vec());
        }
        self.account(new + value.len() + ELEMENT_OVERHEAD, 0)
    }

    fn list_set(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        values: Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        if values.is_empty() {
            return self.clear(state, at);
        }
        let (entry, new) =
            self.entry_mut(state, &at, StateKind::List, || Entry::List(Vec::new()))?;
        let removed = entry.size();
        *entry = Entry::List(values);
        let added = entry.size();
        self.account(new + added, removed)
    }

    fn map_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        Ok(match self.entry(state, &at, StateKind::Map)? {
            Some(Entry::Map(m)) => m.get(map_key).map(|v| Cow::Borrowed(v.as_slice())),
            _ => None,
        })
    }

    fn map_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        let (entry, new) =
            self.entry_mut(state, &at, StateKind::Map, || Entry::Map(BTreeMap::new()))?;
        let mut removed = 0;
        if let Entry::Map(m) = entry
            && let Some(old) = m.insert(map_key.to_vec(), value.to_vec())
        {
            removed = map_key.len() + old.len() + ELEMENT_OVERHEAD;
        }
        self.account(
            new + map_key.len() + value.len() + ELEMENT_OVERHEAD,
            removed,
        )
    }

    fn map_remove(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<(), StateError> {
        let now_empty = match self.entry(state, &at, StateKind::Map)? {
            Some(Entry::Map(m)) => m.len() == 1 && m.contains_key(map_key),
            _ => return Ok(()),
        };
        if now_empty {
            return self.clear(state, at);
        }
        let (entry, _) =
            self.entry_mut(state, &at, StateKind::Map, || Entry::Map(BTreeMap::new()))?;
        let mut removed = 0;
        if let Entry::Map(m) = entry
            && let Some(old) = m.remove(map_key)
        {
            removed = map_key.len() + old.len() + ELEMENT_OVERHEAD;
        }
        self.account(0, removed)
    }

    fn map_entries(&self, state: StateId, at: StateKey<'_>) -> Result<MapEntries, StateError> {
        Ok(match self.entry(state, &at, StateKind::Map)? {
            Some(Entry::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        })
    }

    fn clear(&mut self, state: StateId, at: StateKey<'_>) -> Result<(), StateError> {
        self.remove(state, &at)
    }

    fn size_bytes(&self) -> usize {
        self.bytes
    }

    fn entry_count(&self) -> usize {
        self.groups
            .iter()
            .map(|t| t.values.len() + t.others.len())
            .sum()
    }
}

mod cow;
mod slot;
#[cfg(test)]
mod tests;
