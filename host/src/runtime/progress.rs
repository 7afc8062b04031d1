//! Progress lines on stderr while a job runs, and the summary at its end.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::checkpoint::stats::CheckpointStats;
use crate::metrics::{LatencySummary, MetricsSnapshot, TaskMetrics};
use crate::spec::graph::{JobGraph, NodeKind};

fn per_second(n: u64, d: Duration) -> String {
    let rate = n as f64 / d.as_secs_f64().max(1e-9);
    if rate >= 1e6 {
        format!("{:.2}M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k/s", rate / 1e3)
    } else {
        format!("{rate:.0}/s")
    }
}

fn sum(tasks: &[Arc<TaskMetrics>]) -> MetricsSnapshot {
    let mut total = MetricsSnapshot::default();
    for t in tasks {
        total += t.snapshot();
    }
    total
}

/// Prints one line per `interval` until `stop` closes: records in and out
/// per second of each node, and the share of time its subtasks spent
/// backpressured.
pub(crate) fn report(
    graph: &JobGraph,
    current: &dyn Fn() -> Vec<Vec<Arc<TaskMetrics>>>,
    interval: Duration,
    stop: &Receiver<()>,
    started: Instant,
) {
    let mut last: Vec<MetricsSnapshot> = current().iter().map(|m| sum(m)).collect();
    let mut last_at = Instant::now();
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
        let dt = now - last_at;
        let mut parts = Vec::new();
        // Read anew each time: a region failover replaces the counters of
        // the subtasks it restarts (which then count from zero again).
        let metrics = current();
        for (i, node) in graph.nodes.iter().enumerate() {
            let cur = metrics.get(i).map(|m| sum(m)).unwrap_or_default();
            let prev = last[i];
            let din = cur.records_in.saturating_sub(prev.records_in);
            let dout = cur.records_out.saturating_sub(prev.records_out);
            let bp = cur
                .backpressure
                .saturating_sub(prev.backpressure)
                .as_secs_f64()
                / (dt.as_secs_f64() * f64::from(node.parallelism)).max(1e-9);
            let mut s = match node.kind {
                NodeKind::Source(_) => format!("{} out {}", node.id, per_second(dout, dt)),
                NodeKind::Sink(_) => format!("{} in {}", node.id, per_second(din, dt)),
                _ => format!(
                    "{} in {} out {}",
                    node.id,
                    per_second(din, dt),
                    per_second(dout, dt)
                ),
            };
            if bp >= 0.01 {
                s.push_str(&format!(" (backpressured {:.0}%)", bp * 100.0));
            }
            parts.push(s);
            last[i] = cur;
        }
        last_at = now;
        eprintln!(
            "[{:>6.1}s] {}",
            started.elapsed().as_secs_f64(),
            parts.join(" | ")
        );
    }
}

/// What one node did over the whole job.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    /// The node id.
    pub id: String,
    /// `source`, `operator` or `sink`.
    pub kind: &'static str,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Counters summed over subtasks.
    pub metrics: MetricsSnapshot,
    /// A sink with `measure-latency`: the latencies of all its subtasks.
    pub latency: Option<LatencySummary>,
    /// User counters the guest declared, summed over subtasks.
    pub user_counters: Vec<(String, u64)>,
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// The job's name.
    pub name: String,
    /// From the start of `run_job` to its end.
    pub duration: Duration,
    /// From the start of `run_job` to the first element reaching a sink.
    pub first_output_after: Option<Duration>,
    /// Per node, in topological order.
    pub nodes: Vec<NodeSummary>,
    /// The tasks a subtask of the job ran: chained nodes, joined by `->`,
    /// share one (see [`JobGraph::describe_tasks`]).
    pub tasks: Vec<String>,
    /// The job id (names its checkpoint folder).
    pub job_id: String,
    /// Restarts after failures.
    pub restarts: u32,
    /// Checkpoints completed (the final one included).
    pub checkpoints_completed: u64,
    /// Their figures, oldest first.
    pub checkpoints: Vec<CheckpointStats>,
}

impl JobSummary {
    pub(crate) fn new(
        graph: &JobGraph,
        metrics: &[Vec<Arc<TaskMetrics>>],
        counters: Vec<Vec<(String, u64)>>,
        started: Instant,
        first_output: Option<Instant>,
    ) -> Self {
        let nodes = graph
            .nodes
            .iter()
            .zip(metrics)
            .zip(counters)
            .map(|((n, m), user_counters)| NodeSummary {
                id: n.id.clone(),
                kind: match n.kind {
                    NodeKind::Source(_) => "source",
                    NodeKind::Sink(_) => "sink",
                    _ => "operator",
                },
                parallelism: n.parallelism,
                metrics: sum(m),
                latency: LatencySummary::merged(m.iter().map(Arc::as_ref)),
                user_counters,
            })
            .collect();
        JobSummary {
            name: graph.name.clone(),
            duration: started.elapsed(),
            first_output_after: first_output.map(|t| t.saturating_duration_since(started)),
            nodes,
            tasks: graph.describe_tasks(),
            job_id: String::new(),
            restarts: 0,
            checkpoints_completed: 0,
            checkpoints: Vec::new(),
        }
    }

    /// The summary of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeSummary> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

impl fmt::Display for JobSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job `{}` finished in {:.3}s",
            self.name,
            self.duration.as_secs_f64()
        )?;
        writeln!(
            f,
            "  {:<16} {:<9} {:>4} {:>12} {:>12} {:>12}",
            "node", "kind", "par", "records in", "records out", "out/s"
        )?;
        for n in &self.nodes {
            let m = n.metrics;
            writeln!(
                f,
                "  {:<16} {:<9} {:>4} {:>12} {:>12} {:>12}",
                n.id,
                n.kind,
                n.parallelism,
                m.records_in,
                m.records_out,
                per_second(m.records_out, self.duration)
            )?;
            for (name, v) in &n.user_counters {
                writeln!(f, "  {:<16} counter {name} = {v}", "")?;
            }
            if let Some(l) = n.latency {
                writeln!(
                    f,
                    "  {:<16} latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} records)",
                    "",
                    l.p50_us as f64 / 1e3,
                    l.p99_us as f64 / 1e3,
                    l.p999_us as f64 / 1e3,
                    l.max_us as f64 / 1e3,
                    l.count
                )?;
            }
        }
        for t in &self.tasks {
            writeln!(f, "  task: {t}")?;
        }
        if self.checkpoints_completed > 0 || self.restarts > 0 {
            writeln!(
                f,
                "  checkpoints completed: {}, restarts: {}",
                self.checkpoints_completed, self.restarts
            )?;
        }
        Ok(())
    }
}
