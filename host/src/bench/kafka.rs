//! `weir bench kafka --bootstrap-servers HOST:PORT`: the keyed count
//! reading a Kafka topic and writing its counts to another through the
//! exactly-once sink (checkpoints every `--checkpoint-interval`), beside
//! the same count from datagen to the discard sink, at each
//! `--parallelism`, in one run. The input topic (4 partitions) is filled
//! first with `--records` records over `--keys` keys; each measured job
//! reads it from the start to its end (a bounded source), so both jobs
//! count the same records.

use std::path::Path;

use anyhow::Context;

use super::BenchArgs;
use crate::checkpoint::storage::random_hex;
use crate::config::Config;
use crate::runtime::{JobControl, RunOptions, run_job};
use crate::spec::{JobSpec, SpecFormat, validate};

/// One measured job: records per second, checkpoints and their mean
/// duration.
struct Measured {
    records_per_second: f64,
    checkpoints: usize,
    mean_checkpoint_ms: f64,
}

/// Runs `yaml` (relative paths under `dir`) to its end in this process.
fn measure(yaml: &str, dir: &Path, config: &Config, records: u64) -> anyhow::Result<Measured> {
    let spec = JobSpec::parse(yaml, SpecFormat::Yaml).context("bench spec")?;
    let graph = validate(&spec, config, dir, dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let summary = run_job(&graph, &RunOptions::default(), &JobControl::default())?;
    let counted = summary.node("count").map_or(0, |n| n.metrics.records_in);
    anyhow::ensure!(
        counted == records,
        "counted {counted} records, expected {records}"
    );
    let periodic: Vec<f64> = summary
        .checkpoints
        .iter()
        .filter(|c| !c.is_final)
        .map(|c| c.duration_ms)
        .collect();
    Ok(Measured {
        records_per_second: records as f64 / summary.duration.as_secs_f64(),
        checkpoints: periodic.len(),
        mean_checkpoint_ms: if periodic.is_empty() {
            0.0
        } else {
            periodic.iter().sum::<f64>() / periodic.len() as f64
        },
    })
}

/// The job's `config:` block: checkpoints every `interval` under `dir`.
fn job_config(args: &BenchArgs, dir: &Path) -> String {
    format!(
        "config:\n  execution.checkpointing.interval: {}ms\n  state.checkpoints.dir: {:?}\n",
        args.checkpoint_interval.as_millis(),
        dir.join("checkpoints").display().to_string()
    )
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let servers = args
        .bootstrap_servers
        .as_deref()
        .context("weir bench kafka needs --bootstrap-servers HOST:PORT")?;
    super::prepare(args, config)?;
    let mut config = config.clone();
    config.progress_interval = std::time::Duration::ZERO;
    let dir = tempfile::tempdir().context("cannot make a scratch folder")?;
    let d = dir.path();
    let run = random_hex(4);
    let input = format!("weir-bench-{run}");
    let wasm = format!("{:?}", args.wasm.display().to_string());
    eprintln!(
        "kafka: {} records, {} keys, checkpoints every {} ms, broker {servers}; machine: {} cores",
        args.records,
        args.keys,
        args.checkpoint_interval.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let fill = format!(
        "name: fill\nsources:\n  - {{ id: gen, type: datagen, count: {}, keys: {} }}\nsinks:\n  - id: out\n    type: kafka\n    kafka: {{ bootstrap-servers: \"{servers}\", topic: {input}, delivery-guarantee: none, create-topic: {{ partitions: 4 }} }}\nedges:\n  - {{ from: gen, to: out }}\n",
        args.records, args.keys
    );
    let spec = JobSpec::parse(&fill, SpecFormat::Yaml).context("fill spec")?;
    let graph = validate(&spec, &config, d, d).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_job(&graph, &RunOptions::default(), &JobControl::default()).context("filling the topic")?;
    let mut rows = Vec::new();
    for &p in &args.parallelism {
        let kafka = format!(
            "name: kafka-count\n{cfg}sources:\n  - id: in\n    type: kafka\n    parallelism: {p}\n    kafka: {{ bootstrap-servers: \"{servers}\", topic: {input}, group-id: weir-bench-{run}-{p}, starting-offsets: earliest, stopping-offsets: latest }}\noperators:\n  - {{ id: count, uid: count, wasm: {wasm}, parallelism: {p} }}\nsinks:\n  - id: out\n    type: kafka\n    parallelism: {p}\n    kafka: {{ bootstrap-servers: \"{servers}\", topic: weir-bench-{run}-counts-{p}, delivery-guarantee: exactly-once, transactional-id-prefix: weir-bench-{run}-{p}, create-topic: {{ partitions: 4 }} }}\nedges:\n  - {{ from: in, to: count, partition: hash }}\n  - {{ from: count, to: out }}\n",
            cfg = job_config(args, &d.join(format!("kafka-{p}")))
        );
        let datagen = format!(
            "name: datagen-count\n{cfg}sources:\n  - {{ id: in, type: datagen, parallelism: {p}, count: {}, keys: {} }}\noperators:\n  - {{ id: count, uid: count, wasm: {wasm}, parallelism: {p} }}\nsinks:\n  - {{ id: out, type: discard, parallelism: {p} }}\nedges:\n  - {{ from: in, to: count, partition: hash }}\n  - {{ from: count, to: out }}\n",
            args.records,
            args.keys,
            cfg = job_config(args, &d.join(format!("datagen-{p}")))
        );
        let k = measure(&kafka, d, &config, args.records)?;
        let g = measure(&datagen, d, &config, args.records)?;
        let row = format!(
            "{p:>4} {:>16.0} {:>18.0} {:>8.2} {:>6} {:>10.1} {:>6} {:>10.1}",
            k.records_per_second,
            g.records_per_second,
            k.records_per_second / g.records_per_second,
            k.checkpoints,
            k.mean_checkpoint_ms,
            g.checkpoints,
            g.mean_checkpoint_ms
        );
        eprintln!("{row}");
        rows.push(row);
    }
    println!();
    println!(
        "{:>4} {:>16} {:>18} {:>8} {:>6} {:>10} {:>6} {:>10}",
        "par",
        "kafka->kafka r/s",
        "datagen->discard",
        "ratio",
        "chks",
        "mean ms",
        "chks",
        "mean ms"
    );
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
