//! Metric points as Prometheus text (format 0.0.4), named as Flink's
//! Prometheus reporter names them: `weir_` (Flink: `flink_`), the logical
//! scope joined with `_`, then the metric name; the scope variables as
//! labels. Counters, gauges and meters (their rate) are gauges, as in
//! Flink; a histogram is a summary with Flink's quantiles. A text gauge,
//! which Prometheus cannot carry as a value, is an info metric
//! (`..._info{...,path="..."} 1`).
//!
//! Written here rather than with `prometheus-client`, which has no
//! summary type.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::line_protocol::measurement;
use super::point::{Point, QUANTILES, Value};

/// One family: its type and its samples (labels, value).
#[derive(Default)]
struct Family {
    kind: &'static str,
    help: String,
    samples: Vec<(String, f64)>,
}

/// The Prometheus text of `points`.
pub fn encode(points: &[Point]) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for p in points {
        let base = format!("weir_{}", measurement(p.scope, &p.name));
        let labels = |extra: &[(&str, String)]| {
            let mut all: Vec<(&str, String)> =
                p.variables.iter().map(|(k, v)| (*k, v.clone())).collect();
            all.extend(extra.iter().cloned());
            label_set(&all)
        };
        let help = format!("{} (scope {})", p.name, p.scope);
        let mut add = |name: String, kind: &'static str, labels: String, v: f64| {
            let f = families.entry(name).or_default();
            f.kind = kind;
            f.help.clone_from(&help);
            f.samples.push((labels, v));
        };
        match &p.value {
            Value::Number(v) => add(base, "gauge", labels(&[]), *v),
            Value::Count(n) => add(base, "gauge", labels(&[]), *n as f64),
            Value::Meter { rate, .. } => add(base, "gauge", labels(&[]), *rate),
            Value::Text(s) => {
                let key = if p.name.ends_with("Path") {
                    "path"
                } else {
                    "value"
                };
                add(
                    format!("{base}_info"),
                    "gauge",
                    labels(&[(key, s.clone())]),
                    1.0,
                );
            }
            Value::Histogram(d) => {
                for (q, v) in QUANTILES.iter().zip(d.quantiles) {
                    add(
                        base.clone(),
                        "summary",
                        labels(&[("quantile", q.to_string())]),
                        v,
                    );
                }
                let f = families.entry(base).or_default();
                f.samples
                    .push((format!("_sum{}", labels(&[])), d.mean * d.count as f64));
                f.samples
                    .push((format!("_count{}", labels(&[])), d.count as f64));
            }
        }
    }
    let mut out = String::new();
    for (name, f) in &families {
        let _ = writeln!(out, "# HELP {name} {}", f.help);
        let _ = writeln!(out, "# TYPE {name} {}", f.kind);
        for (labels, v) in &f.samples {
            // `_sum` and `_count` samples carry their suffix before the labels.
            let _ = writeln!(out, "{name}{labels} {}", number(*v));
        }
    }
    out
}

/// `{k="v",...}`, with values escaped; empty if there are none.
fn label_set(labels: &[(&str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let body: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A sample value as Prometheus writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::point::{Distribution, JOB, TASK};

    #[test]
    fn families_follow_flinks_prometheus_names() {
        let vars = vec![
            ("job_id", "ab".to_owned()),
            ("job_name", "a \"q\"".to_owned()),
        ];
        let points = vec![
            Point {
                scope: JOB,
                name: "numRestarts".into(),
                variables: vars.clone(),
                value: Value::Number(2.0),
            },
            Point {
                scope: JOB,
                name: "lastCheckpointExternalPath".into(),
                variables: vars.clone(),
                value: Value::Text("/cp/chk-3".into()),
            },
            Point {
                scope: TASK,
                name: "checkpointStartDelayNanos".into(),
                variables: vars,
                value: Value::Histogram(Distribution::of(&[1.0, 3.0]).expect("some")),
            },
        ];
        let text = encode(&points);
        assert!(text.contains("# TYPE weir_jobmanager_job_numRestarts gauge\nweir_jobmanager_job_numRestarts{job_id=\"ab\",job_name=\"a \\\"q\\\"\"} 2\n"), "{text}");
        assert!(text.contains("weir_jobmanager_job_lastCheckpointExternalPath_info{job_id=\"ab\",job_name=\"a \\\"q\\\"\",path=\"/cp/chk-3\"} 1\n"), "{text}");
        assert!(
            text.contains("# TYPE weir_taskmanager_job_task_checkpointStartDelayNanos summary\n"),
            "{text}"
        );
        assert!(text.contains("weir_taskmanager_job_task_checkpointStartDelayNanos{job_id=\"ab\",job_name=\"a \\\"q\\\"\",quantile=\"0.999\"} 3\n"), "{text}");
        assert!(text.contains("weir_taskmanager_job_task_checkpointStartDelayNanos_count{job_id=\"ab\",job_name=\"a \\\"q\\\"\"} 2\n"), "{text}");
        assert!(text.contains("weir_taskmanager_job_task_checkpointStartDelayNanos_sum{job_id=\"ab\",job_name=\"a \\\"q\\\"\"} 4\n"), "{text}");
    }
}
