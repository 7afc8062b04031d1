//! Failover strategies: in a job whose edges are all forward, a failure
//! restarts only its parallel slice from the latest checkpoint while the
//! other slices run on without rolling back, and the output stays exactly
//! once; with a hash edge (one region) the whole job restarts.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use weir::{JobControl, RunOptions, run_job};

use crate::checkpoints::sorted_output;
use crate::common::{cache_dir, graph, q, tempdir};

/// datagen (p=3) -> hostile guest (forwards; traps at record 3000 until
/// 2 s from now, when `trap`) -> file sink, over `partition` edges.
fn pipeline(dir: &Path, trap: bool, partition: &str, extra: &str) -> String {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_millis())
        + 2_000;
    let mode = if trap {
        format!("mode: trap-at, value: \"3000\", before-ms: \"{before}\"")
    } else {
        "mode: ok".to_owned()
    };
    format!(
        r#"
name: slices
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
  restart-strategy.type: fixed-delay
  restart-strategy.fixed-delay.attempts: 3
  restart-strategy.fixed-delay.delay: 2s
  {extra}
sources:
  - {{ id: gen, type: datagen, count: 30000, keys: 100, rate: 6000, parallelism: 3 }}
operators:
  - {{ id: hostile, uid: hostile, wasm: {wasm}, parallelism: 3, config: {{ {mode} }} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: 3 }}
edges:
  - {{ from: gen, to: hostile, partition: {partition} }}
  - {{ from: hostile, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        wasm = q(weir_test_guests::HOSTILE),
    )
}

/// The sorted output of the job run without a trap.
fn expected(partition: &str) -> Vec<String> {
    let dir = tempdir();
    let g = graph(&pipeline(dir.path(), false, partition, ""), dir.path()).expect("valid");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("runs");
    sorted_output(&dir.path().join("out"))
}

#[test]
fn a_failure_in_a_forward_slice_restarts_only_that_slice() {
    let expected = expected("forward");
    assert_eq!(expected.len(), 30_000);
    let dir = tempdir();
    let d = dir.path();
    let g = graph(&pipeline(d, true, "forward", ""), d).expect("valid");
    let control = Arc::new(JobControl::default());
    let (c, g2) = (control.clone(), g.clone());
    let job = std::thread::spawn(move || run_job(&g2, &RunOptions::default(), &c));
    // The counters of the first run of every subtask.
    let first = loop {
        let live = control.live();
        if !live.metrics.is_empty() {
            break live.metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let summary = job.join().expect("thread").expect("the job recovers");
    assert_eq!(summary.restarts, 1);
    let live = control.live();
    let restart = live.restart_history.first().expect("one restart");
    assert!(
        restart.cause.contains("trap at value 3000"),
        "{}",
        restart.cause
    );
    // Record 3000 is subtask 0's (records i with i mod 3 == s): its slice,
    // and only it, restarted, from a checkpoint.
    assert_eq!(
        restart.subtasks.as_deref(),
        Some(
            &[
                "gen[0]".to_owned(),
                "hostile[0]".to_owned(),
                "out[0]".to_owned()
            ][..]
        )
    );
    assert!(restart.restored.is_some(), "from a checkpoint");
    let n = |id: &str| g.nodes.iter().position(|x| x.id == id).expect("node");
    let hostile = n("hostile");
    for s in [1, 2] {
        // The other slices kept their tasks (no restart) and read each of
        // their records once (no rollback).
        assert!(
            Arc::ptr_eq(&first[hostile][s], &live.metrics[hostile][s]),
            "slice {s} restarted"
        );
        assert_eq!(
            live.metrics[hostile][s].snapshot().records_in,
            10_000,
            "slice {s}"
        );
    }
    assert!(!Arc::ptr_eq(&first[hostile][0], &live.metrics[hostile][0]));
    // Record for record, the output of an uninterrupted run.
    assert_eq!(sorted_output(&d.join("out")), expected);
}

#[test]
fn with_an_all_to_all_edge_or_full_failover_the_whole_job_restarts() {
    let expected_hash = expected("rebalance");
    for (partition, extra) in [
        ("rebalance", ""),
        ("forward", "jobmanager.execution.failover-strategy: full"),
    ] {
        let dir = tempdir();
        let d = dir.path();
        let g = graph(&pipeline(d, true, partition, extra), d).expect("valid");
        let control = JobControl::default();
        let summary = run_job(&g, &RunOptions::default(), &control).expect("recovers");
        assert_eq!(summary.restarts, 1, "{partition} {extra}");
        let live = control.live();
        let restart = live.restart_history.first().expect("one restart");
        assert_eq!(restart.subtasks, None, "the whole job: {partition} {extra}");
        let out = sorted_output(&d.join("out"));
        if partition == "rebalance" {
            assert_eq!(out, expected_hash);
        } else {
            assert_eq!(out.len(), 30_000);
        }
    }
}
