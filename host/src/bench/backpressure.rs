//! `weir bench backpressure`: checkpoints under backpressure, aligned
//! against unaligned.
//!
//! The job: datagen at `--rate` records/s → (hash) the WebAssembly keyed
//! count → (hash) a sink ten times slower than the source (a native
//! throttle passing `--rate / 10` records/s over all its subtasks, then a
//! discard sink) at the last of `--parallelism` (2), with checkpoints every
//! `--checkpoint-interval`. Every channel in front of the slow stage stays
//! full, so an aligned checkpoint waits for the queues to drain, while an
//! unaligned one overtakes them and stores what it overtook. Both runs
//! take `--seconds` at the slow stage's rate and run one after the other in
//! this process; the figures to compare are the ratios between them.

use std::time::Duration;

use anyhow::Context;

use super::BenchArgs;
use crate::checkpoint::stats::CheckpointStats;
use crate::config::Config;
use crate::runtime::{JobControl, RunOptions, run_job};
use crate::spec::Partitioning;
use crate::spec::graph::{Edge, JobGraph, Node, NodeKind};

/// The figures of one run.
struct RunFigures {
    records_per_second: f64,
    checkpoints: Vec<CheckpointStats>,
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    super::prepare(args, config)?;
    let p = args.parallelism.last().copied().unwrap_or(2);
    let sink_rate = args.rate / 10.0;
    let records = (sink_rate * args.seconds as f64) as u64;
    eprintln!(
        "backpressure: keyed count (wasm) at parallelism {p}, source {:.0} records/s, sink {sink_rate:.0} records/s (10x slower), {records} records, checkpoints every {} ms, channels of {} batches of {}; machine: {} cores",
        args.rate,
        args.checkpoint_interval.as_millis(),
        config.channel_capacity,
        config.batch_size,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let aligned = measure(args, config, p, records, false)?;
    let unaligned = measure(args, config, p, records, true)?;
    println!();
    println!(
        "{:<10} {:>10} {:>6} {:>12} {:>12} {:>12} {:>16}",
        "mode", "records/s", "ckpts", "mean ms", "p50 ms", "max ms", "persisted bytes"
    );
    for (name, f) in [("aligned", &aligned), ("unaligned", &unaligned)] {
        let d = durations(&f.checkpoints);
        let persisted = f.checkpoints.iter().map(|c| c.persisted_bytes).sum::<u64>()
            / f.checkpoints.len().max(1) as u64;
        println!(
            "{name:<10} {:>10.0} {:>6} {:>12.1} {:>12.1} {:>12.1} {:>16}",
            f.records_per_second,
            f.checkpoints.len(),
            mean(&d),
            percentile(&d, 0.5),
            d.last().copied().unwrap_or(0.0),
            persisted
        );
    }
    let interval = args.checkpoint_interval.as_secs_f64() * 1e3;
    let (a, u) = (
        durations(&aligned.checkpoints),
        durations(&unaligned.checkpoints),
    );
    println!();
    println!(
        "unaligned / aligned checkpoint duration (p50): {:.3}; unaligned p50 / interval: {:.2} (target: under 2); throughput unaligned / aligned: {:.3}",
        percentile(&u, 0.5) / percentile(&a, 0.5).max(f64::MIN_POSITIVE),
        percentile(&u, 0.5) / interval,
        unaligned.records_per_second / aligned.records_per_second.max(f64::MIN_POSITIVE)
    );
    Ok(())
}

/// Runs the job once, aligned or unaligned.
fn measure(
    args: &BenchArgs,
    config: &Config,
    p: u32,
    records: u64,
    unaligned: bool,
) -> anyhow::Result<RunFigures> {
    let scratch = tempfile::tempdir().context("cannot make a scratch folder")?;
    let mut config = config.clone();
    config.progress_interval = Duration::ZERO;
    config.checkpoint.interval = Some(args.checkpoint_interval);
    config.checkpoint.dir = scratch.path().join("checkpoints");
    config.checkpoint.unaligned.enabled = unaligned;
    config.backend.rocksdb_dir = scratch.path().join("rocksdb");
    let graph = job(args, p, records, config);
    let options = RunOptions {
        native: Some(std::sync::Arc::new(super::native::BenchOperators)),
        ..RunOptions::default()
    };
    let summary = run_job(&graph, &options, &JobControl::default())?;
    let checkpoints: Vec<CheckpointStats> = summary
        .checkpoints
        .iter()
        .filter(|c| !c.is_final)
        .cloned()
        .collect();
    let figures = RunFigures {
        records_per_second: records as f64 / summary.duration.as_secs_f64(),
        checkpoints,
    };
    println!(
        "{}",
        serde_json::json!({
            "unaligned": unaligned,
            "records": records,
            "seconds": summary.duration.as_secs_f64(),
            "records_per_second": figures.records_per_second,
            "checkpoint_durations_ms": durations(&figures.checkpoints),
            "persisted_bytes": figures.checkpoints.iter().map(|c| c.persisted_bytes).collect::<Vec<_>>(),
        })
    );
    Ok(figures)
}

/// datagen → (hash) count → (hash) throttle → discard.
fn job(args: &BenchArgs, p: u32, records: u64, config: Config) -> JobGraph {
    let count_args = BenchArgs {
        records,
        ..args.clone()
    };
    let mut g = super::keyed_count_graph(&count_args, p, false, config);
    g.name = format!("bench backpressure p={p}");
    if let NodeKind::Source(s) = &mut g.nodes[0].kind {
        s.rate = Some(args.rate as u64);
    }
    let per_subtask = args.rate / 10.0 / f64::from(p);
    g.nodes.insert(
        2,
        Node {
            id: "slow".into(),
            uid: "slow".into(),
            parallelism: p,
            kind: NodeKind::Native {
                name: format!("throttle:{per_subtask}"),
            },
            chaining: true,
        },
    );
    g.edges = vec![
        edge(0, 1, Partitioning::Hash),
        edge(1, 2, Partitioning::Hash),
        edge(2, 3, Partitioning::Forward),
    ];
    g
}

fn edge(from: usize, to: usize, partition: Partitioning) -> Edge {
    Edge {
        from,
        to,
        partition,
        input: 0,
        side: None,
    }
}

/// The checkpoints' durations in ms, sorted.
fn durations(c: &[CheckpointStats]) -> Vec<f64> {
    let mut d: Vec<f64> = c.iter().map(|x| x.duration_ms).collect();
    d.sort_by(f64::total_cmp);
    d
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The `q` quantile of sorted `v` (0 if empty).
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}
