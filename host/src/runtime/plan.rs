//! The physical plan of one attempt: a plan per subtask with its input
//! channels and outputs, one bounded channel per (upstream subtask,
//! downstream subtask) pair, and sinks chained into their upstream's
//! thread behind a forward edge.

use std::sync::Arc;

use weir_wire::BatchBuilder;

use super::inputs::InputChannel;
use super::output::EdgeOutput;
use crate::channel::channel;
use crate::metrics::TaskMetrics;
use crate::spec::Partitioning;
use crate::spec::graph::{Edge, JobGraph, NodeKind};

/// What one subtask runs with.
pub(super) struct TaskPlan {
    pub(super) node: usize,
    pub(super) subtask: u32,
    /// Its input channels, with the operator input each feeds.
    pub(super) inputs: Vec<InputChannel>,
    pub(super) outputs: Vec<EdgeOutput>,
    /// Edges that carry a side output, by tag.
    pub(super) side_outputs: Vec<(String, EdgeOutput)>,
    pub(super) metrics: Arc<TaskMetrics>,
    /// Sinks chained into this task: (node, their metrics).
    pub(super) chained_sinks: Vec<(usize, Arc<TaskMetrics>)>,
    /// Runs inside its upstream's task, not in a thread of its own.
    pub(super) chained: bool,
}

/// Whether `edge` leads to a sink that can run in its upstream's thread: a
/// forward edge of the main output into a sink with no other input.
fn is_chainable(graph: &JobGraph, edge: &Edge) -> bool {
    edge.partition == Partitioning::Forward
        && edge.side.is_none()
        && matches!(graph.nodes[edge.to].kind, NodeKind::Sink(_))
        && graph.inputs(edge.to).count() == 1
}

/// Channels for every edge, and one plan per subtask.
pub(super) fn plan_tasks(graph: &JobGraph) -> Vec<TaskPlan> {
    let cap = graph.config.channel_capacity;
    let mut plans: Vec<Vec<TaskPlan>> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            (0..node.parallelism)
                .map(|subtask| TaskPlan {
                    node: n,
                    subtask,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    side_outputs: Vec::new(),
                    metrics: Arc::new(TaskMetrics::default()),
                    chained_sinks: Vec::new(),
                    chained: false,
                })
                .collect()
        })
        .collect();
    for edge in &graph.edges {
        let (pa, pb) = (
            graph.nodes[edge.from].parallelism,
            graph.nodes[edge.to].parallelism,
        );
        if graph.config.chaining && is_chainable(graph, edge) {
            // Forward edges connect equal parallelisms: subtask i to i.
            let sinks: Vec<Arc<TaskMetrics>> = plans[edge.to]
                .iter_mut()
                .map(|down| {
                    down.chained = true;
                    down.metrics.clone()
                })
                .collect();
            for (up, sink_metrics) in plans[edge.from].iter_mut().zip(sinks) {
                up.chained_sinks.push((edge.to, sink_metrics));
            }
            continue;
        }
        for i in 0..pa as usize {
            let sender_metrics = plans[edge.from][i].metrics.clone();
            let out = match edge.partition {
                Partitioning::Forward => {
                    let (tx, rx) = channel(cap, sender_metrics);
                    plans[edge.to][i].inputs.push(InputChannel::of(rx, edge));
                    EdgeOutput::Forward(tx)
                }
                Partitioning::Rebalance | Partitioning::Hash => {
                    let mut senders = Vec::with_capacity(pb as usize);
                    for downstream in plans[edge.to].iter_mut() {
                        let (tx, rx) = channel(cap, sender_metrics.clone());
                        downstream.inputs.push(InputChannel::of(rx, edge));
                        senders.push(tx);
                    }
                    if edge.partition == Partitioning::Hash {
                        EdgeOutput::Hash {
                            builders: (0..pb).map(|_| BatchBuilder::default()).collect(),
                            senders,
                        }
                    } else {
                        EdgeOutput::Rebalance {
                            senders,
                            next: i % pb as usize,
                        }
                    }
                }
            };
            let up = &mut plans[edge.from][i];
            match &edge.side {
                Some(tag) => up.side_outputs.push((tag.clone(), out)),
                None => up.outputs.push(out),
            }
        }
    }
    plans.into_iter().flatten().collect()
}
