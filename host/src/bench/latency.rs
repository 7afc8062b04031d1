//! `weir bench latency`: how long a record takes from source to sink under
//! load. The datagen source stamps each record with the wall-clock
//! microseconds of its generation (`latency-stamps`), and the sink records
//! arrival minus stamp in an HdrHistogram (`measure-latency`). Each run
//! first gives the count one record for every key, unmeasured and at full
//! speed (`fill-keys`), so that the measured records meet the state with
//! all its keys: a run at a fixed rate would otherwise reach only as many
//! keys as it has records.
//!
//! For each configuration (the `--restore-keys` key counts; the hashmap
//! and RocksDB backends, RocksDB only below ten million keys; each of
//! `--parallelism`), with checkpoints every `--checkpoint-interval`: one
//! run without a rate finds the job's maximum throughput (`--records`
//! records), then one run of `--seconds` at each of 10%, 50% and 90% of
//! it. Each row gives p50, p99, p99.9 and the maximum latency beside the
//! throughput of the measured records and the slowest synchronous part of
//! a checkpoint.

use super::{BenchArgs, Measurement, spawn_child};
use crate::config::Config;
use crate::spec::graph::{JobGraph, NodeKind};

/// The offered rates, as fractions of the measured maximum.
const FRACTIONS: [f64; 3] = [0.1, 0.5, 0.9];

/// Turns the keyed-count graph into the measured one: stamped records,
/// at `rate` records per second over all source subtasks (none below 1),
/// after one unmeasured record per key, and latency measured at the sink.
pub(crate) fn measure_in(graph: &mut JobGraph, rate: f64) {
    for node in &mut graph.nodes {
        match &mut node.kind {
            NodeKind::Source(s) => {
                s.latency_stamps = Some(true);
                s.fill_keys = Some(true);
                s.rate = (rate >= 1.0).then_some(rate as u64);
            }
            NodeKind::Sink(s) => s.measure_latency = Some(true),
            _ => {}
        }
    }
}

/// One measured run.
struct Row {
    backend: &'static str,
    keys: u64,
    parallelism: u32,
    /// The share of the maximum offered (None: no rate, the maximum run).
    fraction: Option<f64>,
    offered: f64,
    m: Measurement,
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let exe = super::prepare(args, config)?;
    eprintln!(
        "latency: keyed count (wasm), checkpoints every {} ms, {} s at each offered rate; machine: {} cores",
        args.checkpoint_interval.as_millis(),
        args.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for &keys in &args.restore_keys {
        for backend in ["hashmap", "rocksdb"] {
            if backend == "rocksdb" && keys >= 10_000_000 {
                continue;
            }
            for &p in &args.parallelism {
                let base = BenchArgs {
                    keys,
                    backend: backend.to_owned(),
                    runs: 1,
                    ..args.clone()
                };
                let max = spawn_child(
                    &exe,
                    &BenchArgs {
                        rate: 0.0,
                        ..base.clone()
                    },
                    p,
                    "wasm-latency",
                )?;
                println!("{}", serde_json::to_string(&max)?);
                let top = max.steady_records_per_second;
                let row = |fraction, offered, m| Row {
                    backend,
                    keys,
                    parallelism: p,
                    fraction,
                    offered,
                    m,
                };
                rows.push(row(None, top, max));
                for fraction in FRACTIONS {
                    let offered = top * fraction;
                    let records = ((offered * args.seconds as f64) as u64).max(1);
                    let one = BenchArgs {
                        rate: offered,
                        records,
                        ..base.clone()
                    };
                    let m = spawn_child(&exe, &one, p, "wasm-latency")?;
                    println!("{}", serde_json::to_string(&m)?);
                    rows.push(row(Some(fraction), offered, m));
                }
            }
        }
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<8} {:>9} {:>3} {:>8} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "backend",
        "keys",
        "p",
        "offered",
        "offered/s",
        "reached/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "sync ms"
    );
    for r in rows {
        let l = r.m.latency.unwrap_or_default();
        let ms = |us: u64| us as f64 / 1e3;
        let sync =
            r.m.checkpoints
                .iter()
                .map(|c| c.max_sync_ms)
                .fold(0.0, f64::max);
        println!(
            "{:<8} {:>9} {:>3} {:>8} {:>12.0} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            r.backend,
            r.keys,
            r.parallelism,
            r.fraction
                .map_or_else(|| "max".to_owned(), |f| format!("{:.0}%", f * 100.0)),
            r.offered,
            r.m.steady_records_per_second,
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
            sync
        );
    }
    println!();
    println!(
        "offered: the source's rate (max: none, the run that measures the maximum), after one unmeasured record per key; reached/s: measured records per second, from the first to the last to reach the sink; latency: source generation to sink arrival over all records; sync ms: the slowest synchronous part of any checkpoint in the run."
    );
}
