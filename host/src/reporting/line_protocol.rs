//! Metric points in InfluxDB 1.x's line protocol, named as Flink's
//! InfluxDB reporter names them: the measurement is the logical scope
//! joined with `_`, then the metric name (`jobmanager_job_numRestarts`);
//! the tags are the scope variables; the fields are `value` for a gauge (a
//! string for a text gauge), `count` for a counter, `count` and `rate` for
//! a meter, and `count, min, max, mean, stddev, p50 ... p999` for a
//! histogram. NaN and infinities are dropped, and a point left without
//! fields is skipped.

use std::fmt::Write;

use super::point::{Point, Value};

/// The measurement name Flink gives a metric: scope and name joined with
/// `_`, characters outside `[a-zA-Z0-9:_]` replaced by `_`.
pub fn measurement(scope: &str, name: &str) -> String {
    format!("{scope}.{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Appends `point`, stamped `timestamp_ms`, as one line (with its
/// newline); nothing if it has no finite field.
pub fn encode(point: &Point, timestamp_ms: i64, out: &mut String) {
    let fields = fields(&point.value);
    if fields.is_empty() {
        return;
    }
    escape(&measurement(point.scope, &point.name), &[',', ' '], out);
    for (k, v) in &point.variables {
        if v.is_empty() {
            continue; // the line protocol has no empty tag values
        }
        out.push(',');
        escape(k, &[',', '=', ' '], out);
        out.push('=');
        escape(v, &[',', '=', ' '], out);
    }
    for (i, (k, v)) in fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    let _ = writeln!(out, " {timestamp_ms}");
}

/// The fields of a value, each as written on the line.
fn fields(value: &Value) -> Vec<(&'static str, String)> {
    let float = |k: &'static str, v: f64| v.is_finite().then(|| (k, format!("{v}")));
    match value {
        Value::Number(v) => float("value", *v).into_iter().collect(),
        Value::Text(s) => {
            let mut quoted = String::from("\"");
            escape(s, &['"', '\\'], &mut quoted);
            quoted.push('"');
            vec![("value", quoted)]
        }
        Value::Count(n) => vec![("count", format!("{n}i"))],
        Value::Meter { count, rate } => {
            let mut f = vec![("count", format!("{count}i"))];
            f.extend(float("rate", *rate));
            f
        }
        Value::Histogram(d) => {
            let mut f = vec![("count", format!("{}i", d.count))];
            let named = [
                ("min", d.min),
                ("max", d.max),
                ("mean", d.mean),
                ("stddev", d.stddev),
            ];
            let q = ["p50", "p75", "p95", "p98", "p99", "p999"];
            let all = named.into_iter().chain(q.into_iter().zip(d.quantiles));
            f.extend(all.filter_map(|(k, v)| float(k, v)));
            f
        }
    }
}

/// Appends `text` with a backslash before each of `special` (and before
/// a backslash when it is special).
fn escape(text: &str, special: &[char], out: &mut String) {
    for c in text.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        match c {
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::point::{Distribution, JOB, OPERATOR};

    fn line(scope: &'static str, name: &str, value: Value) -> String {
        let p = Point {
            scope,
            name: name.into(),
            variables: vec![
                ("job_id", "ab12".into()),
                ("job_name", "my job, v2".into()),
                ("host", String::new()),
            ],
            value,
        };
        let mut out = String::new();
        encode(&p, 1_700_000_000_000, &mut out);
        out
    }

    #[test]
    fn points_are_written_as_flinks_reporter_writes_them() {
        assert_eq!(
            line(JOB, "lastCheckpointDuration", Value::Number(12.5)),
            "jobmanager_job_lastCheckpointDuration,job_id=ab12,job_name=my\\ job\\,\\ v2 value=12.5 1700000000000\n"
        );
        assert_eq!(
            line(
                JOB,
                "lastCheckpointExternalPath",
                Value::Text("/cp/a \"b\"".into())
            ),
            "jobmanager_job_lastCheckpointExternalPath,job_id=ab12,job_name=my\\ job\\,\\ v2 value=\"/cp/a \\\"b\\\"\" 1700000000000\n"
        );
        assert!(
            line(OPERATOR, "numRecordsIn", Value::Count(7))
                .starts_with("taskmanager_job_task_operator_numRecordsIn,job_id=ab12,")
        );
        assert!(line(OPERATOR, "numRecordsIn", Value::Count(7)).contains(" count=7i "));
        assert!(
            line(
                OPERATOR,
                "x",
                Value::Meter {
                    count: 3,
                    rate: 1.5
                }
            )
            .contains(" count=3i,rate=1.5 ")
        );
        let d = Distribution::of(&[1.0, 2.0, 3.0]).expect("some");
        let h = line(OPERATOR, "h", Value::Histogram(d));
        assert!(h.contains(" count=3i,min=1,max=3,mean=2,stddev="), "{h}");
        assert!(h.contains(",p50=2,p75=3,p95=3,p98=3,p99=3,p999=3 "), "{h}");
    }

    #[test]
    fn nan_and_infinities_are_dropped_and_empty_points_skipped() {
        assert_eq!(line(JOB, "g", Value::Number(f64::NAN)), "");
        assert_eq!(line(JOB, "g", Value::Number(f64::INFINITY)), "");
        assert!(
            line(
                JOB,
                "m",
                Value::Meter {
                    count: 1,
                    rate: f64::NAN
                }
            )
            .contains(" count=1i ")
        );
        assert_eq!(
            measurement("taskmanager.job.task.operator", "my-gauge"),
            "taskmanager_job_task_operator_my_gauge"
        );
    }
}
