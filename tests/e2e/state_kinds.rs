//! List, map, prefetched value, namespaced value, reducing and aggregating
//! state through the SDK.

use crate::common::{output_lines, q, run, tempdir};

/// Runs the state-kinds probe over key a: 1, 2, 1 and key b: 5 (batches
/// of 2, so state survives from one guest call to the next) with `config`
/// lines; returns a's lines and b's.
fn state_kinds_run(config: &str) -> (Vec<String>, Vec<String>) {
    let dir = tempdir();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "0,a,1\n1,b,5\n2,a,2\n3,a,1\n").expect("input");
    let out = dir.path().join("out");
    let yaml = format!(
        r#"
name: state-kinds
config:
  weir.batch.size: 2
  state.backend.rocksdb.localdir: {localdir}
{config}
sources:
  - {{ id: in, type: file, path: {input}, format: csv }}
operators:
  - {{ id: probe, uid: probe, wasm: {wasm}, parallelism: 2, config: {{ {op_config} }} }}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: in, to: probe, partition: hash }}
  - {{ from: probe, to: out, partition: rebalance }}
"#,
        localdir = q(&dir.path().join("rocksdb").display().to_string()),
        config = config
            .lines()
            .filter(|l| !l.starts_with("op "))
            .map(|l| format!("  {l}\n"))
            .collect::<String>(),
        op_config = config
            .lines()
            .filter_map(|l| l.strip_prefix("op "))
            .collect::<Vec<_>>()
            .join(", "),
        input = q(&input.display().to_string()),
        wasm = q(weir_test_guests::STATE_KINDS),
        out = q(&out.display().to_string()),
    );
    run(&yaml, dir.path()).expect("job runs");
    let lines = output_lines(&out);
    let of =
        |k: &str| -> Vec<String> { lines.iter().filter(|l| l.starts_with(k)).cloned().collect() };
    (of("a\t"), of("b\t"))
}

#[test]
fn every_state_kind_keeps_per_key_values_across_batches() {
    // <list length> <distinct values> <previous value> <total> <largest
    // (reducing state)> <mean (aggregating state)>
    let want_a = vec![
        "a\t1 1 - 1 1 1.00",
        "a\t2 2 1 3 2 1.50",
        "a\t3 2 2 4 2 1.33",
    ];
    let want_b = vec!["b\t1 1 - 5 5 5.00"];
    for config in [
        "",
        "state.backend.type: rocksdb",
        // A long time-to-live changes nothing within it, on either backend.
        "op ttl-ms: \"3600000\"",
        "state.backend.type: rocksdb\nop ttl-ms: \"3600000\"",
    ] {
        let (a, b) = state_kinds_run(config);
        assert_eq!(a, want_a, "{config}");
        assert_eq!(b, want_b, "{config}");
    }
}

#[test]
fn counts_start_over_once_a_keys_state_has_expired() {
    // Keys 0..4 in turn at 20 records a second: a key comes back every
    // 250 ms, long after a 1 ms time-to-live; with a day it keeps counting.
    for backend in ["hashmap", "rocksdb"] {
        let count_ones = |ttl: &str| {
            let dir = tempdir();
            let out = dir.path().join("out");
            let yaml = format!(
                r#"
name: ttl-count
config:
  state.backend.type: {backend}
  state.backend.rocksdb.localdir: {localdir}
sources:
  - {{ id: gen, type: datagen, count: 20, keys: 5, rate: 20, sequential-keys: true }}
operators:
  - {{ id: count, uid: count, wasm: {wasm}, config: {{ ttl-ms: "{ttl}" }} }}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: gen, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
                localdir = q(&dir.path().join("rocksdb").display().to_string()),
                wasm = q(weir_test_guests::COUNT),
                out = q(&out.display().to_string()),
            );
            run(&yaml, dir.path()).expect("job runs");
            let lines = output_lines(&out);
            assert_eq!(lines.len(), 20);
            lines.iter().filter(|l| l.ends_with("\t1")).count()
        };
        assert_eq!(
            count_ones("86400000"),
            5,
            "{backend}: one first count per key"
        );
        // A start-up burst may put a key twice into one batch; most
        // elements still find their key's count expired.
        assert!(count_ones("1") >= 15, "{backend}: counts start over");
    }
}

fn timer_job(config: &str, out: &std::path::Path) -> String {
    format!(
        r#"
name: processing-timers
sources:
  - {{ id: gen, type: datagen, count: 20, keys: 2, rate: 40 }}
operators:
  - id: probe
    uid: probe
    wasm: {wasm}
    config: {config}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: gen, to: probe, partition: hash }}
  - {{ from: probe, to: out }}
"#,
        wasm = q(weir_test_guests::STATE_KINDS),
        out = q(&out.display().to_string()),
    )
}

#[test]
fn a_timer_that_rearms_itself_neither_loops_forever_nor_starves_the_input() {
    let dir = tempdir();
    let out = dir.path().join("out");
    run(
        &timer_job("{ timer-after-ms: 0, rearm: true }", &out),
        dir.path(),
    )
    .expect("job ends");
    let lines = output_lines(&out);
    let elements = lines.iter().filter(|l| !l.ends_with("\ttimer")).count();
    assert_eq!(elements, 20, "every element was processed");
    assert!(lines.iter().any(|l| l.ends_with("\ttimer")), "timers fired");
}

#[test]
fn processing_time_timers_fire_for_their_key_while_the_job_runs() {
    let dir = tempdir();
    let out = dir.path().join("out");
    // 20 elements at 40 per second: the job runs for about half a second,
    // long enough for timers 50 to 150 ms ahead to fire.
    let yaml = timer_job("{ timer-after-ms: 50 }", &out);
    run(&yaml, dir.path()).expect("job runs");
    let lines = output_lines(&out);
    for key in ["key-0", "key-1"] {
        let elements = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{key}\t")) && !l.ends_with("\ttimer"))
            .count();
        let timers = lines
            .iter()
            .filter(|l| **l == format!("{key}\ttimer"))
            .count();
        assert!(elements > 0, "{key} got elements: {lines:?}");
        assert!(
            timers > 0,
            "a processing-time timer fired for {key}: {lines:?}"
        );
    }
}

#[test]
fn a_restore_refuses_to_switch_a_states_time_to_live() {
    use std::time::Duration;
    use weir::RestorePoint;
    use weir::{JobControl, JobError, RunOptions, run_job};

    use crate::checkpoints::{latest_checkpoint, run_until_then_cancel};
    use crate::common::graph;

    let dir = tempdir();
    let d = dir.path();
    let yaml = |config: &str| {
        format!(
            r#"
name: ttl-switch
config:
  execution.checkpointing.interval: 100ms
  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  state.checkpoints.dir: {checkpoints}
  restart-strategy.type: none
sources:
  - {{ id: gen, type: datagen, count: 1000000, keys: 10, rate: 1000 }}
operators:
  - {{ id: count, uid: count, wasm: {wasm}, config: {{ {config} }} }}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: gen, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
            checkpoints = q(&d.join("checkpoints").display().to_string()),
            wasm = q(weir_test_guests::COUNT),
            out = q(&d.join("out").display().to_string()),
        )
    };
    let r = run_until_then_cancel(
        &yaml("ttl-ms: \"3600000\""),
        d,
        None,
        Duration::from_secs(60),
        |d| latest_checkpoint(d).is_some(),
    );
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let (_, chk) = latest_checkpoint(d).expect("a checkpoint");
    let point = RestorePoint::open(&chk).expect("open");
    let g = graph(&yaml(""), d).expect("valid spec");
    let options = RunOptions {
        restore: Some(point),
        ..RunOptions::default()
    };
    // Refused before the job starts, naming the uid, the state and the
    // change (the operator's own check at `open` stays behind it).
    let err = run_job(&g, &options, &JobControl::default()).expect_err("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains(
            "`count`: state `count` had time-to-live 3600000 ms and is declared with none now"
        ),
        "{text}"
    );
}
