//! The `filter` operator and the compiled-component cache.

use weir::Config;
use weir::JobError;
use weir::Sandbox;

use crate::common::{output_lines, q, run, tempdir};

fn filter_job(config: &str, out: &std::path::Path) -> String {
    format!(
        r#"
name: filter
sources:
  - {{ id: gen, type: datagen, count: 20, keys: 3 }}
operators:
  - id: small
    uid: small-values
    wasm: {wasm}
    parallelism: 2
    config: {config}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: gen, to: small, partition: rebalance }}
  - {{ from: small, to: out, partition: rebalance }}
"#,
        wasm = q(weir_test_guests::FILTER),
        out = q(&out.display().to_string()),
    )
}

#[test]
fn filter_keeps_the_elements_that_match_its_predicate() {
    let dir = tempdir();
    let out = dir.path().join("out");
    run(&filter_job("{ op: lt, operand: 10 }", &out), dir.path()).expect("job runs");
    let mut values: Vec<u64> = output_lines(&out)
        .iter()
        .map(|l| {
            l.split_once('\t')
                .expect("key<TAB>value")
                .1
                .parse()
                .expect("number")
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..10).collect::<Vec<_>>());

    let out = dir.path().join("negated");
    run(
        &filter_job("{ op: ends-with, operand: '5', negate: true }", &out),
        dir.path(),
    )
    .expect("job runs");
    assert_eq!(output_lines(&out).len(), 18, "5 and 15 are dropped");
}

#[test]
fn filter_refuses_a_bad_predicate_in_open() {
    let dir = tempdir();
    let err = run(
        &filter_job("{ op: between, operand: 3 }", &dir.path().join("out")),
        dir.path(),
    )
    .expect_err("bad config");
    assert!(matches!(err, JobError::Task { .. }));
    let msg = err.to_string();
    assert!(msg.contains("refused its config in `open`"), "{msg}");
    assert!(
        msg.contains("config key `op`: unknown operator \"between\""),
        "{msg}"
    );
}

#[test]
fn a_second_start_loads_the_compiled_component_from_the_cache() {
    let dir = tempdir();
    let config = Config {
        cache_dir: dir.path().join("cache"),
        ..Config::default()
    };
    let first = Sandbox::new(&config).expect("sandbox");
    let loaded = first
        .load(std::path::Path::new(weir_test_guests::COUNT))
        .expect("load");
    let report = loaded.compiled.expect("compiled, not cached");
    assert!(report.seconds > 0.0, "{report:?}");
    drop(first);

    let second = Sandbox::new(&config).expect("sandbox");
    let again = second
        .load(std::path::Path::new(weir_test_guests::COUNT))
        .expect("load");
    assert!(again.compiled.is_none(), "compiled again: {again:?}");
    assert_eq!(again.hash, loaded.hash);

    // A corrupted artifact is never loaded: it is compiled again.
    for entry in std::fs::read_dir(dir.path().join("cache")).expect("cache dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).expect("artifact");
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&path, bytes).expect("corrupt");
        }
    }
    let third = Sandbox::new(&config).expect("sandbox");
    let recompiled = third
        .load(std::path::Path::new(weir_test_guests::COUNT))
        .expect("load");
    assert!(recompiled.compiled.is_some(), "a corrupted artifact loaded");
}

/// The filter job with a forward edge into a sink of parallelism 2, which
/// can be chained.
fn forward_filter_job(out: &std::path::Path) -> String {
    filter_job("{ op: lt, operand: 10 }", out)
        .replace(
            "{ from: small, to: out, partition: rebalance }",
            "{ from: small, to: out, partition: forward }",
        )
        .replace(
            "{ id: out, type: file,",
            "{ id: out, type: file, parallelism: 2,",
        )
}

#[test]
fn chaining_a_sink_changes_nothing_but_threads_and_its_failures_name_the_sink() {
    let dir = tempdir();
    // The filter -> sink edge is forward: the sink runs in the filter's
    // thread unless chaining is off; the output is the same either way.
    let mut outputs = Vec::new();
    for chaining in [true, false] {
        let out = dir.path().join(format!("out-{chaining}"));
        let yaml = forward_filter_job(&out).replace(
            "edges:",
            &format!("config:\n  pipeline.operator-chaining.enabled: {chaining}\nedges:"),
        );
        let summary = run(&yaml, dir.path()).expect("job runs");
        assert_eq!(summary.node("out").map(|n| n.metrics.records_in), Some(10));
        let mut lines = output_lines(&out);
        lines.sort();
        outputs.push(lines);
    }
    assert_eq!(outputs[0], outputs[1]);

    // A sink that cannot create its folder fails the job, and the error
    // names the sink, chained or not.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").expect("file");
    let yaml = forward_filter_job(&blocker.join("out"));
    let err = run(&yaml, dir.path()).expect_err("sink cannot open");
    let msg = err.to_string();
    assert!(msg.starts_with("sink `out` (uid `out`)"), "{msg}");
}
