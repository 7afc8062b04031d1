//! Two-input operators and operator state: the `enrich` join fed by a fast
//! and a slow source survives SIGKILL and restore with exactly-once output
//! (barriers aligned over inputs of different speed), and a guest's
//! operator list state is restored and redistributed at another
//! parallelism.

use std::path::Path;
use std::time::Duration;

use weir::RestorePoint;
use weir::{JobControl, JobError, RunOptions, run_job};

use crate::checkpoints::{
    hidden_files, latest_checkpoint, next_random, run_until_then_cancel, sorted_output, spawn,
};
use crate::common::{cache_dir, graph, output_lines, q, tempdir};

fn join_job(dir: &Path, rates: bool) -> String {
    let (fast, slow) = if rates {
        (", rate: 20000", ", rate: 300")
    } else {
        ("", "")
    };
    format!(
        r#"
name: enrich-join
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
sources:
  - {{ id: events, type: datagen, count: 60000, keys: 300{fast} }}
  - {{ id: refs, type: datagen, count: 900, keys: 300{slow} }}
operators:
  - {{ id: join, uid: join, wasm: {wasm}, parallelism: 2 }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: 2 }}
edges:
  - {{ from: events, to: join, partition: hash }}
  - {{ from: refs, to: join, partition: hash, input: 2 }}
  - {{ from: join, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        wasm = q(weir_test_guests::ENRICH),
    )
}

#[test]
fn a_join_of_a_fast_and_a_slow_input_is_exactly_once_across_sigkills() {
    // The uninterrupted output.
    let plain = tempdir();
    let g = graph(&join_job(plain.path(), false), plain.path()).expect("valid");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("uninterrupted run");
    let want = sorted_output(&plain.path().join("out"));
    assert!(
        want.len() > 50_000,
        "most events find a label: {}",
        want.len()
    );
    assert!(want.iter().all(|l| l.contains('|')));

    let dir = tempdir();
    let d = dir.path();
    let job = d.join("job.yaml");
    std::fs::write(&job, join_job(d, true)).expect("write");
    let mut seed = crate::checkpoints::kill_seed();
    for _ in 0..3 {
        let from = latest_checkpoint(d).map(|(_, p)| p);
        let mut child = spawn(&job, from.as_deref());
        std::thread::sleep(Duration::from_millis(300 + next_random(&mut seed) % 400));
        assert!(child.try_wait().expect("poll").is_none(), "ended early");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    let (_, last) = latest_checkpoint(d).expect("a checkpoint");
    let out = spawn(&job, Some(&last))
        .wait_with_output()
        .expect("final run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hidden_files(&d.join("out")), Vec::<String>::new());
    let got = sorted_output(&d.join("out"));
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "committed output differs from an uninterrupted run"
    );
}

fn subtask_count_job(dir: &Path, parallelism: u32) -> String {
    format!(
        r#"
name: subtask-count
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  state.checkpoints.dir: {checkpoints}
sources:
  - {{ id: gen, type: datagen, count: 40000, keys: 100, rate: 20000 }}
operators:
  - {{ id: counter, uid: counter, wasm: {wasm}, parallelism: {parallelism} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: {parallelism} }}
edges:
  - {{ from: gen, to: counter, partition: rebalance }}
  - {{ from: counter, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        wasm = q(weir_test_guests::SUBTASK_COUNT),
    )
}

#[test]
fn operator_state_is_restored_and_redistributed_at_another_parallelism() {
    let dir = tempdir();
    let d = dir.path();
    let r = run_until_then_cancel(
        &subtask_count_job(d, 2),
        d,
        None,
        Duration::from_secs(60),
        |d| latest_checkpoint(d).is_some_and(|(id, _)| id >= 3),
    );
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let (_, chk) = latest_checkpoint(d).expect("retained");
    let g = graph(&subtask_count_job(d, 3), d).expect("valid");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&chk).expect("open")),
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("restored run");
    let lines = output_lines(&d.join("out"));
    let totals: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("seen "))
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(totals.len(), 3, "one total per subtask: {totals:?}");
    assert_eq!(totals.iter().sum::<u64>(), 40_000, "{totals:?}");
    assert_eq!(lines.len(), 40_000 + 3, "every element once");
}

#[test]
fn a_union_of_two_sources_restores_exactly_once() {
    let job = |d: &Path| {
        format!(
            r#"
name: union-count
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  state.checkpoints.dir: {checkpoints}
sources:
  - {{ id: fast, type: datagen, count: 40000, keys: 200, rate: 20000 }}
  - {{ id: slow, type: datagen, count: 4000, keys: 200, rate: 2000 }}
operators:
  - {{ id: count, uid: count, wasm: {wasm}, parallelism: 2 }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: 2 }}
edges:
  - {{ from: fast, to: count, partition: hash }}
  - {{ from: slow, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
            cache = q(&cache_dir().display().to_string()),
            checkpoints = q(&d.join("checkpoints").display().to_string()),
            wasm = q(weir_test_guests::COUNT),
        )
    };
    let dir = tempdir();
    let d = dir.path();
    let r = run_until_then_cancel(&job(d), d, None, Duration::from_secs(60), |d| {
        latest_checkpoint(d).is_some_and(|(id, _)| id >= 4)
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let (_, chk) = latest_checkpoint(d).expect("retained");
    let g = graph(&job(d), d).expect("valid");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&chk).expect("open")),
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("restored run");
    // The union's running counts: every key's counts run 1..=n without a
    // gap or a repeat, n being its share of both sources' records.
    let lines = sorted_output(&d.join("out"));
    assert_eq!(lines.len(), 44_000);
    let mut per_key: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for l in &lines {
        let (k, v) = l.split_once('\t').expect("key<TAB>count");
        per_key
            .entry(k)
            .or_default()
            .push(v.parse().expect("count"));
    }
    for (k, mut counts) in per_key {
        counts.sort_unstable();
        let n = counts.len() as u64;
        assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "key {k}");
    }
}
