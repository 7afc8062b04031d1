//! `weir.state.max-bytes` on RocksDB: what the subtask writes is counted,
//! and every few MiB (an eighth of the limit at most) RocksDB's own
//! estimate of the state's size (live data in SST files plus memtables) is
//! compared with the limit. A state that grew past it fails the write with
//! [`StateError::Full`], as on the hashmap backend.

use std::cell::Cell;

use super::RocksDbBackend;
use crate::state::StateError;

/// Written bytes after which the size is looked at, at most.
const CHECK_EVERY: usize = 4 << 20;

/// The limit and the bytes written since it was last checked.
#[derive(Debug)]
pub(super) struct SizeLimit {
    max: usize,
    unchecked: Cell<usize>,
}

impl SizeLimit {
    /// A limit of `max` bytes (`usize::MAX`: none).
    pub(super) fn new(max: usize) -> Self {
        SizeLimit {
            max,
            unchecked: Cell::new(0),
        }
    }
}

impl RocksDbBackend {
    /// Counts `bytes` just written; past the check interval, fails if the
    /// state is larger than the limit.
    pub(super) fn charge(&self, bytes: usize) -> Result<(), StateError> {
        let limit = &self.limit;
        if limit.max == usize::MAX {
            return Ok(());
        }
        let unchecked = limit.unchecked.get() + bytes;
        if unchecked < CHECK_EVERY.min(limit.max / 8).max(1) {
            limit.unchecked.set(unchecked);
            return Ok(());
        }
        limit.unchecked.set(0);
        if self.size_estimate() > limit.max as u64 {
            return Err(StateError::Full { limit: limit.max });
        }
        Ok(())
    }

    /// RocksDB's estimate of the state's size: live data in SST files and
    /// what the memtables hold, over every column family.
    fn size_estimate(&self) -> u64 {
        let mut total = 0;
        for (name, _) in &self.states {
            let Some(cf) = self.db.cf_handle(&Self::cf_name(name)) else {
                continue;
            };
            for property in [
                "rocksdb.estimate-live-data-size",
                "rocksdb.size-all-mem-tables",
            ] {
                if let Ok(Some(v)) = self.db.property_int_value_cf(cf, property) {
                    total += v;
                }
            }
        }
        total
    }
}
