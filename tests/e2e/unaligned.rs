//! Unaligned checkpoints under backpressure: a slow stage (the `hostile`
//! guest in `slow` mode) behind a hash edge keeps every channel full.
//! Unaligned checkpoints then persist the in-flight records their barriers
//! overtook; a job SIGKILLed and restored from such a checkpoint, at the
//! same and at another parallelism, commits exactly the output of an
//! uninterrupted run; and `aligned-checkpoint-timeout` turns unaligned
//! only the checkpoints that outlast it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir::{CheckpointMetadata, JobControl, RestorePoint, RunOptions, completed_in, run_job};

use crate::checkpoints::{copy_tree, expected, sorted_output};
use crate::common::{cache_dir, graph, output_lines, q, run_cli, run_restored, tempdir, weir};

/// datagen -> (hash) count -> (hash) slow forwarder -> file sink: the
/// slow stage spins 1 ms per element, in batches of 20, so the channels
/// in front of it stay full.
fn backpressured(dir: &Path, records: u64, parallelism: u32, checkpointing: &str) -> String {
    format!(
        r#"
name: backpressured
config:
  weir.sandbox.cache-dir: {cache}
  weir.batch.size: 20
  weir.channel.capacity: 8
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
  state.checkpoints.num-retained: 100
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  {checkpointing}
sources:
  - {{ id: gen, type: datagen, count: {records}, keys: 50 }}
operators:
  - {{ id: count, uid: count, wasm: {count}, parallelism: {parallelism} }}
  - {{ id: slow, uid: slow, wasm: {hostile}, parallelism: {parallelism}, config: {{ mode: slow, ms: "1" }} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: {parallelism} }}
edges:
  - {{ from: gen, to: count, partition: hash }}
  - {{ from: count, to: slow, partition: hash }}
  - {{ from: slow, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        count = q(weir_test_guests::COUNT),
        hostile = q(weir_test_guests::HOSTILE),
    )
}

const UNALIGNED: &str = "execution.checkpointing.unaligned: true";

/// The completed checkpoints under `<dir>/checkpoints`, oldest first.
fn checkpoints(dir: &Path) -> Vec<(PathBuf, CheckpointMetadata)> {
    let mut all = Vec::new();
    for job in std::fs::read_dir(dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for (_, chk) in completed_in(&job.path()) {
            if let Ok(bytes) = std::fs::read(chk.join("_metadata"))
                && let Ok(m) = CheckpointMetadata::decode(&bytes)
            {
                all.push((chk, m));
            }
        }
    }
    all.sort_by_key(|(_, m)| m.checkpoint_id);
    all
}

/// Bytes of in-flight records a checkpoint persisted.
fn persisted(m: &CheckpointMetadata) -> u64 {
    m.operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .map(|s| s.persisted_bytes)
        .sum()
}

/// The sorted output of the job run to its end without interruption.
fn uninterrupted(records: u64) -> Vec<String> {
    let dir = tempdir();
    let out = run_cli(&backpressured(dir.path(), records, 2, ""), dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sorted_output(&dir.path().join("out"))
}

/// Runs the unaligned job until a completed checkpoint holds in-flight
/// records, SIGKILLs it, and returns that checkpoint.
fn kill_at_unaligned_checkpoint(dir: &Path, spec: &Path) -> PathBuf {
    kill_at(dir, spec, &|m| persisted(m) > 0)
}

/// Runs the job of `spec` until a completed checkpoint (the third or
/// later) satisfies `wanted`, SIGKILLs it, and returns that checkpoint.
fn kill_at(dir: &Path, spec: &Path, wanted: &dyn Fn(&CheckpointMetadata) -> bool) -> PathBuf {
    let mut child = weir()
        .args(["run", "-q"])
        .arg(spec)
        .env("WEIR_LOG", "warn")
        .spawn()
        .expect("weir run");
    let deadline = Instant::now() + Duration::from_secs(60);
    let chk = loop {
        let found = checkpoints(dir)
            .into_iter()
            .rev()
            .find(|(_, m)| wanted(m) && m.checkpoint_id >= 3);
        if let Some((chk, _)) = found {
            break chk;
        }
        assert!(
            Instant::now() < deadline,
            "no unaligned checkpoint with in-flight data"
        );
        assert!(child.try_wait().expect("wait").is_none(), "ended early");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    chk
}

#[test]
fn unaligned_checkpoints_persist_in_flight_records_and_restore_exactly_once() {
    let records = 6_000;
    let expected = uninterrupted(records);
    assert_eq!(expected.len(), records as usize);
    for restore_parallelism in [2, 3] {
        let dir = tempdir();
        let d = dir.path();
        let spec = d.join("job.yaml");
        std::fs::write(&spec, backpressured(d, records, 2, UNALIGNED)).expect("spec");
        let chk = kill_at_unaligned_checkpoint(d, &spec);
        let bytes = std::fs::read(chk.join("_metadata")).expect("_metadata");
        let m = CheckpointMetadata::decode(&bytes).expect("decode");
        let channel_files: Vec<_> = m
            .operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .filter_map(|s| s.channel.as_ref())
            .collect();
        assert!(!channel_files.is_empty(), "{m:?}");
        for h in channel_files {
            assert!(chk.join(&h.file).is_file(), "{}", h.file);
        }
        let rescaled = backpressured(d, records, restore_parallelism, UNALIGNED);
        std::fs::write(&spec, rescaled).expect("spec");
        run_restored(&spec, &chk);
        assert_eq!(
            sorted_output(&d.join("out")),
            expected,
            "restored at parallelism {restore_parallelism} from {}",
            chk.display()
        );
    }
}

/// Runs the job in this process to its end; the statistics of its
/// checkpoints: (id, duration ms, went unaligned, persisted bytes).
fn checkpoint_stats(records: u64, checkpointing: &str) -> Vec<(u64, f64, bool, u64)> {
    let dir = tempdir();
    let yaml = backpressured(dir.path(), records, 2, checkpointing);
    let g = graph(&yaml, dir.path()).expect("valid");
    let summary = run_job(&g, &RunOptions::default(), &JobControl::default()).expect("runs");
    assert_eq!(
        output_lines(&dir.path().join("out")).len(),
        records as usize
    );
    let stats: Vec<_> = summary
        .checkpoints
        .iter()
        .filter(|c| !c.is_final)
        .map(|c| (c.id, c.duration_ms, c.unaligned, c.persisted_bytes))
        .collect();
    assert!(stats.len() >= 3, "{stats:?}");
    stats
}

#[test]
fn aligned_checkpoints_under_backpressure_persist_nothing() {
    for (_, _, unaligned, persisted) in checkpoint_stats(3_000, "") {
        assert!(!unaligned && persisted == 0);
    }
    let unaligned = checkpoint_stats(3_000, UNALIGNED);
    assert!(unaligned.iter().all(|c| c.2), "{unaligned:?}");
    assert!(unaligned.iter().any(|c| c.3 > 0), "{unaligned:?}");
}

#[test]
fn aligned_checkpoint_timeout_turns_unaligned_only_the_checkpoints_that_outlast_it() {
    // A timeout no checkpoint reaches: every one stays aligned.
    let never = format!("{UNALIGNED}\n  execution.checkpointing.aligned-checkpoint-timeout: 1h");
    let stats = checkpoint_stats(3_000, &never);
    assert!(stats.iter().all(|c| !c.2 && c.3 == 0), "{stats:?}");
    // A short one (under Flink 1.x's name): under backpressure checkpoints
    // outlast it and go unaligned, and none goes unaligned before it.
    let short = format!("{UNALIGNED}\n  execution.checkpointing.alignment-timeout: 30ms");
    let stats = checkpoint_stats(4_000, &short);
    assert!(stats.iter().any(|c| c.2), "none went unaligned: {stats:?}");
    for (id, duration, unaligned, _) in stats {
        assert!(
            !unaligned || duration >= 29.0,
            "{id} went unaligned after {duration} ms"
        );
    }
}

#[test]
fn unaligned_checkpoints_need_exactly_once_and_one_at_a_time() {
    let dir = tempdir();
    let d = dir.path();
    let spec = d.join("job.yaml");
    for (extra, says) in [
        (
            format!("{UNALIGNED}\n  execution.checkpointing.mode: AT_LEAST_ONCE"),
            "EXACTLY_ONCE",
        ),
        (
            format!("{UNALIGNED}\n  execution.checkpointing.max-concurrent-checkpoints: 2"),
            "one at a time",
        ),
    ] {
        std::fs::write(&spec, backpressured(d, 10, 1, &extra)).expect("spec");
        let out = weir()
            .args(["run", "-q"])
            .arg(&spec)
            .output()
            .expect("weir run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{err}");
        assert!(!d.join("out").exists());
    }
}

/// The fixture's job, copied into `d`, with its components and this
/// machine's compile cache.
fn fixture_job(d: &Path) -> String {
    std::fs::read_to_string(d.join("job.yaml"))
        .expect("fixture job")
        .replace(
            "wasm: count.wasm",
            &format!("wasm: {}", q(weir_test_guests::COUNT)),
        )
        .replace(
            "wasm: hostile.wasm",
            &format!("wasm: {}", q(weir_test_guests::HOSTILE)),
        )
        .replace(
            "config:\n",
            &format!(
                "config:\n  weir.sandbox.cache-dir: {}\n",
                q(&cache_dir().display().to_string())
            ),
        )
}

#[test]
fn the_checked_in_version_4_unaligned_checkpoint_restores_at_any_parallelism() {
    let expected = expected(3000, 40);
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-v4-unaligned");
    for parallelism in [2, 3] {
        let dir = tempdir();
        let d = dir.path();
        copy_tree(&fixture, d);
        let point = RestorePoint::open(&d.join("chk-4")).expect("fixture opens");
        assert_eq!(point.metadata.checkpoint_id, 4);
        let channel: u64 = point
            .metadata
            .operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .filter_map(|s| s.channel.as_ref().map(|c| c.elements))
            .sum();
        assert_eq!(channel, 91 + 69 + 97, "the fixture holds in-flight records");
        let yaml = fixture_job(d).replace("parallelism: 2", &format!("parallelism: {parallelism}"));
        let g = graph(&yaml, d).expect("valid fixture job");
        let options = RunOptions {
            restore: Some(point),
            ..RunOptions::default()
        };
        run_job(&g, &options, &JobControl::default()).expect("restored run");
        assert_eq!(
            sorted_output(&d.join("out")),
            expected,
            "at parallelism {parallelism}"
        );
    }
}

#[test]
fn a_damaged_channel_state_file_is_refused_before_the_job_starts() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-v4-unaligned");
    let dir = tempdir();
    let d = dir.path();
    copy_tree(&fixture, d);
    let file = d.join("chk-4/2-slow-0.channel");
    let mut bytes = std::fs::read(&file).expect("channel file");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).expect("damage");
    let spec = d.join("job.yaml");
    std::fs::write(&spec, fixture_job(d)).expect("spec");
    let before = std::fs::read_dir(d.join("out")).expect("out").count();
    let out = weir()
        .args(["run", "-q", "-s"])
        .arg(d.join("chk-4"))
        .arg(&spec)
        .output()
        .expect("weir run -s");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("2-slow-0.channel") && err.contains("damaged"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(d.join("out")).expect("out").count(),
        before
    );
}

#[test]
fn a_trap_under_backpressure_restarts_from_an_unaligned_checkpoint_exactly_once() {
    let records = 6_000;
    let expected = uninterrupted(records);
    let dir = tempdir();
    let d = dir.path();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_millis())
        + 2_000;
    // A second hostile guest behind the slow one traps on each count of
    // 20 while the wall clock is before `before`.
    let yaml = backpressured(d, records, 2, UNALIGNED)
        .replace(
            "  - { from: slow, to: out }",
            "  - { from: slow, to: trap, partition: hash }\n  - { from: trap, to: out }",
        )
        .replace(
            "sinks:",
            &format!(
                "  - {{ id: trap, uid: trap, wasm: {}, parallelism: 2, config: {{ mode: trap-at, value: \"20\", before-ms: \"{before}\" }} }}\nsinks:",
                q(weir_test_guests::HOSTILE)
            ),
        )
        .replace(
            "config:\n",
            "config:\n  restart-strategy.type: fixed-delay\n  restart-strategy.fixed-delay.attempts: 50\n  restart-strategy.fixed-delay.delay: 500ms\n",
        );
    let g = graph(&yaml, d).expect("valid");
    let summary = run_job(&g, &RunOptions::default(), &JobControl::default()).expect("runs");
    assert!(summary.restarts >= 1, "the guest never trapped");
    assert_eq!(sorted_output(&d.join("out")), expected);
}

#[test]
fn forward_edges_stay_aligned_unless_forced_and_forced_ones_restore_only_at_their_parallelism() {
    let records = 6_000;
    let expected = uninterrupted(records);
    // `slow` behind a forward edge, not chained (chained, it would have
    // no channel of its own to hold in-flight records).
    let forward = |dir: &Path, parallelism: u32, extra: &str| {
        backpressured(dir, records, parallelism, extra)
            .replace(
                "{ from: count, to: slow, partition: hash }",
                "{ from: count, to: slow }",
            )
            .replace(
                r#"config: { mode: slow, ms: "1" } }"#,
                r#"config: { mode: slow, ms: "1" }, chaining: false }"#,
            )
    };
    let slow_state = |m: &CheckpointMetadata| {
        m.operator("slow")
            .map(|o| o.subtasks.iter().any(|s| s.unaligned))
            .unwrap_or(false)
    };
    // Enabled, not forced: the task behind the forward edge aligns.
    let dir = tempdir();
    let g = graph(&forward(dir.path(), 2, UNALIGNED), dir.path()).expect("valid");
    let summary = run_job(&g, &RunOptions::default(), &JobControl::default()).expect("runs");
    assert!(
        summary.checkpoints.iter().any(|c| c.unaligned),
        "count went unaligned"
    );
    for c in &summary.checkpoints {
        assert!(
            c.subtasks
                .iter()
                .filter(|s| s.node == "slow")
                .all(|s| !s.unaligned),
            "{c:?}"
        );
    }
    // Forced: it goes unaligned too, and its forward channel state
    // restores at its own parallelism, exactly once, and not at another.
    let forced = "execution.checkpointing.unaligned.forced: true";
    let dir = tempdir();
    let d = dir.path();
    let spec = d.join("job.yaml");
    std::fs::write(&spec, forward(d, 2, forced)).expect("spec");
    let chk = kill_at(d, &spec, &|m| {
        slow_state(m)
            && m.operator("slow").is_some_and(|o| {
                o.subtasks
                    .iter()
                    .any(|s| s.channel.as_ref().is_some_and(|c| c.forward))
            })
    });
    std::fs::write(&spec, forward(d, 3, forced)).expect("spec");
    let out = weir()
        .args(["run", "-q", "-s"])
        .arg(&chk)
        .arg(&spec)
        .output()
        .expect("weir run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("forward edge"),
        "{err}"
    );
    std::fs::write(&spec, forward(d, 2, forced)).expect("spec");
    run_restored(&spec, &chk);
    assert_eq!(sorted_output(&d.join("out")), expected);
}
