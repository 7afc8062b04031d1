//! `weir bench languages`: the keyed count written in Rust, Python and
//! JavaScript, each on its batched path (a guest call per batch of
//! records, their value state prefetched with it, output in one host call)
//! and its per-record path (`weir.batch.size: 1`, so a guest call per
//! record, and `per-record=true`: its state read and written through host
//! calls), in
//! one run: records per second, peak memory, component size, the first
//! start (compiling) and a start from the component cache. Each run is a
//! fresh child process; the two paths run in turn, run by run, so a slow
//! spell of a shared machine falls on both, and each run pair's ratio is
//! reported besides the best runs'.

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
        let (measured, pairs) = measure_paths(args, config, wasm, p)?;
        rows.push(Row {
            language,
            size,
            cold: cold.as_secs_f64(),
            warm: warm.as_secs_f64(),
            measured,
            pairs,
        });
    }
    print_table(&rows);
    Ok(())
}

/// A path's name and its best run.
type PathMeasurement = (&'static str, Measurement);

/// Both paths of one component, run after run in turn (batched, then
/// per-record, `args.runs` times) so that a shared machine's slow spell
/// falls on both: the best run of each path, and each run pair's ratio.
fn measure_paths(
    args: &BenchArgs,
    config: &Config,
    wasm: &std::path::Path,
    p: u32,
) -> anyhow::Result<(Vec<PathMeasurement>, Vec<f64>)> {
    let paths = [("batched", false), ("per-record", true)];
    let exe = prepare(
        &BenchArgs {
            wasm: wasm.to_path_buf(),
            ..args.clone()
        },
        config,
    )?;
    let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(), Vec::new()];
    for _ in 0..args.runs.max(1) {
        for (i, (_, per_record)) in paths.iter().enumerate() {
            let one = BenchArgs {
                wasm: wasm.to_path_buf(),
                operator_config: per_record
                    .then(|| "per-record=true".to_owned())
                    .into_iter()
                    .collect(),
                batch_size: per_record.then_some(1),
                runs: 1,
                ..args.clone()
            };
            let m = spawn_child(&exe, &one, p, "wasm")?;
            println!("{}", serde_json::to_string(&m)?);
            runs[i].push(m);
        }
    }
    let pairs = runs[0]
        .iter()
        .zip(&runs[1])
        .filter(|(_, r)| rate(r) > 0.0)
        .map(|(b, r)| rate(b) / rate(r))
        .collect();
    let mut measured = Vec::new();
    for ((path, _), all) in paths.into_iter().zip(runs) {
        let mut all = all.into_iter();
        let Some(first) = all.next() else {
            bail!("no run of the {path} path");
        };
        let best = all.fold(first, |best, m| {
            let mut all_seconds = best.all_seconds.clone();
            all_seconds.extend(&m.all_seconds);
            // Memory is the most any run took, speed the best run's.
            let peak_rss_mib = best.peak_rss_mib.max(m.peak_rss_mib);
            let winner = if rate(&m) > rate(&best) { m } else { best };
            Measurement {
                all_seconds,
                peak_rss_mib,
                ..winner
            }
        });
        measured.push((path, best));
    }
    Ok((measured, pairs))
}

/// A path's throughput once its job has started: its start is the table's
/// own column (a Python component's instance takes about 0.2 s to start,
/// which would otherwise weigh on its short batched runs most).
fn rate(m: &Measurement) -> f64 {
    m.steady_records_per_second
}

/// One language's figures.
struct Row<'a> {
    language: &'a str,
    size: u64,
    cold: f64,
    warm: f64,
    measured: Vec<PathMeasurement>,
    /// batched over per-record, run pair by run pair.
    pairs: Vec<f64>,
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
            .map_or(f64::NAN, |(_, m)| rate(m));
        for (path, m) in &row.measured {
            println!(
                "{:<11} {:<11} {:>12.0} {:>6.0} MiB {:>7.1} MB {:>10.2} s {:>10.3} s {:>9}",
                row.language,
                path,
                rate(m),
                m.peak_rss_mib,
                row.size as f64 / 1e6,
                row.cold,
                row.warm,
                if *path == "batched" {
                    format!("{:.1}x", rate(m) / per_record)
                } else {
                    String::new()
                }
            );
        }
        let pairs: Vec<String> = row.pairs.iter().map(|r| format!("{r:.1}x")).collect();
        println!(
            "{:<11} batched/ of each run pair: {}",
            row.language,
            pairs.join(" ")
        );
    }
    println!();
    println!(
        "records/s: from the first record out to the end of the job (its start is the next columns'); first start: process start to first record with an empty component cache (compiling); cached start: the same with the compiled component cached. batched/: the best batched run over the best per-record run; the paths run in turn, run by run, and each pair's ratio is listed too."
    );
}
