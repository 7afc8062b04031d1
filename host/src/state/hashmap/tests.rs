//! Tests of the `hashmap` backend: the conformance suite (also with
//! copy-on-write snapshots in steps of one and three buckets), the layout
//! of a value slot, the byte count and its limit, and when tables grow.

crate::state_conformance_tests!(super::HashMapBackend::new);

/// Copy-on-write snapshots that read one bucket of a value table per
/// step, so that writes, removals and inserts that grow or rehash a table
/// come between the steps of one key group.
mod one_bucket_per_snapshot_step {
    crate::state_conformance_tests!(
        |range| crate::state::hashmap::HashMapBackend::new(range).with_snapshot_step(1)
    );
}

/// Three buckets per step: steps that end in the middle of a table whose
/// size is a power of two.
mod three_buckets_per_snapshot_step {
    crate::state_conformance_tests!(
        |range| crate::state::hashmap::HashMapBackend::new(range).with_snapshot_step(3)
    );
}

/// The value slot's size and alignment, which the lookups are built on.
mod layout {
    #[test]
    fn a_value_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<super::super::ValueSlot>(), 64);
        assert_eq!(std::mem::align_of::<super::super::ValueSlot>(), 64);
    }
}

/// The byte count and the limit.
mod limits {
    use super::super::*;

    fn at<'a>(key: &'a [u8], ns: &'a [u8]) -> StateKey<'a> {
        StateKey {
            key_group: 0,
            key,
            namespace: ns,
        }
    }

    #[test]
    fn size_follows_writes_and_removals_and_the_limit_refuses_growth() {
        let mut b = HashMapBackend::with_limit(KeyGroupRange { start: 0, end: 0 }, 1000);
        let v = b.register("v", StateKind::Value).expect("register");
        let l = b.register("l", StateKind::List).expect("register");
        b.value_put(v, at(b"k", b""), b"12345").expect("put");
        let one = b.size_bytes();
        assert_eq!(one, 1 + ENTRY_OVERHEAD + 5);
        b.value_put(v, at(b"k", b""), b"1").expect("overwrite");
        assert_eq!(b.size_bytes(), one - 4);
        b.clear(v, at(b"k", b"")).expect("clear");
        assert_eq!(b.size_bytes(), 0);
        b.list_add(l, at(b"k", b""), &[0; 100]).expect("add");
        b.clear(l, at(b"k", b"")).expect("clear");
        assert_eq!(b.size_bytes(), 0);
        let err = (0..20)
            .map(|_| b.list_add(l, at(b"k", b""), &[0; 100]))
            .find(Result::is_err);
        assert!(matches!(err, Some(Err(StateError::Full { limit: 1000 }))));
    }
}

/// Key groups' value tables grow at fills that differ by key group.
mod growth {
    use super::super::slot::{ValueSlot, early_growth_point, grow_early};
    use hashbrown::HashTable;

    /// How many entries the table of `key_group` holds when it grows
    /// past its first capacity (at least `from`), filled one entry at a
    /// time as `value_put` does; and that capacity.
    fn grows_at(key_group: u32, from: usize) -> (usize, usize) {
        let mut t: HashTable<ValueSlot> = HashTable::with_capacity(from);
        let before = t.capacity();
        for i in 0u64.. {
            grow_early(&mut t, key_group);
            if t.capacity() > before {
                return (t.len(), before);
            }
            let slot = ValueSlot::new(0, &i.to_le_bytes(), b"", b"v");
            t.insert_unique(slot.hash(), slot, ValueSlot::hash);
            if t.capacity() > before {
                // hashbrown grew it to insert this one.
                return (t.len() - 1, before);
            }
        }
        unreachable!()
    }

    #[test]
    fn key_groups_grow_within_the_last_quarter_of_their_capacity_at_different_fills() {
        let points: Vec<(usize, usize)> = (0..128).map(|kg| grows_at(kg, 4000)).collect();
        let capacity = points[0].1;
        assert!(points.iter().all(|&(_, c)| c == capacity));
        assert!(
            points
                .iter()
                .all(|&(n, _)| n >= capacity * 3 / 4 && n <= capacity)
        );
        let mut fills: Vec<usize> = points.iter().map(|&(n, _)| n).collect();
        fills.sort_unstable();
        fills.dedup();
        // Spread over the quarter, not bunched: many distinct points.
        assert!(fills.len() > 100, "{fills:?}");
        assert!(
            fills[fills.len() - 1] - fills[0] > capacity / 5,
            "{fills:?}"
        );
    }

    #[test]
    fn a_capacity_reduced_by_removed_entries_is_left_to_hashbrown() {
        // 7168 is 7/8 of 8192 buckets; removals leave tombstones that
        // `capacity()` no longer counts, and a table so reduced is not
        // grown early (hashbrown may rehash it in place instead).
        for kg in 0..128 {
            let at = early_growth_point(7168, kg).expect("a whole table");
            assert!((7168 * 3 / 4..=7168).contains(&at), "{at}");
            for reduced in [7167, 7000, 5000, 3585] {
                assert_eq!(early_growth_point(reduced, kg), None);
            }
        }
    }

    #[test]
    fn value_put_grows_key_groups_at_different_fills() {
        use crate::keygroup::KeyGroupRange;
        use crate::state::{KeyedStateBackend, StateKey, StateKind};
        let mut b = super::super::HashMapBackend::new(KeyGroupRange { start: 0, end: 127 });
        let v = b.register("v", StateKind::Value).expect("register");
        // Key groups 2 and 3 have phases 60 and 218 of 256: they grow
        // from 3584 at about 3374 and 2821 entries.
        let mut grew_at = Vec::new();
        for kg in [2u32, 3] {
            for i in 0u64.. {
                let key = i.to_le_bytes();
                let at = StateKey {
                    key_group: kg,
                    key: &key,
                    namespace: b"",
                };
                b.value_put(v, at, b"v").expect("put");
                let table = &b.groups[kg as usize].values;
                if table.capacity() >= 2 * 3584 {
                    grew_at.push(table.len());
                    break;
                }
            }
        }
        // Both grew before they were full (3584), at fills far apart.
        assert!(grew_at.iter().all(|&n| n < 3584), "{grew_at:?}");
        assert!(grew_at[0].abs_diff(grew_at[1]) > 3584 / 8, "{grew_at:?}");
    }

    #[test]
    fn small_tables_grow_when_hashbrown_grows_them() {
        for kg in 0..16 {
            let (n, capacity) = grows_at(kg, 100);
            assert_eq!(n, capacity);
        }
    }
}
