//! The settings of the RocksDB backend: [`RocksDbOptions`] (memory and
//! checkpoint settings), the options every column family gets (block
//! cache, bloom filter, write buffers, the list-append merge operator) and
//! the compaction filter that drops expired entries of a state with a
//! time-to-live.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rocksdb::compaction_filter::Decision as CompactionDecision;
use rocksdb::{BlockBasedOptions, Cache, MergeOperands, Options};

/// Memory settings of one RocksDB instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksDbOptions {
    /// Block cache for reads (`state.backend.rocksdb.block.cache-size`).
    pub block_cache_bytes: usize,
    /// Size of one memtable (`state.backend.rocksdb.writebuffer.size`).
    pub write_buffer_bytes: usize,
    /// Memtables per column family (`state.backend.rocksdb.writebuffer.count`).
    pub write_buffer_count: i32,
    /// Value-state writes held in memory before they go to RocksDB in one
    /// batch (`state.backend.rocksdb.write-cache.size`; 0: none).
    pub write_cache_bytes: usize,
    /// Checkpoints are RocksDB's own files, uploaded incrementally
    /// (`state.backend.incremental`).
    pub incremental: bool,
    /// Most bytes the subtask's state may take (`weir.state.max-bytes`),
    /// as RocksDB estimates its live data and memtables.
    pub max_bytes: usize,
}

impl Default for RocksDbOptions {
    /// Flink's defaults: 8 MiB of block cache, two 64 MiB write buffers.
    fn default() -> Self {
        RocksDbOptions {
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 64 << 20,
            write_buffer_count: 2,
            write_cache_bytes: 32 << 20,
            incremental: false,
            max_bytes: usize::MAX,
        }
    }
}

/// Per column family: whether its compaction filter drops expired entries.
pub(super) type TtlFlags = HashMap<String, Arc<AtomicBool>>;

/// The name of the list-append merge operator, stored in RocksDB's options.
const LIST_APPEND: &str = "weir-list-append";

/// Appends list elements: each operand is one length-prefixed element, so
/// concatenation is the whole merge (and is associative).
fn list_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for op in operands {
        out.extend_from_slice(op);
    }
    Some(out)
}

/// The column-family options every state gets.
pub(super) fn column_family_options(options: &RocksDbOptions) -> Options {
    let cache = Cache::new_lru_cache(options.block_cache_bytes);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    let mut cf_options = Options::default();
    cf_options.set_block_based_table_factory(&table);
    cf_options.set_write_buffer_size(options.write_buffer_bytes);
    cf_options.set_max_write_buffer_number(options.write_buffer_count.max(2));
    cf_options.set_merge_operator_associative(LIST_APPEND, list_append);
    // Without the write cache, a value written again while it is still
    // in the memtable replaces the old one in place instead of adding a
    // version: a keyed count updates the same keys over and over, and
    // the skip list would grow by one entry per update. The cache
    // already writes each key once per flush, and in-place updates cost
    // a search per write, so with it they are off.
    cf_options.set_inplace_update_support(options.write_cache_bytes == 0);
    cf_options.set_allow_concurrent_memtable_write(false);
    cf_options
}

/// The options of column family `name`: `base` with a compaction filter
/// that drops expired entries once the family's state is declared with
/// a time-to-live (its flag in `flags`).
pub(super) fn family_options(base: &Options, flags: &mut TtlFlags, name: &str) -> Options {
    let flag = flags.entry(name.to_owned()).or_default().clone();
    let mut options = base.clone();
    options.set_compaction_filter("weir-ttl", move |_level: u32, _key: &[u8], value: &[u8]| {
        if flag.load(Ordering::Relaxed)
            && crate::state::ttl::is_expired(value, crate::clock::epoch_ms())
        {
            CompactionDecision::Remove
        } else {
            CompactionDecision::Keep
        }
    });
    options
}
