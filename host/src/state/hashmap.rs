//! The `hashmap` backend: state on the heap, one hash table per key group.
//!
//! Each key group's table maps (state id, namespace, key) to the entry, so
//! an access is one hash lookup; lookups borrow the caller's bytes
//! (`hashbrown`'s `Equivalent`), so reading allocates nothing. Short keys,
//! namespaces and values live inline in the table (`SmallVec`): with many
//! keys the cost of an access is its cache misses, and a pointer to follow
//! is one more miss.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use hashbrown::hash_map::RawEntryMut;
use hashbrown::{Equivalent, HashMap};
use smallvec::SmallVec;

use super::{KeyedStateBackend, MapEntries, StateError, StateId, StateKey, StateKind, key_eq};
use crate::keygroup::KeyGroupRange;

/// One entry of any kind.
#[derive(Debug, Clone)]
enum Entry {
    Value(SmallVec<[u8; 16]>),
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

/// Keyed state on the heap: one table per key group.
#[derive(Debug)]
pub struct HashMapBackend {
    range: KeyGroupRange,
    states: Vec<(String, StateKind)>,
    /// `groups[kg - range.start]`.
    groups: Vec<HashMap<EntryKey, Entry>>,
}

impl HashMapBackend {
    /// An empty backend for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        HashMapBackend {
            range,
            states: Vec::new(),
            groups: (0..range.len()).map(|_| HashMap::new()).collect(),
        }
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
        Ok(self.groups[g].get(&Self::lookup(state, at)))
    }

    fn entry_mut(
        &mut self,
        state: StateId,
        at: &StateKey<'_>,
        used: StateKind,
        new: impl FnOnce() -> Entry,
    ) -> Result<&mut Entry, StateError> {
        let g = self.check(state, at, used)?;
        let table = &mut self.groups[g];
        let lookup = Self::lookup(state, at);
        Ok(match table.raw_entry_mut().from_key(&lookup) {
            RawEntryMut::Occupied(o) => o.into_mut(),
            RawEntryMut::Vacant(v) => v.insert(EntryKey::from(&lookup), new()).1,
        })
    }

    fn remove(&mut self, state: StateId, at: &StateKey<'_>) -> Result<(), StateError> {
        let kind = self
            .states
            .get(state as usize)
            .ok_or(StateError::UnknownState(state))?
            .1;
        let g = self.check(state, at, kind)?;
        self.groups[g].remove(&Self::lookup(state, at));
        Ok(())
    }
}

impl KeyedStateBackend for HashMapBackend {
    fn register(&mut self, name: &str, kind: StateKind) -> Result<StateId, StateError> {
        if let Some(i) = self.states.iter().position(|(n, _)| n == name) {
            let declared = self.states[i].1;
            if declared != kind {
                return Err(StateError::KindConflict {
                    name: name.to_owned(),
                    declared,
                    requested: kind,
                });
            }
            return Ok(i as StateId);
        }
        self.states.push((name.to_owned(), kind));
        Ok((self.states.len() - 1) as StateId)
    }

    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn value_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        Ok(match self.entry(state, &at, StateKind::Value)? {
            Some(Entry::Value(v)) => Some(Cow::Borrowed(v.as_slice())),
            _ => None,
        })
    }

    fn value_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        if let Entry::Value(v) = self.entry_mut(state, &at, StateKind::Value, || {
            Entry::Value(SmallVec::new())
        })? {
            v.clear();
            v.extend_from_slice(value);
        }
        Ok(())
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
        if let Entry::List(l) =
            self.entry_mut(state, &at, StateKind::List, || Entry::List(Vec::new()))?
        {
            l.push(value.to_vec());
        }
        Ok(())
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
        if let Entry::List(l) =
            self.entry_mut(state, &at, StateKind::List, || Entry::List(Vec::new()))?
        {
            *l = values;
        }
        Ok(())
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
        if let Entry::Map(m) =
            self.entry_mut(state, &at, StateKind::Map, || Entry::Map(BTreeMap::new()))?
        {
            m.insert(map_key.to_vec(), value.to_vec());
        }
        Ok(())
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
        if let Entry::Map(m) =
            self.entry_mut(state, &at, StateKind::Map, || Entry::Map(BTreeMap::new()))?
        {
            m.remove(map_key);
        }
        Ok(())
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

    fn entry_count(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    crate::state_conformance_tests!(super::HashMapBackend::new);
}
