//! The `hashmap` backend: state on the heap, per key group.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::{KeyedStateBackend, StateError, StateId, StateKey, StateKind};
use crate::keygroup::KeyGroupRange;

/// One entry of any kind.
#[derive(Debug, Clone)]
enum Entry {
    Value(Vec<u8>),
    List(Vec<Vec<u8>>),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// namespace -> key -> entry.
type Table = FxHashMap<Vec<u8>, FxHashMap<Vec<u8>, Entry>>;

/// Keyed state on the heap: key group -> state -> namespace -> key.
#[derive(Debug)]
pub struct HashMapBackend {
    range: KeyGroupRange,
    states: Vec<(String, StateKind)>,
    /// `groups[kg - range.start][state]`.
    groups: Vec<Vec<Table>>,
}

impl HashMapBackend {
    /// An empty backend for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        HashMapBackend {
            range,
            states: Vec::new(),
            groups: (0..range.len()).map(|_| Vec::new()).collect(),
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

    fn entry(
        &self,
        state: StateId,
        at: &StateKey<'_>,
        used: StateKind,
    ) -> Result<Option<&Entry>, StateError> {
        let g = self.check(state, at, used)?;
        Ok(self.groups[g]
            .get(state as usize)
            .and_then(|t| t.get(at.namespace))
            .and_then(|m| m.get(at.key)))
    }

    fn entry_mut(
        &mut self,
        state: StateId,
        at: &StateKey<'_>,
        used: StateKind,
        new: impl FnOnce() -> Entry,
    ) -> Result<&mut Entry, StateError> {
        let g = self.check(state, at, used)?;
        let tables = &mut self.groups[g];
        if tables.len() <= state as usize {
            tables.resize_with(state as usize + 1, Table::default);
        }
        let table = &mut tables[state as usize];
        let by_key = match table.get_mut(at.namespace) {
            Some(_) => table.get_mut(at.namespace),
            None => Some(table.entry(at.namespace.to_vec()).or_default()),
        };
        let Some(by_key) = by_key else {
            unreachable!("namespace map was just looked up or inserted")
        };
        if !by_key.contains_key(at.key) {
            by_key.insert(at.key.to_vec(), new());
        }
        match by_key.get_mut(at.key) {
            Some(e) => Ok(e),
            None => unreachable!("entry was just inserted"),
        }
    }

    fn remove(&mut self, state: StateId, at: &StateKey<'_>) -> Result<(), StateError> {
        let kind = self
            .states
            .get(state as usize)
            .ok_or(StateError::UnknownState(state))?
            .1;
        let g = self.check(state, at, kind)?;
        if let Some(table) = self.groups[g].get_mut(state as usize) {
            if let Some(by_key) = table.get_mut(at.namespace) {
                by_key.remove(at.key);
                if by_key.is_empty() {
                    table.remove(at.namespace);
                }
            }
        }
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
        if let Entry::Value(v) =
            self.entry_mut(state, &at, StateKind::Value, || Entry::Value(Vec::new()))?
        {
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

    fn map_entries(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        Ok(match self.entry(state, &at, StateKind::Map)? {
            Some(Entry::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        })
    }

    fn clear(&mut self, state: StateId, at: StateKey<'_>) -> Result<(), StateError> {
        self.remove(state, &at)
    }

    fn entry_count(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|tables| tables.iter())
            .flat_map(|t| t.values())
            .map(|by_key| by_key.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    crate::state_conformance_tests!(super::HashMapBackend::new);
}
