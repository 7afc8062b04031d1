//! The settings of the RocksDB backend: [`RocksDbOptions`] (memory and
//! checkpoint settings), the options every column family gets (block
//! cache, bloom filter, write buffers, the list-append merge operator) and
//! the compaction filter that drops expired entries of a state with a
//! time-to-live.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rocksdb::compaction_filter::Decision as CompactionDecision;
use rocksdb::{
    BlockBasedOptions, Cache, DataBlockIndexType, MergeOperands, Options, WriteBufferManager,
};

/// Memory settings of one RocksDB instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocksDbOptions {
    /// Block cache for reads (`state.backend.rocksdb.block.cache-size`),
    /// when `memory_bytes` is 0.
    pub block_cache_bytes: usize,
    /// Memory the block cache and the memtables share
    /// (`state.backend.rocksdb.memory.fixed-per-slot`; 0: the block cache
    /// is `block_cache_bytes` and memtables are bounded only by their
    /// size and count).
    pub memory_bytes: usize,
    /// Share of `memory_bytes` the memtables may take
    /// (`state.backend.rocksdb.memory.write-buffer-ratio`).
    pub write_buffer_ratio: f64,
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
    /// 256 MiB shared by the block cache and memtables (half at most for
    /// memtables), two 64 MiB write buffers per state.
    fn default() -> Self {
        RocksDbOptions {
            block_cache_bytes: 8 << 20,
            memory_bytes: 256 << 20,
            write_buffer_ratio: 0.5,
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

/// Share of a memtable's size its bloom filter takes, allocated with the
/// memtable (1.3 MiB of a 64 MiB one: about 6 bits per entry of a count).
const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// The column-family options every state gets (public so that `weir bench
/// state-floor` measures RocksDB alone with the backend's own options).
pub fn column_family_options(options: &RocksDbOptions) -> Options {
    let mut cf_options = Options::default();
    let cache = if options.memory_bytes > 0 {
        // One budget, as Flink's managed memory: memtables are charged to
        // the block cache, so both together stay within it.
        let cache = Cache::new_lru_cache(options.memory_bytes);
        let write_buffers = (options.memory_bytes as f64 * options.write_buffer_ratio) as usize;
        let manager = WriteBufferManager::new_write_buffer_manager_with_cache(
            write_buffers,
            false,
            cache.clone(),
        );
        cf_options.set_write_buffer_manager(&manager);
        cache
    } else {
        Cache::new_lru_cache(options.block_cache_bytes)
    };
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    // Point lookups are the hot read (a keyed count reads every record's
    // key): a hash index inside each data block finds the key without a
    // binary search of the block's restart points.
    table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
    table.set_data_block_hash_ratio(0.75);
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
    // A bloom filter over the memtable's whole keys: a lookup of a key the
    // memtable does not hold (most of them, with a large state) skips the
    // skip-list search.
    cf_options.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
    cf_options.set_memtable_whole_key_filtering(true);
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
