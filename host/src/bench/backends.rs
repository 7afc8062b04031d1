//! `weir bench backends`: the state backends side by side on the keyed
//! count with checkpoints every `--checkpoint-interval`: the hashmap
//! backend, RocksDB with full checkpoints and RocksDB with incremental
//! ones, for each of the `--restore-keys` key counts (`--records` records
//! each, parallelism the first of `--parallelism`).
//!
//! Per row: throughput and peak RSS (a child process per measurement),
//! the bytes each checkpoint wrote against the full size of the state, the
//! checkpoint duration, and the restore time (`weir run -s` from process
//! start to its first record, on a checkpoint holding every key; see
//! [`super::checkpointing`]).

use super::checkpointing::restore_time;
use super::{BenchArgs, spawn_child};
use crate::config::Config;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn mib(bytes: f64) -> f64 {
    bytes / f64::from(1 << 20)
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let exe = super::prepare(args, config)?;
    let p = args.parallelism.first().copied().unwrap_or(1);
    eprintln!(
        "backends: keyed count (wasm), {} records, parallelism {p}, checkpoints every {} ms, best of {} run(s); machine: {} cores",
        args.records,
        args.checkpoint_interval.as_millis(),
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let kinds = [
        ("hashmap", false, ""),
        ("rocksdb", false, "  state.backend.type: rocksdb\n"),
        (
            "rocksdb",
            true,
            "  state.backend.type: rocksdb\n  state.backend.incremental: true\n",
        ),
    ];
    let mut rows = Vec::new();
    for &keys in &args.restore_keys {
        for (backend, incremental, extra) in kinds {
            let a = BenchArgs {
                keys,
                backend: backend.into(),
                incremental,
                ..args.clone()
            };
            let m = spawn_child(&exe, &a, p, "wasm-checkpointed")?;
            println!("{}", serde_json::to_string(&m)?);
            let (restore, restored_size) = restore_time(&exe, &args.wasm, keys, config, extra)?;
            let name = match (backend, incremental) {
                ("rocksdb", true) => "rocksdb incremental",
                ("rocksdb", false) => "rocksdb full",
                _ => "hashmap",
            };
            let c = &m.checkpoints;
            let written: Vec<f64> = c.iter().map(|x| x.checkpointed_size as f64).collect();
            let full: Vec<f64> = c.iter().map(|x| x.size as f64).collect();
            let duration: Vec<f64> = c.iter().map(|x| x.duration_ms).collect();
            let row = format!(
                "{keys:>9} {name:<20} {:>11.0} {:>8.1} {:>5} {:>10.1} {:>10.1} {:>8.0} {:>8.0} {:>9.0} {:>10.1}",
                m.records_per_second,
                m.peak_rss_mib,
                c.len(),
                mib(mean(&written)),
                mib(mean(&full)),
                mean(&duration),
                duration.iter().copied().fold(0.0, f64::max),
                restore.as_secs_f64() * 1e3,
                mib(restored_size as f64),
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }
    println!();
    println!(
        "{:>9} {:<20} {:>11} {:>8} {:>5} {:>10} {:>10} {:>8} {:>8} {:>9} {:>10}",
        "keys",
        "backend",
        "records/s",
        "RSS MiB",
        "ckpts",
        "MiB/ckpt",
        "full MiB",
        "mean ms",
        "max ms",
        "restore",
        "of MiB"
    );
    for r in rows {
        println!("{r}");
    }
    println!(
        "\nMiB/ckpt: bytes each checkpoint wrote (mean); full MiB: the state's full size (mean); mean/max ms: checkpoint duration; restore: ms from `weir run -s` to the first record, restoring a checkpoint of every key (of MiB)"
    );
    Ok(())
}
