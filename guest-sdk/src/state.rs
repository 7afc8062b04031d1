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

/// A value per key that every [`ReducingState::add`] folds a new value
/// into with `reduce(current, new)` (Flink's `ReducingState`). It is a
/// value state underneath (prefetched, with its TTL if declared with one),
/// so its bytes are those of a [`ValueState<T>`] of the same name.
#[derive(Debug)]
pub struct ReducingState<T, F> {
    value: ValueState<T>,
    reduce: F,
}

impl<T: Serialize + DeserializeOwned, F: Fn(T, T) -> T> ReducingState<T, F> {
    /// Folds into `value` with `reduce`.
    pub fn new(value: ValueState<T>, reduce: F) -> Self {
        ReducingState { value, reduce }
    }

    /// Folds `item` into the current key's value; returns the new value.
    pub fn add(&self, item: T) -> T {
        self.value.update(|current| match current {
            Some(c) => (self.reduce)(c, item),
            None => item,
        })
    }

    /// The current key's folded value, `None` before its first add.
    pub fn get(&self) -> Option<T> {
        self.value.get()
    }

    /// Forgets the current key's value.
    pub fn clear(&self) {
        self.value.clear();
    }
}

/// What an [`AggregatingState`] does with its inputs (Flink's
/// `AggregateFunction`): an accumulator that inputs are added to, and a
/// result read from it.
pub trait Aggregate {
    /// What is added.
    type Input;
    /// What is stored per key.
    type Acc: Serialize + DeserializeOwned;
    /// What is read.
    type Output;
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// The accumulator with `input` added.
    fn add(&self, input: Self::Input, acc: Self::Acc) -> Self::Acc;
    /// The result of an accumulator.
    fn get_result(&self, acc: &Self::Acc) -> Self::Output;
}

/// A value per key kept as the accumulator of an [`Aggregate`] (Flink's
/// `AggregatingState`): inputs are added, the result is read. A value
/// state of the accumulator underneath, like [`ReducingState`].
#[derive(Debug)]
pub struct AggregatingState<A: Aggregate> {
    value: ValueState<A::Acc>,
    aggregate: A,
}

impl<A: Aggregate> AggregatingState<A> {
    /// Keeps `aggregate`'s accumulator in `value`.
    pub fn new(value: ValueState<A::Acc>, aggregate: A) -> Self {
        AggregatingState { value, aggregate }
    }

    /// Adds `input` to the current key's accumulator.
    pub fn add(&self, input: A::Input) {
        self.value.update(|acc| {
            let acc = acc.unwrap_or_else(|| self.aggregate.create_accumulator());
            self.aggregate.add(input, acc)
        });
    }

    /// The current key's result, `None` before its first add.
    pub fn get(&self) -> Option<A::Output> {
        self.value.get().map(|acc| self.aggregate.get_result(&acc))
    }

    /// Forgets the current key's accumulator.
    pub fn clear(&self) {
        self.value.clear();
    }
}
