//! A value-state entry of the hashmap backend: one 64-byte,
//! cache-line-aligned slot with the key, the namespace and a short value
//! inline, and the mark a copy-on-write snapshot flips on it.

use hashbrown::HashTable;
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::state::{StateId, key_eq};

/// A value-state entry in one cache line: the key followed by the
/// namespace, and the value, inline when short.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub(super) struct ValueSlot {
    pub(super) state: StateId,
    /// The namespace's length, and in the top bit [`MARK`].
    meta: u32,
    key_namespace: SmallVec<[u8; 24]>,
    pub(super) value: SmallVec<[u8; 16]>,
}

/// A slot's mark. Every slot of a key group has the same mark while no
/// copy-on-write snapshot reads the group (the group's `clean` mark); a
/// snapshot flips it on each slot it is done with (read, written since
/// the snapshot began with the old value kept aside, or new), and when
/// every slot is flipped the flipped mark is the group's clean one.
const MARK: u32 = 1 << 31;

/// The longest namespace a value slot holds (the bits below [`MARK`]).
pub(super) const MAX_NAMESPACE: usize = (MARK - 1) as usize;

/// Seed of the value-slot hash: anything but 0, because the key group is
/// `xxh3(key, seed 0) mod max parallelism`, so within one key group's table
/// that hash would have constant low bits.
const SLOT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Value tables smaller than this grow when hashbrown grows them.
const STAGGER_FROM: usize = 1024;

/// Grows the value table of `key_group` before hashbrown would, at a
/// point of its fill that differs by key group (within the last quarter
/// of its capacity). A subtask's key groups fill at the same pace, so
/// they would otherwise all rehash within milliseconds of each other: at
/// millions of keys, a pause of tens of milliseconds that records queue
/// behind. Staggered, the same work is spread over a quarter of the
/// doubling, at the cost of tables a little less full on average.
/// Returns whether it grew the table (which moves every entry).
pub(super) fn grow_early(values: &mut HashTable<ValueSlot>, key_group: u32) -> bool {
    let capacity = values.capacity();
    if let Some(at) = early_growth_point(capacity, key_group)
        && values.len() >= at
        && values.len() < capacity
    {
        values.reserve(capacity - values.len() + 1, ValueSlot::hash);
        return true;
    }
    false
}

/// How many entries the value table of `key_group` holds when
/// [`grow_early`] grows it, given its `HashTable::capacity`; `None` to
/// leave it to hashbrown.
pub(super) fn early_growth_point(capacity: usize, key_group: u32) -> Option<usize> {
    // A table's capacity is 7/8 of its power-of-two buckets; entries
    // removed leave tombstones that `capacity()` does not count. Such a
    // table is left to hashbrown, which rehashes it in place if it is
    // sparse rather than doubling it.
    if capacity < STAGGER_FROM || !capacity.is_multiple_of(7) || !(capacity / 7).is_power_of_two() {
        return None;
    }
    // 0..=255, scattered over the key groups (Fibonacci hashing).
    let phase = (key_group.wrapping_mul(0x9E37_79B9) >> 24) as usize;
    Some(capacity - capacity / 4 * phase / 256)
}

pub(super) fn slot_hash(state: StateId, key: &[u8], namespace: &[u8]) -> u64 {
    let h = xxh3_64_with_seed(key, SLOT_SEED ^ u64::from(state));
    if namespace.is_empty() {
        h
    } else {
        h ^ xxh3_64_with_seed(namespace, SLOT_SEED).rotate_left(29)
    }
}

impl ValueSlot {
    pub(super) fn new(state: StateId, key: &[u8], namespace: &[u8], value: &[u8]) -> Self {
        let mut key_namespace = SmallVec::with_capacity(key.len() + namespace.len());
        key_namespace.extend_from_slice(key);
        key_namespace.extend_from_slice(namespace);
        ValueSlot {
            state,
            meta: namespace.len() as u32 & !MARK,
            key_namespace,
            value: SmallVec::from_slice(value),
        }
    }

    pub(super) fn split(&self) -> (&[u8], &[u8]) {
        self.key_namespace
            .split_at(self.key_namespace.len() - self.namespace_len())
    }

    pub(super) fn namespace_len(&self) -> usize {
        (self.meta & !MARK) as usize
    }

    /// The slot's [`MARK`].
    pub(super) fn mark(&self) -> bool {
        self.meta & MARK != 0
    }

    /// Sets the slot's [`MARK`].
    pub(super) fn set_mark(&mut self, mark: bool) {
        self.meta = if mark {
            self.meta | MARK
        } else {
            self.meta & !MARK
        };
    }

    pub(super) fn hash(&self) -> u64 {
        let (key, namespace) = self.split();
        slot_hash(self.state, key, namespace)
    }

    pub(super) fn is(&self, state: StateId, key: &[u8], namespace: &[u8]) -> bool {
        if self.state != state
            || self.namespace_len() != namespace.len()
            || self.key_namespace.len() != key.len() + namespace.len()
        {
            return false;
        }
        let (k, n) = self.split();
        key_eq(k, key) && key_eq(n, namespace)
    }
}
