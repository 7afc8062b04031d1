//! The metrics of running jobs as reporters see them: each with Flink's
//! logical scope (`jobmanager.job`, `taskmanager.job.task`,
//! `taskmanager.job.task.operator`), its name, its scope variables and its
//! value, collected from the jobs' live counters in one pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::stats::CheckpointStats;
use crate::config::MetricKind;
use crate::metrics::MetricsSnapshot;
use crate::runtime::LiveJob;
use crate::session::JobEntry;

/// The job manager's per-job scope.
pub const JOB: &str = "jobmanager.job";
/// A task's scope.
pub const TASK: &str = "taskmanager.job.task";
/// An operator's scope.
pub const OPERATOR: &str = "taskmanager.job.task.operator";

/// The job-level gauges, by Flink's names.
pub const JOB_METRICS: &[&str] = &[
    "lastCheckpointDuration",
    "lastCheckpointSize",
    "lastCheckpointFullSize",
    "lastCheckpointExternalPath",
    "lastCheckpointRestoreTimestamp",
    "numberOfCompletedCheckpoints",
    "numberOfFailedCheckpoints",
    "numberOfInProgressCheckpoints",
    "totalNumberOfCheckpoints",
    "numRestarts",
    "numQuarantinedRecords",
];

/// A distribution, as Flink's histograms report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Values seen.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// The quantiles [`QUANTILES`], in order.
    pub quantiles: [f64; 6],
}

/// The quantiles a [`Distribution`] holds, as Flink reports them.
pub const QUANTILES: [f64; 6] = [0.5, 0.75, 0.95, 0.98, 0.99, 0.999];

impl Distribution {
    /// The distribution of `values` (`None` if there are none).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let at = |q: f64| v[((q * n).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Distribution {
            count: v.len() as u64,
            min: v[0],
            max: v[v.len() - 1],
            mean,
            stddev: var.sqrt(),
            quantiles: QUANTILES.map(at),
        })
    }
}

/// A metric's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A numeric gauge.
    Number(f64),
    /// A gauge that is text (`lastCheckpointExternalPath`).
    Text(String),
    /// A counter.
    Count(u64),
    /// A meter: its count and its rate per second.
    Meter {
        /// Events so far.
        count: u64,
        /// Events per second, over the last reporting interval.
        rate: f64,
    },
    /// A histogram.
    Histogram(Distribution),
}

impl Value {
    /// The kind filters select it by.
    pub fn kind(&self) -> MetricKind {
        match self {
            Value::Number(_) | Value::Text(_) => MetricKind::Gauge,
            Value::Count(_) => MetricKind::Counter,
            Value::Meter { .. } => MetricKind::Meter,
            Value::Histogram(_) => MetricKind::Histogram,
        }
    }
}

/// One metric of one scope instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The logical scope ([`JOB`], [`TASK`] or [`OPERATOR`]).
    pub scope: &'static str,
    /// The metric's name (`numRecordsIn`).
    pub name: String,
    /// The scope variables, without `<>` (`job_id`, `subtask_index`, ...).
    pub variables: Vec<(&'static str, String)>,
    /// Its value.
    pub value: Value,
}

/// The previous reading of each per-second figure, so that a rate is
/// measured over the time between two reports.
#[derive(Debug, Default)]
pub struct Rates {
    last: HashMap<String, (Instant, f64)>,
}

impl Rates {
    /// The rate per second of `total` (a growing count) since the last
    /// call with the same `key`; 0 the first time.
    pub fn per_second(&mut self, key: String, total: f64, now: Instant) -> f64 {
        let rate = match self.last.get(&key) {
            Some((then, before)) => {
                let dt = now.duration_since(*then).as_secs_f64();
                if dt > 0.0 {
                    ((total - before) / dt).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last.insert(key, (now, total));
        rate
    }
}

/// The value of job metric `name` as Flink prints it (`-1` where Flink's
/// gauges say "none yet"); `None` for an unknown name.
pub fn job_metric(live: &LiveJob, name: &str) -> Option<Value> {
    let last = live.last_checkpoint();
    let done = live.completed_count as f64;
    let n = |v: f64| Some(Value::Number(v));
    match name {
        "lastCheckpointDuration" => n(last.map_or(-1.0, |c| c.duration_ms.round())),
        // As in Flink: what the last checkpoint wrote, and its full size.
        "lastCheckpointSize" => n(last.map_or(-1.0, |c| c.checkpointed_size as f64)),
        "lastCheckpointFullSize" => n(last.map_or(-1.0, |c| c.size as f64)),
        "lastCheckpointExternalPath" => Some(Value::Text(
            live.last_checkpoint_path().unwrap_or("n/a").to_owned(),
        )),
        "lastCheckpointRestoreTimestamp" => n(live
            .restored
            .as_ref()
            .map_or(-1.0, |r| r.restore_timestamp as f64)),
        "numberOfCompletedCheckpoints" => n(done),
        "numberOfFailedCheckpoints" => n(live.failed_count as f64),
        "numberOfInProgressCheckpoints" => n(live.in_progress as f64),
        "totalNumberOfCheckpoints" => n(done + live.failed_count as f64 + live.in_progress as f64),
        "numRestarts" => n(f64::from(live.restarts)),
        "numQuarantinedRecords" => n(live.quarantined_count as f64),
        _ => None,
    }
}

/// Every metric of `jobs`, on machine `host`, with rates measured since
/// the previous collection into `rates`.
pub fn collect(jobs: &[Arc<JobEntry>], host: &str, rates: &mut Rates) -> Vec<Point> {
    let now = Instant::now();
    let mut out = Vec::new();
    for job in jobs {
        let live = job.control.live();
        let vars = vec![
            ("host", host.to_owned()),
            ("job_id", job.id.clone()),
            ("job_name", job.graph.name.clone()),
        ];
        for name in JOB_METRICS {
            if let Some(value) = job_metric(&live, name) {
                out.push(point(JOB, name, &vars, value));
            }
        }
        collect_tasks(job, &live, &vars, host, rates, now, &mut out);
    }
    out
}

fn point(scope: &'static str, name: &str, vars: &[(&'static str, String)], value: Value) -> Point {
    Point {
        scope,
        name: name.to_owned(),
        variables: vars.to_vec(),
        value,
    }
}

/// The task and operator metrics of one job (in Weir a task runs one
/// operator, or a source or sink).
fn collect_tasks(
    job: &JobEntry,
    live: &LiveJob,
    job_vars: &[(&'static str, String)],
    host: &str,
    rates: &mut Rates,
    now: Instant,
    out: &mut Vec<Point>,
) {
    for (node, tasks) in job.graph.nodes.iter().zip(&live.metrics) {
        for (subtask, task) in tasks.iter().enumerate() {
            let mut vars = job_vars.to_vec();
            vars.extend([
                ("tm_id", host.to_owned()),
                ("task_id", node.uid.clone()),
                ("task_name", node.id.clone()),
                ("subtask_index", subtask.to_string()),
                ("task_attempt_num", live.restarts.to_string()),
            ]);
            let key = format!("{}/{}/{subtask}", job.id, node.id);
            let s = task.snapshot();
            for (name, value) in task_values(&s, &key, rates, now) {
                out.push(point(TASK, name, &vars, value));
            }
            let delays = start_delays(&live.checkpoints, &node.id, subtask as u32);
            if let Some(d) = Distribution::of(&delays) {
                out.push(point(
                    TASK,
                    "checkpointStartDelayNanos",
                    &vars,
                    Value::Histogram(d),
                ));
            }
            vars.extend([
                ("operator_id", node.uid.clone()),
                ("operator_name", node.id.clone()),
            ]);
            out.push(point(
                OPERATOR,
                "numRecordsIn",
                &vars,
                Value::Count(s.records_in),
            ));
            out.push(point(
                OPERATOR,
                "numRecordsOut",
                &vars,
                Value::Count(s.records_out),
            ));
            for (name, v) in task.guest_counters() {
                out.push(point(OPERATOR, &name, &vars, Value::Count(v)));
            }
            for (name, v) in task.guest_gauges() {
                out.push(point(OPERATOR, &name, &vars, Value::Number(v)));
            }
        }
    }
}

/// A task's counters and the rates measured from them since the last
/// collection (`key` names the subtask in `rates`), with Flink's names.
fn task_values(
    s: &MetricsSnapshot,
    key: &str,
    rates: &mut Rates,
    now: Instant,
) -> [(&'static str, Value); 8] {
    let mut rate = |m: &str, total: f64| rates.per_second(format!("{key}/{m}"), total, now);
    let in_rate = rate("in", s.records_in as f64);
    let out_rate = rate("out", s.records_out as f64);
    let bp = rate("bp", s.backpressure.as_secs_f64() * 1000.0).min(1000.0);
    let busy = rate("busy", s.busy.as_secs_f64() * 1000.0).min(1000.0);
    [
        ("numRecordsIn", Value::Count(s.records_in)),
        ("numRecordsOut", Value::Count(s.records_out)),
        (
            "numRecordsInPerSecond",
            Value::Meter {
                count: s.records_in,
                rate: in_rate,
            },
        ),
        (
            "numRecordsOutPerSecond",
            Value::Meter {
                count: s.records_out,
                rate: out_rate,
            },
        ),
        ("backPressuredTimeMsPerSecond", Value::Number(bp.round())),
        ("busyTimeMsPerSecond", Value::Number(busy.round())),
        (
            "idleTimeMsPerSecond",
            Value::Number((1000.0 - bp - busy).max(0.0).round()),
        ),
        (
            "isBackPressured",
            Value::Number(if bp > 0.0 { 1.0 } else { 0.0 }),
        ),
    ]
}

/// The start delays (ns) of subtask `subtask` of `node` over the
/// checkpoint history.
fn start_delays(history: &[CheckpointStats], node: &str, subtask: u32) -> Vec<f64> {
    history
        .iter()
        .flat_map(|c| &c.subtasks)
        .filter(|s| s.node == node && s.subtask == subtask)
        .map(|s| s.start_delay_ms * 1e6)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_flinks_quantiles() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let d = Distribution::of(&values).expect("some");
        assert_eq!((d.count, d.min, d.max, d.mean), (1000, 1.0, 1000.0, 500.5));
        assert_eq!(d.quantiles, [500.0, 750.0, 950.0, 980.0, 990.0, 999.0]);
        assert!((d.stddev - 288.675).abs() < 0.01, "{}", d.stddev);
        assert!(Distribution::of(&[]).is_none());
    }

    #[test]
    fn rates_are_measured_between_two_readings() {
        let mut r = Rates::default();
        let t = Instant::now();
        assert_eq!(r.per_second("a".into(), 100.0, t), 0.0);
        let later = t + std::time::Duration::from_millis(500);
        assert_eq!(r.per_second("a".into(), 600.0, later), 1000.0);
    }
}
