//! `weir bench state-floor`: the keyed count's state work alone, on one
//! thread, at `--keys` keys and `--records` records, with sequential and
//! with spread keys (datagen's two orders):
//!
//! - **backend**: through the RocksDB backend as a job's count uses it (a
//!   batch's values read at once with their hints, each written back
//!   through the write cache, an incremental checkpoint's synchronous part
//!   every `--checkpoint-interval`);
//! - **rocksdb alone**: against RocksDB directly with the backend's own
//!   options and key encoding (a multi-get and a write batch per batch, a
//!   RocksDB checkpoint, which flushes the memtables, every interval).
//!
//! No guest, no channels, no source thread, no deduplication of a batch's
//! keys (a batch of spread keys rarely repeats one at millions of keys):
//! what a keyed count on RocksDB cannot beat on this machine. The CPU
//! seconds include RocksDB's compaction threads. RocksDB's memory settings
//! are the configuration's (`--config`), as a job's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rocksdb::{DB, WriteBatch, WriteOptions};
use serde::Serialize;

use super::BenchArgs;
use crate::config::Config;
use crate::keygroup::{DEFAULT_MAX_PARALLELISM, KeyGroupRange, key_group};
use crate::source::key_number;
use crate::state::rocksdb::{
    RocksDbBackend, RocksDbOptions, column_family_options, push_entry_key,
};
use crate::state::{KeyedStateBackend, StateId, StateKey, StateKind};

/// The column family of the count (the backend's name for a state `count`).
const FAMILY: &str = "state:count";

/// Clock ticks per second of `/proc`'s CPU times on Linux.
const USER_HZ: f64 = 100.0;

/// What a measured path does with the state.
trait CountStore {
    /// Adds one to the count of each (key group, key).
    fn count(&mut self, keys: &[(u32, &[u8])]) -> anyhow::Result<()>;
    /// The synchronous part of checkpoint `id`.
    fn checkpoint(&mut self, id: u64) -> anyhow::Result<()>;
    /// The count of one key, as stored.
    #[cfg(test)]
    fn read(&mut self, key_group: u32, key: &[u8]) -> anyhow::Result<u64>;
}

/// A count as this bench stores it: eight bytes, little-endian (the
/// guest's `ValueState<u64>` writes postcard's varint, a few bytes less).
fn decode(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| v.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The state key of `key` in the default namespace.
fn at(key_group: u32, key: &[u8]) -> StateKey<'_> {
    StateKey {
        key_group,
        key,
        namespace: &[],
    }
}

/// The count through [`RocksDbBackend`].
struct Backend {
    backend: RocksDbBackend,
    state: StateId,
    /// The batch's counts and hints, as read.
    read: Vec<(u64, Option<usize>)>,
}

impl CountStore for Backend {
    fn count(&mut self, keys: &[(u32, &[u8])]) -> anyhow::Result<()> {
        self.read.clear();
        let read = &mut self.read;
        self.backend
            .value_get_many(self.state, keys, &mut |value, hint| {
                read.push((decode(value), hint));
            })?;
        for (&(key_group, key), &(n, hint)) in keys.iter().zip(&self.read) {
            let count = (n + 1).to_le_bytes();
            self.backend
                .value_put_hinted(self.state, at(key_group, key), &count, hint)?;
        }
        Ok(())
    }

    #[cfg(test)]
    fn read(&mut self, key_group: u32, key: &[u8]) -> anyhow::Result<u64> {
        let value = self.backend.value_get(self.state, at(key_group, key))?;
        Ok(decode(value.as_deref()))
    }

    fn checkpoint(&mut self, id: u64) -> anyhow::Result<()> {
        if let Some(snapshot) = self.backend.native_snapshot(id, true)? {
            std::fs::remove_dir_all(&snapshot.folder)?;
        }
        Ok(())
    }
}

/// The count against RocksDB alone.
struct Raw {
    db: DB,
    write: WriteOptions,
    dir: PathBuf,
    /// The batch's RocksDB keys, one after the other, and where each ends.
    encoded: Vec<u8>,
    ends: Vec<usize>,
}

impl CountStore for Raw {
    fn count(&mut self, keys: &[(u32, &[u8])]) -> anyhow::Result<()> {
        self.encoded.clear();
        self.ends.clear();
        for &(key_group, key) in keys {
            push_entry_key(&mut self.encoded, &at(key_group, key));
            self.ends.push(self.encoded.len());
        }
        let cf = self.db.cf_handle(FAMILY).context("no column family")?;
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        let slices: Vec<&[u8]> = starts
            .zip(&self.ends)
            .map(|(s, &e)| &self.encoded[s..e])
            .collect();
        let values = self.db.batched_multi_get_cf(cf, &slices, false);
        let mut batch = WriteBatch::default();
        for (key, value) in slices.iter().zip(values) {
            let n = decode(value?.as_deref());
            batch.put_cf(cf, key, (n + 1).to_le_bytes());
        }
        self.db.write_opt(batch, &self.write)?;
        Ok(())
    }

    #[cfg(test)]
    fn read(&mut self, key_group: u32, key: &[u8]) -> anyhow::Result<u64> {
        let mut encoded = Vec::new();
        push_entry_key(&mut encoded, &at(key_group, key));
        let cf = self.db.cf_handle(FAMILY).context("no column family")?;
        Ok(decode(self.db.get_cf(cf, encoded)?.as_deref()))
    }

    fn checkpoint(&mut self, id: u64) -> anyhow::Result<()> {
        let folder = self.dir.with_extension(format!("chk-{id}"));
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(&folder)?;
        std::fs::remove_dir_all(&folder)?;
        Ok(())
    }
}

/// One measured run.
#[derive(Debug, Serialize)]
struct Row {
    path: &'static str,
    keys: &'static str,
    records: u64,
    seconds: f64,
    records_per_second: f64,
    /// CPU seconds of the process (user + system), compaction included.
    cpu_seconds: f64,
    /// Synchronous checkpoint parts, in milliseconds.
    checkpoints_ms: Vec<f64>,
}

/// CPU seconds (user + system) this process has used, from
/// `/proc/self/stat` (in clock ticks of 1/100 s, Linux's fixed `USER_HZ`).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), from field 3:
    // utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / USER_HZ
}

/// What one run counts.
#[derive(Debug, Clone, Copy)]
struct Workload {
    records: u64,
    keys: u64,
    /// Keys per read.
    batch: u64,
    /// Between two checkpoints.
    interval: std::time::Duration,
    sequential: bool,
}

/// Counts the workload's keys in batches through `store`, with a
/// checkpoint every interval; returns the seconds it took and each
/// checkpoint's synchronous part in milliseconds.
fn measure(store: &mut dyn CountStore, w: Workload) -> anyhow::Result<(f64, Vec<f64>)> {
    let batch = w.batch.max(1);
    let mut arena = Vec::new();
    let mut spans: Vec<(u32, usize, usize)> = Vec::new();
    let mut checkpoints = Vec::new();
    let start = Instant::now();
    let mut last = start;
    let mut i = 0;
    while i < w.records {
        arena.clear();
        spans.clear();
        let end = (i + batch).min(w.records);
        for r in i..end {
            let from = arena.len();
            arena.extend_from_slice(b"key-");
            let n = key_number(r, w.keys, w.sequential);
            arena.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            let kg = key_group(&arena[from..], DEFAULT_MAX_PARALLELISM);
            spans.push((kg, from, arena.len()));
        }
        let keys: Vec<(u32, &[u8])> = spans.iter().map(|&(kg, s, e)| (kg, &arena[s..e])).collect();
        store.count(&keys)?;
        i = end;
        if last.elapsed() >= w.interval {
            let t = Instant::now();
            store.checkpoint(checkpoints.len() as u64 + 1)?;
            checkpoints.push(t.elapsed().as_secs_f64() * 1000.0);
            last = Instant::now();
        }
    }
    Ok((start.elapsed().as_secs_f64(), checkpoints))
}

/// The two ways the state work is measured.
#[derive(Debug, Clone, Copy)]
enum Store {
    /// Through [`RocksDbBackend`].
    Backend,
    /// Against RocksDB directly.
    Alone,
}

impl Store {
    /// The name the table and the JSON lines give it.
    fn name(self) -> &'static str {
        match self {
            Store::Backend => "backend",
            Store::Alone => "rocksdb alone",
        }
    }
}

/// Opens the measured store of `path` in `dir`, with the RocksDB settings
/// of `config` (incremental checkpoints whatever it says).
fn open(
    path: Store,
    dir: &std::path::Path,
    config: &Config,
) -> anyhow::Result<Box<dyn CountStore>> {
    let options = RocksDbOptions {
        incremental: true,
        ..crate::runtime::rocksdb_options(config)
    };
    let db_dir = dir.join("db");
    if let Store::Backend = path {
        let range = KeyGroupRange::for_subtask(DEFAULT_MAX_PARALLELISM, 1, 0);
        let mut backend = RocksDbBackend::restore(&db_dir, range, options, &[])?;
        let state = backend.register("count", StateKind::Value)?;
        return Ok(Box::new(Backend {
            backend,
            state,
            read: Vec::new(),
        }));
    }
    let cf_options = column_family_options(&options);
    let mut db_options = cf_options.clone();
    db_options.create_if_missing(true);
    let mut db = DB::open(&db_options, &db_dir)?;
    db.create_cf(FAMILY, &cf_options)?;
    let mut write = WriteOptions::default();
    write.disable_wal(true);
    Ok(Box::new(Raw {
        db,
        write,
        dir: db_dir,
        encoded: Vec::new(),
        ends: Vec::new(),
    }))
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    eprintln!(
        "state-floor: the count's state work alone on one thread, {} records, {} keys, checkpoints every {} ms; machine: {} cores",
        args.records,
        args.keys,
        args.checkpoint_interval.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for (keys, sequential) in [("sequential", true), ("spread", false)] {
        let w = Workload {
            records: args.records,
            keys: args.keys,
            batch: args.batch_size.unwrap_or(1024),
            interval: args.checkpoint_interval,
            sequential,
        };
        for path in [Store::Backend, Store::Alone] {
            // Removed when the run ends, or fails.
            let dir = tempfile::Builder::new()
                .prefix("weir-state-floor-")
                .tempdir()
                .context("no temporary folder")?;
            let cpu = cpu_seconds();
            let (seconds, checkpoints_ms) = measure(open(path, dir.path(), config)?.as_mut(), w)?;
            let row = Row {
                path: path.name(),
                keys,
                records: args.records,
                seconds,
                records_per_second: args.records as f64 / seconds.max(f64::MIN_POSITIVE),
                cpu_seconds: cpu_seconds() - cpu,
                checkpoints_ms,
            };
            println!("{}", serde_json::to_string(&row)?);
            rows.push(row);
        }
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<14} {:<11} {:>12} {:>10} {:>8} {:>18}",
        "path", "keys", "records/s", "µs/record", "CPU s", "checkpoint med/max"
    );
    for r in rows {
        let mut sorted = r.checkpoints_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let checkpoints = match (sorted.get(sorted.len() / 2), sorted.last()) {
            (Some(median), Some(max)) => format!("{median:.0}/{max:.0} ms"),
            _ => "none".to_owned(),
        };
        println!(
            "{:<14} {:<11} {:>12.0} {:>10.2} {:>8.1} {:>18}",
            r.path,
            r.keys,
            r.records_per_second,
            1e6 / r.records_per_second.max(f64::MIN_POSITIVE),
            r.cpu_seconds,
            checkpoints
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths count every record once and checkpoint between batches
    /// (sequential keys, more keys than a batch: no key twice in one).
    #[test]
    fn both_paths_count_each_record_once() {
        let w = Workload {
            records: 9_000,
            keys: 3_000,
            batch: 1_024,
            interval: std::time::Duration::ZERO,
            sequential: true,
        };
        for path in [Store::Backend, Store::Alone] {
            let dir = tempfile::tempdir().expect("temporary folder");
            let mut store = open(path, dir.path(), &Config::default()).expect("open");
            let path = path.name();
            let (_, checkpoints) = measure(store.as_mut(), w).expect("measure");
            assert_eq!(
                checkpoints.len(),
                9,
                "{path}: a checkpoint after each batch"
            );
            for n in 0..w.keys {
                let key = format!("key-{n}");
                let kg = key_group(key.as_bytes(), DEFAULT_MAX_PARALLELISM);
                let count = store.read(kg, key.as_bytes()).expect("read");
                assert_eq!(count, 3, "{path}: {key}");
            }
        }
    }
}
