//! `weir bench savepoints`: what a savepoint costs beside a checkpoint of
//! the same state, and what restoring each costs.
//!
//! For each of `--restore-keys` and each backend (hashmap, RocksDB with
//! full checkpoints): `weir run` counts an endless stream over that many
//! keys (in sequence, so every key is in the state after one pass) and
//! serves its API; once every key was seen, a checkpoint, a canonical
//! savepoint and a native savepoint are taken one after the other through
//! that API (the state hardly changes in between: the same keys, other
//! counts), and their durations (trigger to `_metadata`, as Flink's
//! statistics count them) and sizes are read from their `_metadata`. Then
//! `weir run -s` from each is timed from process start to its first
//! output record (the state load included), and the canonical savepoint
//! also on the other backend.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::BenchArgs;
use super::checkpointing::{first_record_after_restore, spec};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::recovery::completed_in;
use crate::client::{Client, SavepointOptions};
use crate::config::Config;

/// One snapshot taken of the running job.
struct Snapshot {
    what: &'static str,
    path: PathBuf,
    duration_ms: f64,
    size: u64,
}

/// A `weir run` serving its API, killed when dropped.
struct Running {
    child: Child,
    client: Client,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weir run spec` and reads its API address, token and job id
/// from its first lines.
fn start(exe: &Path, spec: &Path, config: &Config) -> anyhow::Result<Running> {
    let mut child = Command::new(exe)
        .arg("run")
        .arg(spec)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start weir run")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let line = loop {
        let Some(line) = lines.next() else {
            bail!("weir run ended before it served its API");
        };
        let line = line?;
        if line.starts_with("REST API: http://") {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let rest = line.trim_start_matches("REST API: http://");
    let (addr, rest) = rest.split_once("/api/v1/jobs/").context("API line")?;
    let (id, rest) = rest.split_once(' ').context("API line")?;
    let token = rest
        .trim_start_matches("(Authorization: Bearer ")
        .trim_end_matches(')');
    let client = Client::new(Some(&format!("http://{addr}")), Some(token), config)?;
    Ok(Running {
        child,
        client,
        id: id.to_owned(),
    })
}

/// Reads a snapshot's `_metadata`.
fn metadata(path: &Path) -> anyhow::Result<CheckpointMetadata> {
    let bytes = std::fs::read(path.join("_metadata"))
        .with_context(|| format!("{}: no _metadata", path.display()))?;
    Ok(CheckpointMetadata::decode(&bytes)?)
}

impl Running {
    /// Waits until the source produced `records` records.
    fn wait_records(&self, records: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let v = self.client.job(&self.id)?;
            let produced = v["vertices"][0]["metrics"]["write-records"]
                .as_u64()
                .unwrap_or(0);
            if produced >= records {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{produced} of {records} records in 15 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Takes a checkpoint now and returns it once complete.
    fn checkpoint(&self, dir: &Path) -> anyhow::Result<Snapshot> {
        let newest = |d: &Path| -> Option<(u64, PathBuf)> {
            std::fs::read_dir(d.join("checkpoints"))
                .ok()?
                .flatten()
                .flat_map(|j| completed_in(&j.path()))
                .max_by_key(|(id, _)| *id)
        };
        let before = newest(dir).map_or(0, |(id, _)| id);
        self.client.trigger_checkpoint(&self.id)?;
        let deadline = Instant::now() + Duration::from_secs(900);
        let path = loop {
            if let Some((id, p)) = newest(dir).filter(|(id, _)| *id > before) {
                let _ = id;
                break p;
            }
            if Instant::now() > deadline {
                bail!("no checkpoint completed in 15 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let m = metadata(&path)?;
        Ok(Snapshot {
            what: "checkpoint",
            path,
            duration_ms: m.duration_ms,
            size: m.state_size,
        })
    }

    /// Takes a savepoint in `format` into `target`.
    fn savepoint(&self, target: &Path, format: &'static str) -> anyhow::Result<Snapshot> {
        let options = SavepointOptions {
            target: Some(target.display().to_string()),
            format: Some(format.to_owned()),
            stop: None,
            detached: false,
            cancel_job: false,
        };
        let v = self.client.savepoint(&self.id, &options)?;
        let path = PathBuf::from(v["location"].as_str().context("no location")?);
        let m = metadata(&path)?;
        Ok(Snapshot {
            what: if format == "native" {
                "native savepoint"
            } else {
                "canonical savepoint"
            },
            path,
            duration_ms: m.duration_ms,
            size: m.state_size,
        })
    }
}

/// The config lines of a backend, with its working folder under `dir`.
fn backend_lines(backend: &str, dir: &Path) -> String {
    format!(
        "  state.backend.type: {backend}\n  state.backend.rocksdb.localdir: {:?}\n  \
         execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION\n",
        dir.join("rocksdb").display().to_string()
    )
}

/// Runs the workload.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let exe = super::prepare(args, config)?;
    eprintln!(
        "savepoints: keyed count (wasm), parallelism 1, key counts {:?}; durations are trigger to _metadata, restores process start to first record; machine: {} cores",
        args.restore_keys,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for &keys in &args.restore_keys {
        for backend in ["hashmap", "rocksdb"] {
            rows.extend(measure(&exe, args, config, keys, backend)?);
        }
    }
    println!();
    println!(
        "{:>9} {:<8} {:<20} {:>11} {:>9} {:>11} {:>12} {:>9}",
        "keys", "backend", "snapshot", "MiB", "take ms", "vs chk", "restore ms", "vs chk"
    );
    for r in &rows {
        println!("{r}");
    }
    Ok(())
}

/// The rows of one key count on one backend.
fn measure(
    exe: &Path,
    args: &BenchArgs,
    config: &Config,
    keys: u64,
    backend: &str,
) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let cache = &config.cache_dir;
    let lines = backend_lines(backend, d);
    let build = d.join("build.yaml");
    std::fs::write(
        &build,
        spec(&args.wasm, keys, cache, "discard", "1h", &lines)?,
    )?;
    let job = start(exe, &build, config)?;
    job.wait_records(keys)?;
    let taken = [
        job.checkpoint(d)?,
        job.savepoint(&d.join("savepoints"), "canonical")?,
        job.savepoint(&d.join("savepoints"), "native")?,
    ];
    drop(job);
    let restore_spec = |b: &str, name: &str| -> anyhow::Result<PathBuf> {
        let p = d.join(name);
        let lines = backend_lines(b, &d.join(name).with_extension("d"));
        std::fs::write(&p, spec(&args.wasm, keys, cache, "stdout", "1h", &lines)?)?;
        Ok(p)
    };
    let same = restore_spec(backend, "restore.yaml")?;
    let other_backend = if backend == "hashmap" {
        "rocksdb"
    } else {
        "hashmap"
    };
    let other = restore_spec(other_backend, "restore-other.yaml")?;
    let mut rows = Vec::new();
    let mut chk = (0.0, 0.0);
    for s in &taken {
        let restore = first_record_after_restore(exe, &s.path, &same)?.as_secs_f64() * 1e3;
        if s.what == "checkpoint" {
            chk = (s.duration_ms, restore);
        }
        rows.push(row(keys, backend, s.what, s, restore, chk));
        if s.what == "canonical savepoint" {
            let restore = first_record_after_restore(exe, &s.path, &other)?.as_secs_f64() * 1e3;
            let what = format!("canonical -> {other_backend}");
            rows.push(row(keys, backend, &what, s, restore, chk));
        }
    }
    for r in &rows {
        eprintln!("{r}");
    }
    Ok(rows)
}

fn row(
    keys: u64,
    backend: &str,
    what: &str,
    s: &Snapshot,
    restore: f64,
    chk: (f64, f64),
) -> String {
    format!(
        "{keys:>9} {backend:<8} {what:<20} {:>11.1} {:>9.0} {:>10.2}x {:>12.0} {:>8.2}x",
        s.size as f64 / f64::from(1 << 20),
        s.duration_ms,
        s.duration_ms / chk.0.max(1e-9),
        restore,
        restore / chk.1.max(1e-9),
    )
}
