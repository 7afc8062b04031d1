//! Typed handles over the host's keyed state, encoded with [`crate::codec`].

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::weir::operator::{operator_state, state};
use crate::codec::{decode, encode, encode_into};
use crate::runtime::{self, NewValue};

/// A single value per key (and namespace).
#[derive(Debug)]
pub struct ValueState<T> {
    id: u32,
    prefetched: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for ValueState<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ValueState<T> {}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    pub(crate) fn new(id: u32, prefetched: bool) -> Self {
        ValueState {
            id,
            prefetched,
            _type: PhantomData,
        }
    }

    /// The current key's value.
    pub fn get(&self) -> Option<T> {
        if self.prefetched
            && let Some(v) = runtime::cached_value(self.id, decode)
        {
            return v;
        }
        self.get_in(&[])
    }

    /// Sets the current key's value.
    pub fn set(&self, value: &T) {
        let mut small = [0u8; runtime::INLINE_VALUE];
        if self.prefetched {
            // Small values are encoded on the stack and kept inline.
            let stored = match encode_into(value, &mut small) {
                Some(bytes) => runtime::cache_value(self.id, NewValue::Small(bytes)),
                None => runtime::cache_value(self.id, NewValue::Large(encode(value))),
            };
            if stored {
                return;
            }
        }
        runtime::select_current_key();
        state::value_set(self.id, &[], &encode(value));
    }

    /// Removes the current key's value.
    pub fn clear(&self) {
        if self.prefetched && runtime::cache_value(self.id, NewValue::Clear) {
            return;
        }
        self.clear_in(&[]);
    }

    /// Applies `f` to the current value and stores and returns the result.
    pub fn update(&self, f: impl FnOnce(Option<T>) -> T) -> T {
        let new = f(self.get());
        self.set(&new);
        new
    }

    /// The current key's value in a namespace.
    pub fn get_in(&self, namespace: &[u8]) -> Option<T> {
        runtime::select_current_key();
        state::value_get(self.id, namespace).map(|b| decode(&b))
    }

    /// Sets the current key's value in a namespace.
    pub fn set_in(&self, namespace: &[u8], value: &T) {
        runtime::select_current_key();
        state::value_set(self.id, namespace, &encode(value));
    }

    /// Removes the current key's value in a namespace.
    pub fn clear_in(&self, namespace: &[u8]) {
        runtime::select_current_key();
        state::clear(self.id, namespace);
    }
}

/// A list of values per key.
#[derive(Debug)]
pub struct ListState<T> {
    id: u32,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ListState<T> {
    pub(crate) fn new(id: u32) -> Self {
        ListState {
            id,
            _type: PhantomData,
        }
    }

    /// Every entry of the current key's list.
    pub fn get(&self) -> Vec<T> {
        runtime::select_current_key();
        state::list_get(self.id, &[])
            .iter()
            .map(|b| decode(b))
            .collect()
    }

    /// Appends to the current key's list.
    pub fn add(&self, value: &T) {
        runtime::select_current_key();
        state::list_add(self.id, &[], &encode(value));
    }

    /// Replaces the current key's list.
    pub fn set(&self, values: &[T]) {
        runtime::select_current_key();
        let encoded: Vec<Vec<u8>> = values.iter().map(|v| encode(v)).collect();
        state::list_set(self.id, &[], &encoded);
    }

    /// Empties the current key's list.
    pub fn clear(&self) {
        runtime::select_current_key();
        state::clear(self.id, &[]);
    }
}

/// A map per key. Entries come back ordered by the encoded map key.
#[derive(Debug)]
pub struct MapState<K, V> {
    id: u32,
    _type: PhantomData<fn() -> (K, V)>,
}

impl<K, V> MapState<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    pub(crate) fn new(id: u32) -> Self {
        MapState {
            id,
            _type: PhantomData,
        }
    }

    /// One entry of the current key's map.
    pub fn get(&self, key: &K) -> Option<V> {
        runtime::select_current_key();
        state::map_get(self.id, &[], &encode(key)).map(|b| decode(&b))
    }

    /// Writes one entry of the current key's map.
    pub fn put(&self, key: &K, value: &V) {
        runtime::select_current_key();
        state::map_put(self.id, &[], &encode(key), &encode(value));
    }

    /// Removes one entry of the current key's map.
    pub fn remove(&self, key: &K) {
        runtime::select_current_key();
        state::map_remove(self.id, &[], &encode(key));
    }

    /// Every entry of the current key's map.
    pub fn entries(&self) -> Vec<(K, V)> {
        runtime::select_current_key();
        state::map_entries(self.id, &[])
            .iter()
            .map(|(k, v)| (decode(k), decode(v)))
            .collect()
    }

    /// Empties the current key's map.
    pub fn clear(&self) {
        runtime::select_current_key();
        state::clear(self.id, &[]);
    }
}

/// A list of values that belongs to the subtask rather than to a key
/// (operator state): for buffers, positions, per-subtask counters. The host
/// snapshots it with checkpoints; on a restore at another parallelism its
/// items are dealt round-robin over the new subtasks. Keep it small.
#[derive(Debug)]
pub struct OperatorListState<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> OperatorListState<T> {
    pub(crate) fn new(name: &str) -> Self {
        OperatorListState {
            name: name.to_owned(),
            _type: PhantomData,
        }
    }

    /// Every item of this subtask's list.
    pub fn get(&self) -> Vec<T> {
        operator_state::get(&self.name)
            .iter()
            .map(|b| decode(b))
            .collect()
    }

    /// Replaces the list.
    pub fn update(&self, items: &[T]) {
        let encoded: Vec<Vec<u8>> = items.iter().map(encode).collect();
        operator_state::update(&self.name, &encoded);
    }

    /// Appends one item.
    pub fn add(&self, item: &T) {
        operator_state::add(&self.name, &encode(item));
    }
}
