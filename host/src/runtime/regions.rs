//! Failover regions, as Flink computes them: subtasks joined along every
//! pipelined exchange. A forward edge joins subtask `i` upstream with
//! subtask `i` downstream; a hash or rebalance edge joins every subtask of
//! both nodes. A failure restarts only its region (with
//! `jobmanager.execution.failover-strategy: region`), so a job with any
//! all-to-all edge is one region and fails over as a whole, while a job
//! whose edges are all forward has a region per parallel slice.

use crate::spec::Partitioning;
use crate::spec::graph::JobGraph;

/// The subtasks of a job, grouped into failover regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    /// Per node, per subtask: its region's index.
    of: Vec<Vec<usize>>,
    /// Per region: its subtasks as (node, subtask), in node order.
    members: Vec<Vec<(usize, u32)>>,
}

impl Regions {
    /// The regions of `graph`.
    pub fn of(graph: &JobGraph) -> Self {
        let offsets: Vec<usize> = graph
            .nodes
            .iter()
            .scan(0, |at, n| {
                let start = *at;
                *at += n.parallelism as usize;
                Some(start)
            })
            .collect();
        let total: usize = graph.nodes.iter().map(|n| n.parallelism as usize).sum();
        let mut sets = DisjointSets::new(total);
        for e in &graph.edges {
            let (pa, pb) = (
                graph.nodes[e.from].parallelism as usize,
                graph.nodes[e.to].parallelism as usize,
            );
            let (a, b) = (offsets[e.from], offsets[e.to]);
            match e.partition {
                Partitioning::Forward => {
                    for i in 0..pa.min(pb) {
                        sets.join(a + i, b + i);
                    }
                }
                Partitioning::Hash | Partitioning::Rebalance => {
                    for i in 0..pa {
                        sets.join(a + i, a);
                    }
                    for j in 0..pb {
                        sets.join(b + j, a);
                    }
                }
            }
        }
        let mut index = std::collections::HashMap::new();
        let mut members: Vec<Vec<(usize, u32)>> = Vec::new();
        let of = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                (0..node.parallelism)
                    .map(|s| {
                        let root = sets.root(offsets[n] + s as usize);
                        let r = *index.entry(root).or_insert_with(|| {
                            members.push(Vec::new());
                            members.len() - 1
                        });
                        members[r].push((n, s));
                        r
                    })
                    .collect()
            })
            .collect();
        Regions { of, members }
    }

    /// How many regions there are.
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// The region of subtask `subtask` of node `node`.
    pub fn region_of(&self, node: usize, subtask: u32) -> usize {
        self.of[node][subtask as usize]
    }

    /// The subtasks of region `r`, as (node, subtask).
    pub fn members(&self, r: usize) -> &[(usize, u32)] {
        &self.members[r]
    }
}

/// Union-find over `0..n`, with path halving.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    fn root(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::spec::graph::{Edge, Node, NodeKind};

    fn graph(parallelisms: &[u32], edges: &[(usize, usize, Partitioning)]) -> JobGraph {
        let node = |i: usize, p: u32| Node {
            id: format!("n{i}"),
            uid: format!("n{i}"),
            parallelism: p,
            kind: NodeKind::Native { name: "x".into() },
            chaining: true,
        };
        JobGraph {
            name: "g".into(),
            max_parallelism: 128,
            nodes: parallelisms
                .iter()
                .enumerate()
                .map(|(i, p)| node(i, *p))
                .collect(),
            edges: edges
                .iter()
                .map(|&(from, to, partition)| Edge {
                    from,
                    to,
                    partition,
                    input: 0,
                    side: None,
                })
                .collect(),
            config: Config::default(),
            base_dir: std::path::PathBuf::from("."),
        }
    }

    #[test]
    fn forward_only_jobs_have_a_region_per_slice() {
        let g = graph(
            &[3, 3, 3],
            &[(0, 1, Partitioning::Forward), (1, 2, Partitioning::Forward)],
        );
        let r = Regions::of(&g);
        assert_eq!(r.count(), 3);
        assert_eq!(r.members(r.region_of(0, 1)), &[(0, 1), (1, 1), (2, 1)]);
        assert_ne!(r.region_of(0, 0), r.region_of(0, 2));
    }

    #[test]
    fn any_all_to_all_edge_joins_the_connected_job_into_one_region() {
        for p in [Partitioning::Hash, Partitioning::Rebalance] {
            let g = graph(&[2, 2, 2], &[(0, 1, p), (1, 2, Partitioning::Forward)]);
            assert_eq!(Regions::of(&g).count(), 1, "{p:?}");
        }
        // Two pipelines that never meet: a region per slice of the forward
        // one, one for the other.
        let g = graph(
            &[2, 2, 2, 2],
            &[(0, 1, Partitioning::Forward), (2, 3, Partitioning::Hash)],
        );
        assert_eq!(Regions::of(&g).count(), 3);
    }
}
