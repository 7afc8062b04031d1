//! Word count over a checked-in multilingual text, through the `weir`
//! binary, at parallelism 1 and 2.

use std::collections::BTreeMap;

use crate::common::{data, last_values, output_lines, q, run_cli, tempdir};

fn expected() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(data("multilingual.expected")).expect("expected counts");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (w, n) = l.split_once('\t').expect("word<TAB>count");
            (w.to_owned(), n.parse().expect("count"))
        })
        .collect()
}

fn word_count(parallelism: u32) {
    let dir = tempdir();
    let out = dir.path().join("out");
    let yaml = format!(
        r#"
name: word-count-p{parallelism}
config:
  weir.sandbox.cache-dir: {cache}
sources:
  - {{ id: lines, type: file, path: {input} }}
operators:
  - {{ id: tokenize, uid: tokenize, wasm: {tokenize}, parallelism: {parallelism} }}
  - {{ id: count, uid: count, wasm: {count}, parallelism: {parallelism} }}
sinks:
  - {{ id: out, type: file, path: {out}, parallelism: {parallelism} }}
edges:
  - {{ from: lines, to: tokenize, partition: rebalance }}
  - {{ from: tokenize, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
        cache = q(&crate::common::cache_dir().display().to_string()),
        input = q(&data("multilingual.txt").display().to_string()),
        tokenize = q(weir_test_guests::TOKENIZE),
        count = q(weir_test_guests::COUNT),
        out = q(&out.display().to_string()),
    );
    let result = run_cli(&yaml, dir.path());
    assert!(
        result.status.success(),
        "weir run failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let lines = output_lines(&out);
    let got: BTreeMap<String, u64> = last_values(&lines)
        .into_iter()
        .map(|(k, v)| (k, v.parse().expect("count")))
        .collect();
    assert_eq!(got, expected());
    // A running count emits one update per word occurrence.
    assert_eq!(lines.len() as u64, expected().values().sum::<u64>());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("finished"), "summary on stderr: {stderr}");
}

#[test]
fn word_count_at_parallelism_1() {
    word_count(1);
}

#[test]
fn word_count_at_parallelism_2() {
    word_count(2);
}
