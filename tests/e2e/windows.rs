//! Tumbling event-time windows with out-of-order and late events.

use crate::common::{data, output_lines, q, run, tempdir};

/// The window-sum job over `events.csv` (one element per batch, so the
/// source's watermark advances between elements and `1500,a,100` arrives
/// after the watermark passed 1999), writing to `out`.
pub(crate) fn window_sum_job(out: &str) -> String {
    format!(
        r#"
name: window-sum
config:
  weir.batch.size: 1
sources:
  - {{ id: events, type: file, path: {input}, format: csv, out-of-orderness-ms: 500 }}
operators:
  - id: sum
    uid: window-sum
    wasm: {wasm}
    parallelism: 2
    config: {{ size-ms: 1000 }}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: events, to: sum, partition: hash }}
  - {{ from: sum, to: out, partition: rebalance }}
"#,
        input = q(&data("events.csv").display().to_string()),
        wasm = q(weir_test_guests::WINDOW_SUM),
        out = q(out),
    )
}

#[test]
fn window_sum_fires_each_window_once_with_out_of_order_events_and_drops_late_ones() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let yaml = window_sum_job(&out.display().to_string());
    let summary = run(&yaml, dir.path()).expect("job runs");
    let mut lines = output_lines(&out);
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "a\t0\t1000\t5",
            "a\t1000\t2000\t3",
            "a\t2000\t3000\t5",
            "a\t3000\t4000\t1",
            "b\t0\t1000\t2",
            "b\t2000\t3000\t7",
        ]
    );
    let sum = summary.node("sum").expect("sum node");
    assert_eq!(
        sum.user_counters,
        vec![
            ("dropped-elements".to_owned(), 0),
            ("late-elements".to_owned(), 1)
        ],
        "one late element, none without a timestamp"
    );
}
