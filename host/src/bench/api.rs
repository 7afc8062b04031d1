//! `weir bench api`: the REST API under load while a job runs at full
//! speed. A session cluster (the same `AppState` and router as `weir
//! serve`) runs a keyed count over an endless datagen source; then
//! `--clients` HTTP/1.1 keep-alive connections poll the job's detail and
//! its checkpoint statistics in turn for `--seconds`. The job's throughput
//! is measured before, during and after the load, in the same run.
//!
//! Reported: requests per second, latency percentiles (p50, p99, max), and
//! the job's records per second under load against the mean of the two
//! unloaded windows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::BenchArgs;
use crate::config::Config;
use crate::server::{AppState, router};
use crate::session::{JobEntry, SubmitRequest};

const TOKEN: &str = "bench-token-0123456789abcdef";

/// Records the job's sources have emitted so far.
fn records_out(job: &JobEntry) -> u64 {
    job.control.live().metrics.first().map_or(0, |tasks| {
        tasks.iter().map(|t| t.snapshot().records_out).sum()
    })
}

/// The job's records per second over `window`.
fn throughput(job: &JobEntry, window: Duration) -> f64 {
    let (n0, t0) = (records_out(job), Instant::now());
    std::thread::sleep(window);
    (records_out(job) - n0) as f64 / t0.elapsed().as_secs_f64()
}

/// One client: a keep-alive connection that asks for `paths` in turn until
/// `until`, waiting `pause` between requests; returns each latency in µs.
async fn client(
    addr: std::net::SocketAddr,
    paths: Arc<Vec<String>>,
    until: Instant,
    pause: Duration,
    first: usize,
) -> anyhow::Result<(Vec<u32>, u64)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut i = first;
    let mut line = String::new();
    while Instant::now() < until {
        let path = &paths[i % paths.len()];
        i += 1;
        let started = Instant::now();
        write
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        let mut length = 0usize;
        let mut status_ok = false;
        let mut first_line = true;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                bail!("the server closed the connection");
            }
            if first_line {
                status_ok = line.starts_with("HTTP/1.1 200");
                first_line = false;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        read.read_exact(&mut body).await?;
        latencies.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        if !status_ok {
            errors += 1;
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok((latencies, errors))
}

/// CPU seconds each group of this process's threads has used so far:
/// `api` (the server's tokio threads), `clients` (the load, on the main
/// thread) and `job` (every other thread), from `/proc/self/task`.
fn cpu_by_group() -> [f64; 3] {
    let mut out = [0.0; 3];
    let ticks = 100.0; // USER_HZ on Linux
    let main = std::process::id().to_string();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at the
        // last ')'; utime and stime are the 12th and 13th fields after it.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cpu = fields.get(11..13).map_or(0.0, |f| {
            f.iter().filter_map(|v| v.parse::<f64>().ok()).sum::<f64>()
        }) / ticks;
        let group = if comm.starts_with("tokio-rt") {
            0
        } else if task.file_name().to_str() == Some(main.as_str()) {
            1
        } else {
            2
        };
        out[group] += cpu;
    }
    out
}

/// Runs the benchmark and prints its figures.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let bench = Setup::start(args, config)?;
    let window = Duration::from_secs(args.seconds.max(1));
    eprintln!(
        "api: keyed count at parallelism {} ({} keys, checkpoint every 1 s); {} clients for {} s, pause {} ms; machine: {} cores",
        bench.parallelism,
        args.keys,
        args.clients,
        window.as_secs(),
        args.poll_interval_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::thread::sleep(Duration::from_secs(3));
    let before = throughput(&bench.job, window);
    eprintln!("  without load: {before:.0} records/s");
    let load = load_phase(&bench, args, window)?;
    eprintln!("  with load: {:.0} records/s", load.during);
    let after = throughput(&bench.job, window);
    eprintln!("  without load again: {after:.0} records/s");
    bench.job.control.cancel();
    report(args, before, after, load);
    Ok(())
}

/// A session cluster serving its REST API on a local port, running the
/// benchmark's job.
struct Setup {
    /// The tokio runtime serving the API, held so that it keeps serving.
    _server: tokio::runtime::Runtime,
    /// Where the API listens.
    addr: std::net::SocketAddr,
    /// The running job.
    job: Arc<JobEntry>,
    /// The cluster's state, held for as long as the job runs.
    _state: Arc<AppState>,
    /// The cluster's data folder, removed when the benchmark ends.
    _data: tempfile::TempDir,
    /// The parallelism of every node of the job.
    parallelism: u32,
}

impl Setup {
    /// Starts a session cluster in a temporary folder, submits the keyed
    /// count over an endless datagen source and serves the API.
    fn start(args: &BenchArgs, config: &Config) -> anyhow::Result<Self> {
        if !args.wasm.is_file() {
            bail!(
                "{} does not exist; build the operators first (scripts/build-operators)",
                args.wasm.display()
            );
        }
        let data = tempfile::tempdir().context("no temporary folder")?;
        let state = Arc::new(AppState::new(config, data.path(), TOKEN.into(), false)?);
        let wasm = std::fs::read(&args.wasm)?;
        state
            .bundles
            .add("count", &wasm, &state.sandbox)
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
        let p = args.parallelism.first().copied().unwrap_or(1);
        let request: SubmitRequest = serde_json::from_value(serde_json::json!({
            "job": {
                "name": "api-bench",
                "config": { "execution.checkpointing.interval": "1s" },
                "sources": [{ "id": "gen", "type": "datagen", "count": u64::MAX / 2, "keys": args.keys, "parallelism": p }],
                "operators": [{ "id": "count", "uid": "count", "wasm": "count", "parallelism": p }],
                "sinks": [{ "id": "out", "type": "discard", "parallelism": p }],
                "edges": [
                    { "from": "gen", "to": "count", "partition": "hash" },
                    { "from": "count", "to": "out" }
                ]
            }
        }))?;
        let job = state
            .jobs
            .submit(request, &state.bundles)
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;

        let server = crate::server::runtime(config).context("cannot start tokio")?;
        let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        server.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Setup {
            _server: server,
            addr,
            job,
            _state: state,
            _data: data,
            parallelism: p,
        })
    }
}

/// What the load phase measured.
struct Load {
    /// The job's records per second under load.
    during: f64,
    /// How long the clients ran, in seconds.
    elapsed: f64,
    /// Every request's latency in µs.
    latencies: Vec<u32>,
    /// Responses other than 200.
    errors: u64,
    /// Clients that failed (could not connect, lost their connection).
    failed_clients: u64,
    /// Cores used under load by the API server, the clients and the job
    /// (the groups of [`cpu_by_group`]).
    cores: [f64; 3],
}

/// Runs `--clients` clients against the API for `window` while measuring
/// the job's throughput.
fn load_phase(bench: &Setup, args: &BenchArgs, window: Duration) -> anyhow::Result<Load> {
    let job = &bench.job;
    let paths = Arc::new(vec![
        format!("/api/v1/jobs/{}", job.id),
        format!("/api/v1/jobs/{}/checkpoints", job.id),
    ]);
    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let until = Instant::now() + window;
    let pause = Duration::from_millis(args.poll_interval_ms);
    let job_for_load = job.clone();
    let measured = std::thread::spawn(move || throughput(&job_for_load, window));
    let started = Instant::now();
    // The clients would run on other machines; here they run at the
    // lowest priority, so that their own CPU use disturbs the job as
    // little as it can.
    crate::server::lower_thread_priority(19);
    let cpu_before = cpu_by_group();
    let addr = bench.addr;
    let results = load.block_on(async {
        let tasks: Vec<_> = (0..args.clients)
            .map(|i| tokio::spawn(client(addr, paths.clone(), until, pause, i)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_by_group();
    let cores = std::array::from_fn(|g| (cpu_after[g] - cpu_before[g]) / elapsed);
    let during = measured
        .join()
        .map_err(|_| anyhow::anyhow!("the measuring thread panicked"))?;
    let mut latencies = Vec::new();
    let (mut errors, mut failed_clients) = (0u64, 0u64);
    for r in results {
        match r {
            Ok(Ok((l, e))) => {
                latencies.extend(l);
                errors += e;
            }
            _ => failed_clients += 1,
        }
    }
    Ok(Load {
        during,
        elapsed,
        latencies,
        errors,
        failed_clients,
        cores,
    })
}

/// Prints the figures: a summary for people, then one JSON line.
fn report(args: &BenchArgs, before: f64, after: f64, load: Load) {
    let Load {
        during,
        elapsed,
        mut latencies,
        errors,
        failed_clients,
        cores,
    } = load;
    latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1e3)
    };
    let unloaded = (before + after) / 2.0;
    let figures = serde_json::json!({
        "workload": "api",
        "clients": args.clients,
        "seconds": elapsed,
        "pause_ms": args.poll_interval_ms,
        "requests": latencies.len(),
        "requests_per_second": latencies.len() as f64 / elapsed,
        "non_200": errors,
        "failed_clients": failed_clients,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies.last().map_or(0.0, |&us| f64::from(us) / 1e3),
        "job_records_per_second_unloaded": unloaded,
        "job_records_per_second_loaded": during,
        "job_throughput_ratio": during / unloaded,
        "cores_used_by_api": cores[0],
        "cores_used_by_clients": cores[1],
        "cores_used_by_job": cores[2],
    });
    println!(
        "under load, cores used: job {:.2}, API server {:.2}, clients {:.2}",
        cores[2], cores[0], cores[1]
    );
    println!(
        "requests/s {:.0}  p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms  non-200 {errors}  failed clients {failed_clients}\njob records/s: {unloaded:.0} without load, {during:.0} with load: ratio {:.3}",
        figures["requests_per_second"].as_f64().unwrap_or(0.0),
        pct(0.50),
        pct(0.99),
        figures["max_ms"].as_f64().unwrap_or(0.0),
        during / unloaded
    );
    println!("{figures}");
}
