//! List, map, prefetched value and namespaced value state through the SDK.

use crate::common::{output_lines, q, run, tempdir};

#[test]
fn every_state_kind_keeps_per_key_values_across_batches() {
    let dir = tempdir();
    let input = dir.path().join("in.csv");
    // Key a gets 1, 2, 1; key b gets 5. Batches of 2 elements, so state
    // must survive from one guest call to the next.
    std::fs::write(&input, "0,a,1\n1,b,5\n2,a,2\n3,a,1\n").expect("input");
    let out = dir.path().join("out");
    let yaml = format!(
        r#"
name: state-kinds
config:
  weir.batch.size: 2
sources:
  - {{ id: in, type: file, path: {input}, format: csv }}
operators:
  - {{ id: probe, uid: probe, wasm: {wasm}, parallelism: 2 }}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: in, to: probe, partition: hash }}
  - {{ from: probe, to: out, partition: rebalance }}
"#,
        input = q(&input.display().to_string()),
        wasm = q(weir_test_guests::STATE_KINDS),
        out = q(&out.display().to_string()),
    );
    run(&yaml, dir.path()).expect("job runs");
    let lines = output_lines(&out);
    let a: Vec<&String> = lines.iter().filter(|l| l.starts_with("a\t")).collect();
    let b: Vec<&String> = lines.iter().filter(|l| l.starts_with("b\t")).collect();
    // <list length> <distinct values> <previous value> <total>
    assert_eq!(a, vec!["a\t1 1 - 1", "a\t2 2 1 3", "a\t3 2 2 4"]);
    assert_eq!(b, vec!["b\t1 1 - 5"]);
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
