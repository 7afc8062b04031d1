//! `weir bench checkpointing`: what checkpoints cost on the keyed count.
//!
//! - Throughput of the WebAssembly keyed count with checkpoints every
//!   `--checkpoint-interval` against the same run without, measured one
//!   after the other in this run (each in a child process, best of
//!   `--runs`).
//! - Duration and size of those checkpoints, with the longest synchronous
//!   capture, asynchronous write and alignment of any subtask.
//! - For each of `--restore-keys`: a job counts one record per key (keys
//!   in sequence) with checkpoints on, is killed with SIGKILL once a
//!   checkpoint holds all of them, and `weir run -s` on that checkpoint is
//!   timed from process start to its first output line (state load
//!   included).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{BenchArgs, Measurement, spawn_child};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::recovery::completed_in;
use crate::config::Config;

fn mean(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = v.clone().count().max(1) as f64;
    v.sum::<f64>() / n
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let exe = super::prepare(args, config)?;
    let p = args.parallelism.first().copied().unwrap_or(1);
    eprintln!(
        "checkpointing: keyed count (wasm), {} records, {} keys, parallelism {p}, checkpoints every {} ms; machine: {} cores",
        args.records,
        args.keys,
        args.checkpoint_interval.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let off: Measurement = spawn_child(&exe, args, p, "wasm")?;
    println!("{}", serde_json::to_string(&off)?);
    let on: Measurement = spawn_child(&exe, args, p, "wasm-checkpointed")?;
    println!("{}", serde_json::to_string(&on)?);
    let c = &on.checkpoints;
    println!();
    println!(
        "throughput: without checkpoints {:.0} records/s, with {:.0} records/s: ratio {:.3}",
        off.records_per_second,
        on.records_per_second,
        on.records_per_second / off.records_per_second
    );
    if c.is_empty() {
        println!("no periodic checkpoint completed (the run was shorter than the interval)");
    } else {
        println!(
            "checkpoints: {} completed; end-to-end duration mean {:.1} ms, max {:.1} ms; size mean {:.0} bytes; longest sync {:.2} ms, async {:.2} ms, alignment {:.2} ms",
            c.len(),
            mean(c.iter().map(|x| x.duration_ms)),
            c.iter().map(|x| x.duration_ms).fold(0.0, f64::max),
            mean(c.iter().map(|x| x.size as f64)),
            c.iter().map(|x| x.max_sync_ms).fold(0.0, f64::max),
            c.iter().map(|x| x.max_async_ms).fold(0.0, f64::max),
            c.iter().map(|x| x.max_alignment_ms).fold(0.0, f64::max),
        );
    }
    for &keys in &args.restore_keys {
        let (first, size) = restore_time(&exe, &args.wasm, keys, config, "")?;
        println!(
            "restore with -s, {keys} keys ({size} bytes of state): process start to first record {:.1} ms",
            first.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The job of the restore measurement: an endless count over `keys` keys
/// in sequence, with the given sink, checkpoint interval and more config
/// lines (`  key: value\n` each).
pub(crate) fn spec(
    wasm: &Path,
    keys: u64,
    cache: &Path,
    sink: &str,
    interval: &str,
    extra: &str,
) -> anyhow::Result<String> {
    Ok(format!(
        "name: restore-bench\nconfig:\n  weir.sandbox.cache-dir: {cache:?}\n  weir.progress.interval: 0ms\n  \
         execution.checkpointing.interval: {interval}\n  state.checkpoints.dir: checkpoints\n  weir.state.max-bytes: 8gb\n{extra}\
         sources:\n  - {{id: gen, type: datagen, count: 1000000000000, keys: {keys}, sequential-keys: true}}\n\
         operators:\n  - {{id: count, uid: count, wasm: {wasm:?}}}\n\
         sinks:\n  - {{id: out, type: {sink}}}\n\
         edges:\n  - {{from: gen, to: count, partition: hash}}\n  - {{from: count, to: out}}\n",
        cache = cache.display().to_string(),
        wasm = std::fs::canonicalize(wasm)?.display().to_string(),
    ))
}

/// The datagen position recorded in a checkpoint.
fn position(meta: &CheckpointMetadata) -> u64 {
    meta.operator("gen")
        .and_then(|o| o.subtasks.first())
        .and_then(|s| s.operator_state.first())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("next").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// Builds a checkpoint of `keys` keys with the config lines `extra`, kills
/// its job, and times a restore; returns the time to the first record and
/// the checkpoint's state size.
pub(crate) fn restore_time(
    exe: &Path,
    wasm: &Path,
    keys: u64,
    config: &Config,
    extra: &str,
) -> anyhow::Result<(Duration, u64)> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let cache = &config.cache_dir;
    let extra = format!(
        "{extra}  state.backend.rocksdb.localdir: {:?}\n",
        d.join("rocksdb").display().to_string()
    );
    std::fs::write(
        d.join("build.yaml"),
        spec(wasm, keys, cache, "discard", "1s", &extra)?,
    )?;
    std::fs::write(
        d.join("restore.yaml"),
        spec(wasm, keys, cache, "stdout", "1s", &extra)?,
    )?;
    let mut build = Command::new(exe)
        .args(["run", "--quiet"])
        .arg(d.join("build.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start weir run")?;
    let target = keys;
    let deadline = Instant::now() + Duration::from_secs(600);
    let found = loop {
        if Instant::now() > deadline {
            let _ = build.kill();
            bail!("no checkpoint of {target} records within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
        let job_dirs = std::fs::read_dir(d.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten();
        let ready = job_dirs
            .flat_map(|j| completed_in(&j.path()))
            .filter_map(|(_, p)| {
                let bytes = std::fs::read(p.join("_metadata")).ok()?;
                let meta = CheckpointMetadata::decode(&bytes).ok()?;
                (position(&meta) >= target).then_some((p, meta.state_size))
            })
            .next();
        if let Some(r) = ready {
            break r;
        }
        if let Some(status) = build.try_wait()? {
            bail!("the job building the checkpoint ended early: {status}");
        }
    };
    build.kill()?;
    build.wait()?;
    let elapsed = first_record_after_restore(exe, &found.0, &d.join("restore.yaml"))?;
    Ok((elapsed, found.1))
}

/// `weir run -s from spec` (a job with a stdout sink), timed from process
/// start to its first output line (the state load included).
pub(crate) fn first_record_after_restore(
    exe: &Path,
    from: &Path,
    spec: &Path,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new(exe)
        .args(["run", "--quiet", "-s"])
        .arg(from)
        .arg(spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start weir run -s")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let elapsed = start.elapsed();
    child.kill()?;
    child.wait()?;
    if line.is_empty() {
        bail!("the restored job printed nothing");
    }
    Ok(elapsed)
}
