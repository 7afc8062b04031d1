//! `weir bench keyed-count`: the keyed running count over generated
//! records, as the `count` WebAssembly operator and as the same logic in
//! native Rust, at each parallelism; plus peak memory and the time from
//! process start to the first record with a warm component cache.
//! `weir bench checkpointing` ([`checkpointing`]) measures what checkpoints
//! cost on the same job, `weir bench backends` ([`backends`]) compares the
//! state backends with checkpoints on, `weir bench savepoints`
//! ([`savepoints`]) savepoints beside checkpoints of the same state, and
//! `weir bench backpressure` ([`backpressure`]) aligned against unaligned
//! checkpoints behind a slow sink, `weir bench checkpoint-storage`
//! ([`storage`]) checkpoints on local disk against checkpoints in S3, and
//! `weir bench kafka` (`kafka`) Kafka to Kafka exactly-once against
//! datagen to discard. `weir bench state-floor` ([`state_floor`]) measures
//! the count's state work on RocksDB alone, the floor of the RocksDB rows.
//!
//! Each measurement runs in a child process of its own (`weir bench
//! --child ...`), so its peak RSS is its own. Figures are printed as a table
//! and as JSON lines; compare ratios from one run, not absolute numbers
//! across machines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub mod api;
pub mod backends;
pub mod backpressure;
pub mod checkpointing;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod languages;
pub mod latency;
pub mod native;
pub mod savepoints;
#[cfg(feature = "rocksdb")]
pub mod state_floor;
pub mod storage;

use crate::config::Config;
use crate::runtime::{JobControl, RunOptions, run_job};
use crate::spec::graph::{Edge, JobGraph, Node, NodeKind};
use crate::spec::{Partitioning, SinkSpec, SinkType, SourceSpec, SourceType};

/// Arguments of `weir bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The workload: `keyed-count`, `checkpointing`, `backends`,
    /// `savepoints`, `backpressure`, `checkpoint-storage`, `kafka`, `api`,
    /// `languages`, `latency` or `state-floor`.
    #[arg(default_value = "keyed-count")]
    pub workload: String,
    /// Records to generate.
    #[arg(long, default_value_t = 20_000_000)]
    pub records: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Parallelisms to measure, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub parallelism: Vec<u32>,
    /// The `count` component (every workload but `state-floor`), by
    /// default where `scripts/build-operators` puts it.
    #[arg(long, default_value = "target/wasm32-wasip2/guest/count.wasm")]
    pub wasm: PathBuf,
    /// Runs of each measurement; the best is reported (this machine is
    /// shared and noisy, and the best run is the one least disturbed).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// `checkpointing`: the checkpoint interval.
    #[arg(long, default_value = "1s", value_parser = crate::config::parse_duration)]
    pub checkpoint_interval: Duration,
    /// Where checkpointed runs keep their checkpoints (default: a scratch
    /// folder); `checkpoint-storage`: the `s3://` location compared with
    /// local disk.
    #[arg(long, value_parser = crate::config::parse_location)]
    pub checkpoint_dir: Option<PathBuf>,
    /// `kafka`: the broker (`HOST:PORT`) the measured jobs read and write.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// `checkpointing`: key counts whose restore time is measured;
    /// `backends`, `savepoints`: the key counts measured.
    #[arg(long, default_value = "100000,10000000", value_delimiter = ',')]
    pub restore_keys: Vec<u64>,
    /// The keyed state backend of the WASM runs: `hashmap` or `rocksdb`
    /// (the native count always uses the hashmap).
    #[arg(long, default_value = "hashmap")]
    pub backend: String,
    /// With `--backend rocksdb`: incremental checkpoints.
    #[arg(long)]
    pub incremental: bool,
    /// `api`: concurrent HTTP clients.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// `api`: seconds of each measuring window (without load, with load,
    /// without load again); `backpressure`: seconds of each run at the
    /// slow sink's rate; `latency`: seconds of each run at an offered rate.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// `backpressure`: records per second the source offers (the sink
    /// passes a tenth of it); internal for `latency`'s children.
    #[arg(long, default_value_t = 100_000.0)]
    pub rate: f64,
    /// `api`: pause of each client between two requests (0: back to back).
    #[arg(long, default_value_t = 0)]
    pub poll_interval_ms: u64,
    /// `languages`: the Python count component (`operators/count-py`,
    /// built with `scripts/componentize-py`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// `languages`: the JavaScript count component (`operators/count-js`,
    /// built with `scripts/componentize-js`).
    #[arg(long)]
    pub javascript: Option<PathBuf>,
    /// Config of the measured count operator, `KEY=VALUE` (repeatable;
    /// `languages` sets `per-record=true` for the per-record path).
    #[arg(long = "operator-config")]
    pub operator_config: Vec<String>,
    /// `weir.batch.size` of the measured job (`languages` sets 1 for the
    /// per-record path: one guest call per record).
    #[arg(long)]
    pub batch_size: Option<u64>,
    /// Internal: run one measurement (`native`, `wasm`,
    /// `wasm-checkpointed` or `wasm-latency`) in this process.
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `native` or `wasm`.
    pub implementation: String,
    /// Parallelism of source, count and sink.
    pub parallelism: u32,
    /// Records counted.
    pub records: u64,
    /// Wall time of the best run.
    pub seconds: f64,
    /// Wall time of every run.
    pub all_seconds: Vec<f64>,
    /// Records per second.
    pub records_per_second: f64,
    /// Records per second from the first record reaching the sink to the
    /// end of the job, of its best run: the throughput without the job's
    /// start (which `weir bench languages` reports on its own).
    #[serde(default)]
    pub steady_records_per_second: f64,
    /// Peak resident set size of the process, in MiB.
    pub peak_rss_mib: f64,
    /// The periodic checkpoints of a checkpointed run (all runs).
    #[serde(default)]
    pub checkpoints: Vec<crate::checkpoint::stats::CheckpointStats>,
    /// `wasm-latency`: source-to-sink latency of the last run.
    #[serde(default)]
    pub latency: Option<crate::metrics::LatencySummary>,
}

/// The keyed-count job graph.
pub fn keyed_count_graph(
    args: &BenchArgs,
    parallelism: u32,
    native: bool,
    config: Config,
) -> JobGraph {
    let source = SourceSpec {
        id: "datagen".into(),
        uid: None,
        source_type: SourceType::Datagen,
        parallelism: Some(parallelism),
        out_of_orderness_ms: None,
        idle_timeout_ms: None,
        count: Some(args.records),
        keys: Some(args.keys),
        rate: None,
        sequential_keys: None,
        fill_keys: None,
        timestamp_step_ms: None,
        latency_stamps: None,
        path: None,
        paths: None,
        format: None,
        kafka: None,
        chaining: None,
    };
    let sink = SinkSpec {
        id: "discard".into(),
        uid: None,
        sink_type: SinkType::Discard,
        parallelism: Some(parallelism),
        path: None,
        kafka: None,
        measure_latency: None,
        chaining: None,
    };
    let count = if native {
        NodeKind::Native {
            name: "count".into(),
        }
    } else {
        NodeKind::Operator {
            wasm: args.wasm.clone(),
            config: operator_config(args),
        }
    };
    let node = |id: &str, kind| Node {
        id: id.into(),
        uid: id.into(),
        parallelism,
        kind,
        chaining: true,
    };
    JobGraph {
        name: format!("bench keyed-count p={parallelism}"),
        max_parallelism: config.max_parallelism,
        nodes: vec![
            node("datagen", NodeKind::Source(source)),
            node("count", count),
            node("discard", NodeKind::Sink(sink)),
        ],
        edges: vec![
            Edge {
                from: 0,
                to: 1,
                partition: Partitioning::Hash,
                input: 0,
                side: None,
            },
            Edge {
                from: 1,
                to: 2,
                partition: Partitioning::Forward,
                input: 0,
                side: None,
            },
        ],
        config,
        base_dir: PathBuf::from("."),
    }
}

/// `--operator-config KEY=VALUE` pairs.
fn operator_config(args: &BenchArgs) -> Vec<(String, String)> {
    args.operator_config
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

pub use crate::machine::peak_rss_mib;

/// The workloads `weir bench` knows.
const WORKLOADS: &[&str] = &[
    "keyed-count",
    "checkpointing",
    "backends",
    "savepoints",
    "backpressure",
    "checkpoint-storage",
    "kafka",
    "api",
    "languages",
    "latency",
    "state-floor",
];

/// Runs `weir bench`.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    if !WORKLOADS.contains(&args.workload.as_str()) {
        let known = WORKLOADS.join(", ");
        bail!("unknown workload `{}` ({known})", args.workload);
    }
    if args.workload == "api" {
        return api::run(args, config);
    }
    if let Some(which) = &args.child {
        return child(args, config, which);
    }
    match args.workload.as_str() {
        "checkpointing" => return checkpointing::run(args, config),
        "backends" => return backends::run(args, config),
        "savepoints" => return savepoints::run(args, config),
        "backpressure" => return backpressure::run(args, config),
        "checkpoint-storage" => return storage::run(args, config),
        "languages" => return languages::run(args, config),
        "latency" => return latency::run(args, config),
        #[cfg(feature = "rocksdb")]
        "state-floor" => return state_floor::run(args, config),
        #[cfg(not(feature = "rocksdb"))]
        "state-floor" => bail!("this weir was built without the `rocksdb` feature"),
        #[cfg(feature = "kafka")]
        "kafka" => return kafka::run(args, config),
        #[cfg(not(feature = "kafka"))]
        "kafka" => bail!("this weir was built without the `kafka` feature"),
        _ => {}
    }
    let exe = prepare(args, config)?;
    eprintln!(
        "keyed-count: {} records, {} keys, {} backend, discard sink; machine: {} cores",
        args.records,
        args.keys,
        args.backend,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results = Vec::new();
    for &p in &args.parallelism {
        for which in ["native", "wasm"] {
            let m = spawn_child(&exe, args, p, which)?;
            println!("{}", serde_json::to_string(&m)?);
            results.push(m);
        }
    }
    println!();
    println!(
        "{:<6} {:>4} {:>14} {:>12} {:>14}",
        "impl", "par", "records/s", "peak RSS", "wasm/native"
    );
    for m in &results {
        let native = results
            .iter()
            .find(|n| n.implementation == "native" && n.parallelism == m.parallelism)
            .map_or(f64::NAN, |n| n.records_per_second);
        println!(
            "{:<6} {:>4} {:>14.0} {:>9.1} MiB {:>14}",
            m.implementation,
            m.parallelism,
            m.records_per_second,
            m.peak_rss_mib,
            if m.implementation == "wasm" {
                format!("{:.2}", m.records_per_second / native)
            } else {
                String::new()
            }
        );
    }
    let cold = first_record(&exe, &args.wasm, config, true)?;
    let warm = first_record(&exe, &args.wasm, config, false)?;
    println!();
    println!(
        "process start to first record (count.wasm, stdout sink): cold cache {:.1} ms, warm cache {:.1} ms",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The `weir` binary to run children of, once the `count` component exists
/// and is compiled into the cache (so no measurement pays for that).
pub(crate) fn prepare(args: &BenchArgs, config: &Config) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the weir binary")?;
    if !args.wasm.is_file() {
        bail!(
            "{} does not exist; build the operators first (scripts/build-operators)",
            args.wasm.display()
        );
    }
    crate::sandbox::Sandbox::new(config)
        .and_then(|s| s.load(&args.wasm))
        .context("cannot load the count component")?;
    Ok(exe)
}

pub(crate) fn spawn_child(
    exe: &Path,
    args: &BenchArgs,
    p: u32,
    which: &str,
) -> anyhow::Result<Measurement> {
    let interval = format!("{}ms", args.checkpoint_interval.as_millis());
    let out = Command::new(exe)
        .args(["bench", "keyed-count", "--child", which])
        .args(["--checkpoint-interval", &interval])
        .args(["--backend", &args.backend])
        .args(["--rate", &args.rate.to_string()])
        .args(args.incremental.then_some("--incremental"))
        .args(
            args.checkpoint_dir
                .iter()
                .flat_map(|d| [std::ffi::OsStr::new("--checkpoint-dir"), d.as_os_str()]),
        )
        .args([
            "--records",
            &args.records.to_string(),
            "--keys",
            &args.keys.to_string(),
        ])
        .args([
            "--parallelism",
            &p.to_string(),
            "--runs",
            &args.runs.to_string(),
        ])
        .arg("--wasm")
        .arg(&args.wasm)
        .args(
            args.operator_config
                .iter()
                .flat_map(|kv| ["--operator-config", kv.as_str()]),
        )
        .args(
            args.batch_size
                .iter()
                .flat_map(|n| ["--batch-size".to_owned(), n.to_string()]),
        )
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start a benchmark child")?;
    if !out.status.success() {
        bail!("benchmark child ({which}, p={p}) failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("bad child output {line:?}"))
}

fn child(args: &BenchArgs, config: &Config, which: &str) -> anyhow::Result<()> {
    let p = args.parallelism.first().copied().unwrap_or(1);
    let mut config = config.clone();
    config.progress_interval = Duration::ZERO;
    let scratch = tempfile::tempdir().context("cannot make a scratch folder")?;
    config
        .set("state.backend.type", &args.backend)
        .context("--backend")?;
    config.backend.incremental = args.incremental;
    if let Some(n) = args.batch_size {
        config
            .set("weir.batch.size", &n.to_string())
            .context("--batch-size")?;
    }
    // Ten million keys on the heap exceed the default limit of 1 GiB.
    config.state_max_bytes = config.state_max_bytes.max(8 << 30);
    config.backend.rocksdb_dir = scratch.path().join("rocksdb");
    if which == "wasm-checkpointed" || which == "wasm-latency" {
        config.checkpoint.interval = Some(args.checkpoint_interval);
        config.checkpoint.dir = args
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| scratch.path().join("checkpoints"));
    }
    let mut graph = keyed_count_graph(args, p, which == "native", config);
    if which == "wasm-latency" {
        latency::measure_in(&mut graph, args.rate);
    }
    let mut latency = None;
    let mut all_seconds = Vec::new();
    let mut steady_seconds = f64::INFINITY;
    let mut checkpoints = Vec::new();
    for _ in 0..args.runs.max(1) {
        let control = JobControl::default();
        let options = RunOptions {
            native: Some(std::sync::Arc::new(native::BenchOperators)),
            ..RunOptions::default()
        };
        let summary = run_job(&graph, &options, &control)?;
        checkpoints.extend(summary.checkpoints.iter().filter(|c| !c.is_final).cloned());
        let counted = summary.node("count").map_or(0, |n| n.metrics.records_in);
        // A latency run first sends one record per key (`fill-keys`).
        let expected = args.records
            + if which == "wasm-latency" {
                args.keys
            } else {
                0
            };
        if counted != expected {
            bail!("counted {counted} records, expected {expected}");
        }
        all_seconds.push(summary.duration.as_secs_f64());
        latency = summary.node("discard").and_then(|n| n.latency);
        let start = summary.first_output_after.unwrap_or_default();
        steady_seconds = steady_seconds.min(summary.duration.saturating_sub(start).as_secs_f64());
    }
    let seconds = all_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    // A latency run's throughput is its measured records' (after the fill).
    let steady = match latency {
        Some(l) if l.seconds > 0.0 => l.count as f64 / l.seconds,
        _ => args.records as f64 / steady_seconds,
    };
    let m = Measurement {
        implementation: which.to_owned(),
        parallelism: p,
        records: args.records,
        seconds,
        all_seconds,
        records_per_second: args.records as f64 / seconds,
        steady_records_per_second: steady,
        peak_rss_mib: peak_rss_mib(),
        checkpoints,
        latency,
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Time from spawning `weir run` on a small job with the count operator and
/// a stdout sink to its first output line; `cold` empties the cache first.
pub(crate) fn first_record(
    exe: &Path,
    wasm: &Path,
    config: &Config,
    cold: bool,
) -> anyhow::Result<Duration> {
    let dir = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    let cache = dir.join("cache");
    if cold {
        let _ = std::fs::remove_dir_all(&cache);
    }
    std::fs::create_dir_all(&dir)?;
    let spec = format!(
        "name: first-record\nconfig:\n  weir.sandbox.cache-dir: {cache:?}\n  weir.progress.interval: 0ms\n\
         sources:\n  - {{id: gen, type: datagen, count: 1000, keys: 10}}\n\
         operators:\n  - {{id: count, uid: count, wasm: {wasm:?}}}\n\
         sinks:\n  - {{id: out, type: stdout}}\n\
         edges:\n  - {{from: gen, to: count, partition: hash}}\n  - {{from: count, to: out}}\n",
        cache = cache.display().to_string(),
        wasm = std::fs::canonicalize(wasm)?.display().to_string(),
    );
    let job = dir.join("job.yaml");
    std::fs::write(&job, spec)?;
    let _ = config;
    let start = Instant::now();
    let mut child = Command::new(exe)
        .args(["run", "--quiet"])
        .arg(&job)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start weir run")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let elapsed = start.elapsed();
    let _ = child.wait();
    if line.is_empty() {
        bail!("weir run printed nothing");
    }
    Ok(elapsed)
}
