//! The validated logical job graph: nodes in topological order with their
//! resolved settings, and the edges between them.
//!
//! Built only by [`crate::spec::validate`], so every graph in the runtime is
//! one that passed validation (the server also lists, with an empty graph
//! that never runs, an ended job whose record can no longer be rebuilt).

use std::path::PathBuf;

use super::model::{Partitioning, SinkSpec, SourceSpec};
use crate::config::Config;

/// A validated job.
#[derive(Debug, Clone)]
pub struct JobGraph {
    /// The job's name.
    pub name: String,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Nodes, sources first, in topological order.
    pub nodes: Vec<Node>,
    /// Edges between node indices.
    pub edges: Vec<Edge>,
    /// The effective configuration.
    pub config: Config,
    /// Folder that relative source and sink paths resolve against (the
    /// spec's folder).
    pub base_dir: PathBuf,
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// The spec's id.
    pub id: String,
    /// Stable identity for state.
    pub uid: String,
    /// Number of subtasks.
    pub parallelism: u32,
    /// What the node is.
    pub kind: NodeKind,
}

/// What a node is.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A source.
    Source(SourceSpec),
    /// A WebAssembly operator.
    Operator {
        /// Resolved path of the component.
        wasm: PathBuf,
        /// Config handed to `open`.
        config: Vec<(String, String)>,
    },
    /// An operator compiled into the host, found by name in the job's
    /// native operators (benchmarks only; not reachable from a job spec).
    Native {
        /// Its name.
        name: String,
    },
    /// A sink.
    Sink(SinkSpec),
}

/// An edge between two nodes.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Upstream node index.
    pub from: usize,
    /// Downstream node index.
    pub to: usize,
    /// Partitioning.
    pub partition: Partitioning,
    /// The downstream input it feeds: 0 (the first) or 1 (the second
    /// input of a two-input operator).
    pub input: u8,
    /// The upstream operator's side output it carries, if not the main
    /// output.
    pub side: Option<String>,
}

impl JobGraph {
    /// Edges into node `n`.
    pub fn inputs(&self, n: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.to == n)
    }

    /// Edges out of node `n`.
    pub fn outputs(&self, n: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.from == n)
    }

    /// Whether node `n` is keyed (an input edge partitions by key).
    pub fn is_keyed(&self, n: usize) -> bool {
        self.inputs(n)
            .any(|(_, e)| e.partition == Partitioning::Hash)
    }
}

/// Kahn's algorithm: the order, or the nodes left on cycles.
pub(super) fn topological_order(n: usize, edges: &[Edge]) -> Result<Vec<usize>, Vec<usize>> {
    let mut indegree = vec![0usize; n];
    for e in edges {
        indegree[e.to] += 1;
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for e in edges.iter().filter(|e| e.from == i) {
            indegree[e.to] -= 1;
            if indegree[e.to] == 0 {
                ready.push(e.to);
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err((0..n).filter(|&i| indegree[i] > 0).collect())
    }
}
