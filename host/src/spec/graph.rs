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
    /// May run in one thread with a neighbour behind a forward edge (the
    /// spec's `chaining`, Flink's `disableChaining()` when false).
    pub chaining: bool,
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

    /// Whether `edge` is chained: its downstream subtask runs in its
    /// upstream subtask's thread and is handed its batches directly, as
    /// Flink chains operators. It must be a forward edge of the main output
    /// into a node with no other input (not a source), with chaining on for
    /// the job and for both nodes.
    pub fn is_chained(&self, edge: &Edge) -> bool {
        let (from, to) = (&self.nodes[edge.from], &self.nodes[edge.to]);
        self.config.chaining
            && from.chaining
            && to.chaining
            && edge.partition == Partitioning::Forward
            && edge.side.is_none()
            && from.parallelism == to.parallelism
            && !matches!(to.kind, NodeKind::Source(_))
            && self.inputs(edge.to).count() == 1
    }

    /// Per node, the node whose thread it runs in: itself, or the head of
    /// the chain it is part of.
    pub fn chain_heads(&self) -> Vec<usize> {
        let mut head: Vec<usize> = (0..self.nodes.len()).collect();
        // Nodes are in topological order: an upstream's head is known
        // before its downstream's.
        for n in 0..self.nodes.len() {
            if let Some((_, e)) = self.inputs(n).find(|(_, e)| self.is_chained(e)) {
                head[n] = head[e.from];
            }
        }
        head
    }

    /// The job's tasks as a subtask runs them: one line per chain (or node
    /// on its own), its nodes joined by `->`, for `weir run`'s summary and
    /// `weir validate`.
    pub fn describe_tasks(&self) -> Vec<String> {
        let heads = self.chain_heads();
        (0..self.nodes.len())
            .filter(|&n| heads[n] == n)
            .map(|h| {
                let members: Vec<&str> = (0..self.nodes.len())
                    .filter(|&n| heads[n] == h)
                    .map(|n| self.nodes[n].id.as_str())
                    .collect();
                format!(
                    "{} (parallelism {})",
                    members.join(" -> "),
                    self.nodes[h].parallelism
                )
            })
            .collect()
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
