//! The physical plan of one attempt: a plan per subtask with its input
//! channels and outputs, one bounded channel per (upstream subtask,
//! downstream subtask) pair, and the subtasks chained into their
//! upstream's thread behind a forward edge.

use std::sync::Arc;

use weir_wire::BatchBuilder;

use super::inputs::InputChannel;
use super::output::EdgeOutput;
use crate::channel::channel;
use crate::keygroup::subtask_for_key_group;
use crate::metrics::TaskMetrics;
use crate::spec::Partitioning;
use crate::spec::graph::JobGraph;

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
    /// The downstream subtasks chained into this one (see
    /// [`JobGraph::is_chained`]), each with its own plan: they run in this
    /// task's thread.
    pub(super) chained: Vec<TaskPlan>,
}

impl TaskPlan {
    /// This plan and every plan chained into it, at any depth.
    pub(super) fn with_chained(&self) -> Vec<&TaskPlan> {
        let mut all = vec![self];
        for c in &self.chained {
            all.extend(c.with_chained());
        }
        all
    }
}

/// Channels for every edge that is not chained, and one plan per subtask
/// that runs a thread: the plan of a chained subtask is inside its
/// upstream's.
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
                    chained: Vec::new(),
                })
                .collect()
        })
        .collect();
    // Per node, the upstream node it is chained into.
    let mut chained_into: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    for edge in &graph.edges {
        let (pa, pb) = (
            graph.nodes[edge.from].parallelism,
            graph.nodes[edge.to].parallelism,
        );
        if graph.is_chained(edge) {
            chained_into[edge.to] = Some(edge.from);
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
                        let max = graph.max_parallelism;
                        EdgeOutput::Hash {
                            builders: (0..pb).map(|_| BatchBuilder::default()).collect(),
                            senders,
                            owners: (0..max)
                                .map(|kg| subtask_for_key_group(kg, max, pb))
                                .collect(),
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
    nest_chained(plans, &chained_into)
}

/// Moves the plan of every chained subtask into its upstream's
/// (`chained_into`: per node, the upstream node it is chained into), and
/// gives the plans left: one per thread.
fn nest_chained(mut plans: Vec<Vec<TaskPlan>>, chained_into: &[Option<usize>]) -> Vec<TaskPlan> {
    // Downstream first (nodes are in topological order, an upstream before
    // its downstream), so that a plan carries its own chained plans when it
    // moves into its upstream's. Forward edges connect equal parallelisms:
    // subtask i to i.
    let mut heads = Vec::new();
    while let Some(node_plans) = plans.pop() {
        match chained_into[plans.len()] {
            Some(up) => {
                for (upstream, down) in plans[up].iter_mut().zip(node_plans) {
                    upstream.chained.push(down);
                }
            }
            None => heads.push(node_plans),
        }
    }
    heads.into_iter().rev().flatten().collect()
}
