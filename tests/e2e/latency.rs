//! Latency measurement (`weir bench latency`'s parts): a datagen source's
//! `latency-stamps` and any sink's `measure-latency`.

use crate::common::{graph, output_lines, q, run, run_cli, tempdir};

fn job(out: &std::path::Path, source_extra: &str) -> String {
    format!(
        r#"
name: latency
sources:
  - {{ id: gen, type: datagen, count: 3000, keys: 7, rate: 6000, latency-stamps: true{source_extra} }}
operators:
  - {{ id: count, uid: count, wasm: {wasm} }}
sinks:
  - {{ id: out, type: file, path: {out}, measure-latency: true }}
edges:
  - {{ from: gen, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
        wasm = q(weir_test_guests::COUNT),
        out = q(&out.display().to_string()),
    )
}

/// Each key's last count in the count job's output at `out`, checking
/// that every key counts 1, 2, ... in order.
fn counts_in_order(out: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let mut last = std::collections::BTreeMap::<String, u64>::new();
    for line in output_lines(out) {
        let (key, n) = line.split_once('\t').expect("key<TAB>count");
        let n: u64 = n.parse().expect("a count");
        let before = last.insert(key.to_owned(), n).unwrap_or(0);
        assert_eq!(n, before + 1, "{key} counted out of order");
    }
    last
}

#[test]
fn every_record_that_reaches_the_sink_is_measured_and_the_output_is_unchanged() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let summary = run(&job(&out, ""), dir.path()).expect("job runs");
    let l = summary
        .node("out")
        .and_then(|n| n.latency)
        .expect("the sink measured latency");
    assert_eq!(l.count, 3000, "one latency per record");
    assert!(l.p50_us <= l.p99_us && l.p99_us <= l.p999_us && l.p999_us <= l.max_us);
    assert!(summary.node("count").and_then(|n| n.latency).is_none());
    // The probe only looks: each key still counts 1, 2, ... in order.
    assert_eq!(counts_in_order(&out).values().sum::<u64>(), 3000);
}

#[test]
fn weir_run_prints_the_latency_of_a_measuring_sink() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let run = run_cli(&job(&out, ""), dir.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(
        text.contains("latency p50") && text.contains("(3000 records)"),
        "{text}"
    );
}

#[test]
fn latency_stamps_are_refused_beside_event_time_steps() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let e = graph(&job(&out, ", timestamp-step-ms: 10"), dir.path()).expect_err("refused");
    assert!(e.to_string().contains("latency-stamps"), "{e}");
}

#[test]
fn fill_keys_sends_each_key_once_first_and_unmeasured() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let summary = run(&job(&out, ", fill-keys: true"), dir.path()).expect("job runs");
    // The fill's seven records are counted but carry no stamp.
    let count = summary.node("count").expect("count ran");
    assert_eq!(count.metrics.records_in, 3007);
    let l = summary
        .node("out")
        .and_then(|n| n.latency)
        .expect("the sink measured latency");
    assert_eq!(l.count, 3000, "only the stamped records are measured");
    // Each key's first count is the fill's record, which comes first.
    let lines = output_lines(&out);
    let firsts: std::collections::BTreeSet<&str> = lines
        .iter()
        .take(7)
        .map(|l| l.split_once('\t').expect("key<TAB>count"))
        .inspect(|(_, n)| assert_eq!(*n, "1"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(firsts.len(), 7, "{lines:?}");
    let total: u64 = (0..7)
        .map(|k| {
            let key = format!("key-{k}\t");
            lines.iter().filter(|l| l.starts_with(&key)).count() as u64
        })
        .sum();
    assert_eq!(total, 3007);
}

#[test]
fn a_fill_split_over_two_routing_sources_counts_every_key_once_more() {
    let dir = tempdir();
    let out = dir.path().join("out");
    // Two source subtasks, each routing its records to two counts as it
    // makes them.
    let spec = job(&out, ", fill-keys: true, parallelism: 2")
        .replace("wasm: ", "parallelism: 2, wasm: ")
        .replace(
            "measure-latency: true",
            "measure-latency: true, parallelism: 2",
        );
    let summary = run(&spec, dir.path()).expect("job runs");
    let l = summary
        .node("out")
        .and_then(|n| n.latency)
        .expect("measured");
    assert_eq!(l.count, 3000);
    // Each key counts 1, 2, ... in order, and the counts add up to the
    // records plus one per key.
    let last = counts_in_order(&out);
    assert_eq!(last.len(), 7);
    assert_eq!(last.values().sum::<u64>(), 3007);
}

#[test]
fn fill_keys_is_refused_on_a_file_source() {
    let dir = tempdir();
    let spec = "name: f\nsources:\n  - { id: lines, type: file, path: in.txt, fill-keys: true }\n\
                sinks:\n  - { id: out, type: discard }\nedges:\n  - { from: lines, to: out }\n";
    let e = graph(spec, dir.path()).expect_err("refused");
    assert!(e.to_string().contains("sources[0].fill-keys"), "{e}");
}
