//! Key groups: how keys map to the subtasks of a keyed operator.
//!
//! A key's *key group* is `xxh3_64(key) mod max_parallelism`, with XXH3
//! 64-bit, seed 0, over the raw key bytes. Subtask `i` of `p` owns the
//! contiguous range of key groups that Flink's
//! `KeyGroupRangeAssignment` gives it, so state stored per key group can be
//! redistributed when a job is restored at another parallelism.
//!
//! This hash is part of Weir's persistent format (checkpoints store state by
//! key group): [`KEY_GROUP_HASH_VERSION`] names it, and a test pins the key
//! groups of fixed keys to a checked-in fixture. Never change it silently.

use xxhash_rust::xxh3::xxh3_64;

/// Version of the key-group hash; bump it only with a migration.
pub const KEY_GROUP_HASH_VERSION: u32 = 1;

/// Default number of key groups (Flink's default lower bound is 128).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// Upper bound of max parallelism (Flink's is 32768).
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 32768;

/// The key group of `key`.
pub fn key_group(key: &[u8], max_parallelism: u32) -> u32 {
    key_group_of_hash(key_hash(key), max_parallelism)
}

/// The 64-bit hash of a key that its key group derives from; also used to
/// find a key's slot in a batch, so a key is hashed once.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The key group of a key whose [`key_hash`] is `hash`.
pub fn key_group_of_hash(hash: u64, max_parallelism: u32) -> u32 {
    (hash % u64::from(max_parallelism)) as u32
}

/// The subtask (of `parallelism`) that owns `key_group`.
pub fn subtask_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// A contiguous, inclusive range of key groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: u32,
    /// Last key group in the range (inclusive); `end < start` means empty.
    pub end: u32,
}

impl KeyGroupRange {
    /// The key groups subtask `index` of `parallelism` owns.
    pub fn for_subtask(max_parallelism: u32, parallelism: u32, index: u32) -> Self {
        let (m, p, i) = (
            u64::from(max_parallelism),
            u64::from(parallelism),
            u64::from(index),
        );
        let start = (i * m).div_ceil(p);
        let end = ((i + 1) * m - 1) / p;
        KeyGroupRange {
            start: start as u32,
            end: end as u32,
        }
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            (self.end - self.start + 1) as usize
        }
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key_group` lies in the range.
    pub fn contains(&self, key_group: u32) -> bool {
        key_group >= self.start && key_group <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in fixture: `key<TAB>key group at 128<TAB>key group at 4096`.
    const FIXTURE: &str = include_str!("../tests/fixtures/key-groups-v1.tsv");

    #[test]
    fn key_groups_match_the_checked_in_fixture() {
        let mut checked = 0;
        for line in FIXTURE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "fixture line {line:?}");
            let key = cols[0].as_bytes();
            let at_128: u32 = cols[1].parse().expect("number");
            let at_4096: u32 = cols[2].parse().expect("number");
            assert_eq!(key_group(key, 128), at_128, "key {:?} at 128", cols[0]);
            assert_eq!(key_group(key, 4096), at_4096, "key {:?} at 4096", cols[0]);
            checked += 1;
        }
        assert!(checked >= 20, "the fixture must hold keys");
    }

    #[test]
    fn ranges_partition_all_key_groups_and_agree_with_the_owner_function() {
        for max in [1u32, 7, 128, 1000] {
            for p in 1..=max.min(17) {
                let mut next = 0;
                for i in 0..p {
                    let r = KeyGroupRange::for_subtask(max, p, i);
                    assert_eq!(r.start, next, "max {max} p {p} i {i}");
                    for kg in r.start..=r.end {
                        assert_eq!(subtask_for_key_group(kg, max, p), i);
                    }
                    next = r.end + 1;
                }
                assert_eq!(next, max);
            }
        }
    }
}
