//! Checks a [`JobSpec`] and builds the [`JobGraph`], listing every problem
//! with the field it is in.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::error::{SpecError, SpecErrors};
use super::graph::{Edge, JobGraph, Node, NodeKind, topological_order};
use super::model::{EdgeSpec, JobSpec, Partitioning, SpecFormat};
use super::sinks::{check_prefixes, check_sink};
use super::sources::check_source;
use crate::config::Config;

/// Most subtasks (threads) one job may have in this process.
pub const MAX_SUBTASKS: u64 = 4096;
/// Most channels one rebalance or hash edge may need (upstream x downstream
/// parallelism).
pub const MAX_CHANNELS_PER_EDGE: u64 = 1 << 16;

/// Checks `spec` against `base` configuration and builds its graph.
/// Relative `wasm` paths resolve against `operators_dir`, relative source
/// and sink paths against `base_dir` (the spec's folder).
pub fn validate(
    spec: &JobSpec,
    base: &Config,
    base_dir: &Path,
    operators_dir: &Path,
) -> Result<JobGraph, SpecErrors> {
    let mut v = Validation::new(spec, base);
    v.add_sources();
    v.add_operators(operators_dir);
    v.add_sinks();
    v.check_unique_ids();
    v.add_edges();
    v.check_second_inputs();
    v.check_connections();
    v.check_limits();
    let order = v.order();
    v.finish(&order, base_dir)
}

/// One validation under way: what has been resolved so far and every
/// problem found on the way, in the order they are found.
struct Validation<'a> {
    /// The spec being checked.
    spec: &'a JobSpec,
    /// The base configuration with the spec's overrides.
    config: Config,
    /// The job's number of key groups.
    max_parallelism: u32,
    /// Every problem found so far.
    errors: Vec<SpecError>,
    /// Nodes with their field paths: sources, operators, sinks, in spec
    /// order.
    nodes: Vec<(String, Node)>,
    /// Edges between indices of `nodes`.
    edges: Vec<Edge>,
}

impl<'a> Validation<'a> {
    /// Applies the spec's config overrides to `base` and checks the job's
    /// max parallelism and name.
    fn new(spec: &'a JobSpec, base: &Config) -> Self {
        let mut errors = Vec::new();
        let mut config = base.clone();
        let pairs: Vec<(String, String)> = spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        for (key, e) in config.set_all(&pairs) {
            errors.push(SpecError::Config {
                field: format!("config.{key}"),
                message: e.to_string(),
            });
        }
        let max_parallelism = spec.max_parallelism.unwrap_or(config.max_parallelism);
        if max_parallelism == 0 || max_parallelism > crate::keygroup::UPPER_BOUND_MAX_PARALLELISM {
            errors.push(SpecError::Invalid {
                field: "max-parallelism".into(),
                message: format!(
                    "must be between 1 and {}",
                    crate::keygroup::UPPER_BOUND_MAX_PARALLELISM
                ),
            });
        }
        if spec.name.trim().is_empty() {
            errors.push(SpecError::Invalid {
                field: "name".into(),
                message: "must not be empty".into(),
            });
        }
        Validation {
            spec,
            config,
            max_parallelism,
            errors,
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// Adds the source or sink at `field` as a node (its uid defaults to
    /// its id).
    fn push_node(
        &mut self,
        field: String,
        id: &str,
        uid: Option<&str>,
        (parallelism, chaining): (Option<u32>, Option<bool>),
        kind: NodeKind,
    ) {
        let parallelism = self.parallelism(&field, parallelism);
        let node = Node {
            id: id.to_owned(),
            uid: uid.unwrap_or(id).to_owned(),
            parallelism,
            kind,
            chaining: chaining != Some(false),
        };
        self.nodes.push((field, node));
    }

    /// The parallelism of the node at `field` (the default if it sets
    /// none), at least 1; a problem if it is 0 or above max parallelism.
    fn parallelism(&mut self, field: &str, p: Option<u32>) -> u32 {
        let p = p.unwrap_or(self.config.default_parallelism);
        if p == 0 {
            self.errors.push(SpecError::ParallelismZero {
                field: format!("{field}.parallelism"),
            });
        } else if p > self.max_parallelism {
            self.errors.push(SpecError::ParallelismAboveMax {
                field: format!("{field}.parallelism"),
                parallelism: p,
                max: self.max_parallelism,
            });
        }
        p.max(1)
    }

    /// Checks each source's settings and adds it as a node.
    fn add_sources(&mut self) {
        let spec = self.spec;
        for (i, s) in spec.sources.iter().enumerate() {
            let field = format!("sources[{i}]");
            check_source(&field, s, &mut self.errors);
            self.push_node(
                field,
                &s.id,
                s.uid.as_deref(),
                (s.parallelism, s.chaining),
                NodeKind::Source(s.clone()),
            );
        }
    }

    /// Checks each operator's uid and component file and adds it as a
    /// node; relative `wasm` paths resolve against `operators_dir`.
    fn add_operators(&mut self, operators_dir: &Path) {
        let spec = self.spec;
        for (i, o) in spec.operators.iter().enumerate() {
            let field = format!("operators[{i}]");
            let uid = match &o.uid {
                Some(u) if !u.trim().is_empty() => u.clone(),
                _ => {
                    self.errors.push(SpecError::MissingUid {
                        field: field.clone(),
                    });
                    String::new()
                }
            };
            let wasm = resolve(operators_dir, &o.wasm);
            if !wasm.is_file() {
                self.errors.push(SpecError::MissingWasm {
                    field: format!("{field}.wasm"),
                    path: wasm.display().to_string(),
                });
            }
            let p = self.parallelism(&field, o.parallelism);
            let config = o
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            self.nodes.push((
                field,
                Node {
                    id: o.id.clone(),
                    uid,
                    parallelism: p,
                    kind: NodeKind::Operator { wasm, config },
                    chaining: o.chaining != Some(false),
                },
            ));
        }
    }

    /// Checks each sink's `path` and adds it as a node, then that the job
    /// has at least one source and one sink.
    fn add_sinks(&mut self) {
        let spec = self.spec;
        for (i, s) in spec.sinks.iter().enumerate() {
            let field = format!("sinks[{i}]");
            check_sink(&field, s, &mut self.errors);
            self.push_node(
                field,
                &s.id,
                s.uid.as_deref(),
                (s.parallelism, s.chaining),
                NodeKind::Sink(s.clone()),
            );
        }
        check_prefixes(&spec.sinks, &mut self.errors);
        if spec.sources.is_empty() {
            self.errors.push(SpecError::Invalid {
                field: "sources".into(),
                message: "a job needs at least one source".into(),
            });
        }
        if spec.sinks.is_empty() {
            self.errors.push(SpecError::Invalid {
                field: "sinks".into(),
                message: "a job needs at least one sink".into(),
            });
        }
    }

    /// Checks that every node has an id, and that ids and uids are unique.
    fn check_unique_ids(&mut self) {
        let mut ids: HashMap<&str, &str> = HashMap::new();
        let mut uids: HashMap<&str, &str> = HashMap::new();
        for (field, n) in &self.nodes {
            if n.id.trim().is_empty() {
                self.errors.push(SpecError::Invalid {
                    field: format!("{field}.id"),
                    message: "must not be empty".into(),
                });
            }
            if let Some(first) = ids.insert(&n.id, field) {
                self.errors.push(SpecError::Duplicate {
                    field: format!("{field}.id"),
                    what: "id",
                    value: n.id.clone(),
                    first: format!("{first}.id"),
                });
            }
            if !n.uid.is_empty()
                && let Some(first) = uids.insert(&n.uid, field)
            {
                self.errors.push(SpecError::Duplicate {
                    field: format!("{field}.uid"),
                    what: "uid",
                    value: n.uid.clone(),
                    first: format!("{first}.uid"),
                });
            }
        }
    }

    /// Resolves each edge's ends to nodes and adds the edges whose ends
    /// both exist.
    fn add_edges(&mut self) {
        let spec = self.spec;
        let ends: Vec<(Option<usize>, Option<usize>)> = {
            let index: HashMap<&str, usize> = self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, (_, n))| (n.id.as_str(), i))
                .collect();
            spec.edges
                .iter()
                .map(|e| {
                    let find = |id: &str| index.get(id).copied();
                    (find(e.from.as_str()), find(e.to.as_str()))
                })
                .collect()
        };
        for (i, (e, (from, to))) in spec.edges.iter().zip(ends).enumerate() {
            let field = format!("edges[{i}]");
            if from.is_none() {
                self.errors.push(SpecError::UnknownReference {
                    field: format!("{field}.from"),
                    name: e.from.clone(),
                });
            }
            if to.is_none() {
                self.errors.push(SpecError::UnknownReference {
                    field: format!("{field}.to"),
                    name: e.to.clone(),
                });
            }
            if let (Some(from), Some(to)) = (from, to) {
                self.add_edge(field, e, from, to);
            }
        }
    }

    /// Checks the edge at `field` from node `from` to node `to`: its
    /// direction, partitioning, uniqueness and input; then adds it.
    fn add_edge(&mut self, field: String, e: &EdgeSpec, from: usize, to: usize) {
        let (nf, nt) = (&self.nodes[from].1, &self.nodes[to].1);
        if matches!(nt.kind, NodeKind::Source(_)) {
            self.errors.push(SpecError::Invalid {
                field: format!("{field}.to"),
                message: format!("`{}` is a source and takes no input", nt.id),
            });
        }
        if matches!(nf.kind, NodeKind::Sink(_)) {
            self.errors.push(SpecError::Invalid {
                field: format!("{field}.from"),
                message: format!("`{}` is a sink and has no output", nf.id),
            });
        }
        let partition = e.partition.unwrap_or(if nf.parallelism == nt.parallelism {
            Partitioning::Forward
        } else {
            Partitioning::Rebalance
        });
        if partition == Partitioning::Forward && nf.parallelism != nt.parallelism {
            self.errors.push(SpecError::ForwardMismatch {
                field: format!("{field}.partition"),
                from: nf.id.clone(),
                to: nt.id.clone(),
                from_parallelism: nf.parallelism,
                to_parallelism: nt.parallelism,
            });
        }
        if self.edges.iter().any(|x| x.from == from && x.to == to) {
            self.errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("duplicate edge from `{}` to `{}`", nf.id, nt.id),
            });
        }
        let input = self.input(&field, e.input, to);
        let side = self.side_output(&field, e.side_output.as_deref(), from);
        self.edges.push(Edge {
            from,
            to,
            partition,
            input,
            side,
        });
    }

    /// The side output `tag` of node `from` that the edge at `field`
    /// carries: only an operator has side outputs, and a tag is 1 to 128
    /// bytes.
    fn side_output(&mut self, field: &str, tag: Option<&str>, from: usize) -> Option<String> {
        let tag = tag?;
        let nf = &self.nodes[from].1;
        let message = if !matches!(nf.kind, NodeKind::Operator { .. }) {
            format!("`{}` is not an operator and has no side outputs", nf.id)
        } else if tag.is_empty() || tag.len() > 128 {
            "a side output tag has 1 to 128 bytes".to_owned()
        } else {
            return Some(tag.to_owned());
        };
        self.errors.push(SpecError::Invalid {
            field: format!("{field}.side-output"),
            message,
        });
        None
    }

    /// The input of node `to` that the edge at `field` feeds: 0 for
    /// `input: 1` (the default), 1 for `input: 2` of an operator.
    fn input(&mut self, field: &str, input: Option<u8>, to: usize) -> u8 {
        let nt = &self.nodes[to].1;
        match input {
            None | Some(1) => 0,
            Some(2) if matches!(nt.kind, NodeKind::Operator { .. }) => 1,
            Some(2) => {
                self.errors.push(SpecError::Invalid {
                    field: format!("{field}.input"),
                    message: format!(
                        "`{}` has one input; only a two-input operator takes `input: 2`",
                        nt.id
                    ),
                });
                0
            }
            Some(other) => {
                self.errors.push(SpecError::Invalid {
                    field: format!("{field}.input"),
                    message: format!("input {other} does not exist (1 or 2)"),
                });
                0
            }
        }
    }

    /// A second input needs a first, and a keyed second input a keyed
    /// first: both sides of a join see the same key's state.
    fn check_second_inputs(&mut self) {
        let edges = &self.edges;
        for (i, (field, n)) in self.nodes.iter().enumerate() {
            let side = |s: u8| edges.iter().filter(move |e| e.to == i && e.input == s);
            if side(1).next().is_none() {
                continue;
            }
            if side(0).next().is_none() {
                self.errors.push(SpecError::Invalid {
                    field: field.clone(),
                    message: format!("`{}` has edges into input 2 but none into input 1", n.id),
                });
            }
            let keyed = |s: u8| side(s).any(|e| e.partition == Partitioning::Hash);
            let unkeyed = |s: u8| side(s).any(|e| e.partition != Partitioning::Hash);
            if (keyed(0) || keyed(1)) && (unkeyed(0) || unkeyed(1)) {
                self.errors.push(SpecError::Invalid {
                    field: field.clone(),
                    message: format!(
                        "both inputs of `{}` must be partitioned by key (`hash`) when either is",
                        n.id
                    ),
                });
            }
        }
    }

    /// Checks that every node has the inputs and outputs its kind needs,
    /// and that a keyed node's inputs are all hashed.
    fn check_connections(&mut self) {
        let edges = &self.edges;
        for (i, (field, n)) in self.nodes.iter().enumerate() {
            let has_in = edges.iter().any(|e| e.to == i);
            let has_out = edges.iter().any(|e| e.from == i);
            let unconnected = match n.kind {
                NodeKind::Source(_) if !has_out => {
                    Some(format!("source `{}` is not connected to anything", n.id))
                }
                NodeKind::Operator { .. } if !has_in => {
                    Some(format!("operator `{}` has no input edge", n.id))
                }
                NodeKind::Operator { .. } if !has_out => {
                    Some(format!("operator `{}` has no output edge", n.id))
                }
                NodeKind::Sink(_) if !has_in => Some(format!("sink `{}` has no input edge", n.id)),
                _ => None,
            };
            if let Some(message) = unconnected {
                self.errors.push(SpecError::Invalid {
                    field: field.clone(),
                    message,
                });
            }
            let kinds: Vec<bool> = edges
                .iter()
                .filter(|e| e.to == i)
                .map(|e| e.partition == Partitioning::Hash)
                .collect();
            if kinds.contains(&true) && kinds.contains(&false) {
                self.errors.push(SpecError::Invalid {
                    field: field.clone(),
                    message: format!("`{}` mixes hash and non-hash input edges; a keyed node needs every input hashed", n.id),
                });
            }
        }
    }

    /// One process runs a thread per subtask and a channel per pair of
    /// connected subtasks: refuses jobs that would exhaust it before
    /// starting.
    fn check_limits(&mut self) {
        let nodes = &self.nodes;
        let subtasks: u64 = nodes.iter().map(|(_, n)| u64::from(n.parallelism)).sum();
        if subtasks > MAX_SUBTASKS {
            self.errors.push(SpecError::Invalid {
                field: "parallelism".into(),
                message: format!(
                    "the job has {subtasks} subtasks; one process runs at most {MAX_SUBTASKS}"
                ),
            });
        }
        for (i, e) in self.edges.iter().enumerate() {
            let channels =
                u64::from(nodes[e.from].1.parallelism) * u64::from(nodes[e.to].1.parallelism);
            if e.partition != Partitioning::Forward && channels > MAX_CHANNELS_PER_EDGE {
                self.errors.push(SpecError::Invalid {
                    field: format!("edges[{i}]"),
                    message: format!("needs {channels} channels; at most {MAX_CHANNELS_PER_EDGE}"),
                });
            }
        }
    }

    /// The nodes in topological order (Kahn); a problem naming the nodes
    /// on a cycle if there is one (then the spec order).
    fn order(&mut self) -> Vec<usize> {
        match topological_order(self.nodes.len(), &self.edges) {
            Ok(order) => order,
            Err(on_cycle) => {
                self.errors.push(SpecError::Cycle {
                    nodes: on_cycle
                        .iter()
                        .map(|&i| self.nodes[i].1.id.clone())
                        .collect(),
                });
                (0..self.nodes.len()).collect()
            }
        }
    }

    /// Every problem found, or the graph with nodes and edges renumbered
    /// in `order`.
    fn finish(self, order: &[usize], base_dir: &Path) -> Result<JobGraph, SpecErrors> {
        if !self.errors.is_empty() {
            return Err(SpecErrors(self.errors));
        }
        let mut position = vec![0; self.nodes.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut ordered: BTreeMap<usize, Node> = BTreeMap::new();
        for (i, (_, n)) in self.nodes.into_iter().enumerate() {
            ordered.insert(position[i], n);
        }
        let edges = self
            .edges
            .into_iter()
            .map(|e| Edge {
                from: position[e.from],
                to: position[e.to],
                partition: e.partition,
                input: e.input,
                side: e.side,
            })
            .collect();
        let mut config = self.config;
        config.max_parallelism = self.max_parallelism;
        Ok(JobGraph {
            name: self.spec.name.clone(),
            max_parallelism: self.max_parallelism,
            nodes: ordered.into_values().collect(),
            edges,
            config,
            base_dir: base_dir.to_path_buf(),
        })
    }
}

fn resolve(dir: &Path, wasm: &str) -> PathBuf {
    let p = Path::new(wasm);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Reads, parses and validates the job spec at `path`. Relative source and
/// sink paths resolve against the spec's folder, relative `wasm` paths
/// against `operators_dir` (default: the spec's folder).
pub fn load(
    path: &std::path::Path,
    config: &Config,
    operators_dir: Option<&std::path::Path>,
) -> Result<JobGraph, SpecErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::Parse {
        field: String::new(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let spec = JobSpec::parse(&text, SpecFormat::from_path(path))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    validate(&spec, config, base, operators_dir.unwrap_or(base))
}
