//! `weir bench languages`: the keyed count written in Rust, Python and
//! JavaScript, each on its batched path (a guest call per batch of
//! records, their value state prefetched with it, output in one host call)
//! and its per-record path (`weir.batch.size: 1`, so a guest call per
//! record, and `per-record=true`: its state read and written through host
//! calls), in
//! one run: records per second, peak memory, component size, the first
//! start (compiling) and a start from the component cache.

use anyhow::{Context, bail};

use super::{BenchArgs, Measurement, first_record, prepare, spawn_child};
use crate::config::Config;

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let mut components = vec![("rust", args.wasm.clone())];
    components.extend(args.python.clone().map(|p| ("python", p)));
    components.extend(args.javascript.clone().map(|p| ("javascript", p)));
    if components.len() == 1 {
        bail!("give --python and/or --javascript components to compare with --wasm");
    }
    let p = args.parallelism.first().copied().unwrap_or(1);
    eprintln!(
        "languages: keyed count, {} records, {} keys, p={p}, {} backend, discard sink; machine: {} cores",
        args.records,
        args.keys,
        args.backend,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for (language, wasm) in &components {
        let size = std::fs::metadata(wasm)
            .with_context(|| format!("{}", wasm.display()))?
            .len();
        let exe = std::env::current_exe().context("cannot find the weir binary")?;
        let cold = first_record(&exe, wasm, config, true)?;
        let warm = first_record(&exe, wasm, config, false)?;
        let mut measured = Vec::new();
        for (path, per_record) in [("batched", false), ("per-record", true)] {
            let one = BenchArgs {
                wasm: wasm.clone(),
                operator_config: per_record
                    .then(|| "per-record=true".to_owned())
                    .into_iter()
                    .collect(),
                batch_size: per_record.then_some(1),
                ..args.clone()
            };
            let exe = prepare(&one, config)?;
            let m = spawn_child(&exe, &one, p, "wasm")?;
            println!("{}", serde_json::to_string(&m)?);
            measured.push((path, m));
        }
        rows.push(Row {
            language,
            size,
            cold: cold.as_secs_f64(),
            warm: warm.as_secs_f64(),
            measured,
        });
    }
    print_table(&rows);
    Ok(())
}

/// One language's figures.
struct Row<'a> {
    language: &'a str,
    size: u64,
    cold: f64,
    warm: f64,
    measured: Vec<(&'static str, Measurement)>,
}

fn print_table(rows: &[Row<'_>]) {
    println!();
    println!(
        "{:<11} {:<11} {:>12} {:>10} {:>10} {:>12} {:>12} {:>9}",
        "language",
        "path",
        "records/s",
        "peak RSS",
        "size",
        "first start",
        "cached start",
        "batched/"
    );
    for row in rows {
        let per_record = row
            .measured
            .iter()
            .find(|(path, _)| *path == "per-record")
            .map_or(f64::NAN, |(_, m)| m.records_per_second);
        for (path, m) in &row.measured {
            println!(
                "{:<11} {:<11} {:>12.0} {:>6.0} MiB {:>7.1} MB {:>10.2} s {:>10.3} s {:>9}",
                row.language,
                path,
                m.records_per_second,
                m.peak_rss_mib,
                row.size as f64 / 1e6,
                row.cold,
                row.warm,
                if *path == "batched" {
                    format!("{:.1}x", m.records_per_second / per_record)
                } else {
                    String::new()
                }
            );
        }
    }
    println!();
    println!(
        "first start: process start to first record with an empty component cache (compiling); cached start: the same with the compiled component cached. batched/: the batched path over the per-record path."
    );
}
