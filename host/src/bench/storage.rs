//! `weir bench checkpoint-storage --checkpoint-dir s3://bucket/prefix`:
//! the checkpoint duration of the same job and state with checkpoints on
//! local disk and in S3-compatible object storage, one after the other in
//! one run (the hashmap backend, and RocksDB with incremental checkpoints,
//! whose shared files are uploaded once). The S3 client's settings come
//! from `weir.yaml`'s `s3.*` keys or the AWS environment variables.

use super::{BenchArgs, spawn_child};
use crate::config::{Config, ObjectUri};

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let Some(remote) = args
        .checkpoint_dir
        .as_ref()
        .filter(|d| ObjectUri::of(d).is_some())
    else {
        anyhow::bail!("checkpoint-storage needs --checkpoint-dir s3://<bucket>/<prefix>");
    };
    let exe = super::prepare(args, config)?;
    let p = args.parallelism.first().copied().unwrap_or(1);
    eprintln!(
        "checkpoint-storage: keyed count (wasm), {} records, {} keys, parallelism {p}, checkpoints every {} ms, local disk vs {}; machine: {} cores",
        args.records,
        args.keys,
        args.checkpoint_interval.as_millis(),
        remote.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for (backend, incremental) in [("hashmap", false), ("rocksdb", true)] {
        let mut local_ms = f64::NAN;
        for (storage, dir) in [("local", None), ("s3", Some(remote.clone()))] {
            let a = BenchArgs {
                backend: backend.into(),
                incremental,
                checkpoint_dir: dir,
                ..args.clone()
            };
            let m = spawn_child(&exe, &a, p, "wasm-checkpointed")?;
            println!("{}", serde_json::to_string(&m)?);
            let durations: Vec<f64> = m.checkpoints.iter().map(|c| c.duration_ms).collect();
            let written: Vec<f64> = m
                .checkpoints
                .iter()
                .map(|c| c.checkpointed_size as f64)
                .collect();
            let avg = mean(&durations);
            if storage == "local" {
                local_ms = avg;
            }
            rows.push(format!(
                "{:<20} {storage:<6} {:>5} {:>10.1} {:>10.1} {:>10.2} {:>12.0} {:>9.2}",
                if incremental {
                    "rocksdb incremental"
                } else {
                    backend
                },
                durations.len(),
                avg,
                durations.iter().copied().fold(0.0, f64::max),
                mean(&written) / f64::from(1 << 20),
                m.records_per_second,
                avg / local_ms
            ));
        }
    }
    println!();
    println!(
        "{:<20} {:<6} {:>5} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "backend", "where", "chks", "mean ms", "max ms", "MiB/chk", "records/s", "vs local"
    );
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
