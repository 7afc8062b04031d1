//! Checks a [`JobSpec`] and builds the [`JobGraph`], listing every problem
//! with the field it is in.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::error::{SpecError, SpecErrors};
use super::graph::{Edge, JobGraph, Node, NodeKind, topological_order};
use super::model::{JobSpec, Partitioning, SinkType, SourceSpec, SourceType, SpecFormat};
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
    let mut errors = Vec::new();
    let mut config = base.clone();
    for (key, value) in &spec.config {
        if let Err(e) = config.set(key, &value.to_string()) {
            errors.push(SpecError::Config {
                field: format!("config.{key}"),
                message: e.to_string(),
            });
        }
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

    // Nodes, with their field paths.
    let mut nodes: Vec<(String, Node)> = Vec::new();
    let parallelism = |field: &str, p: Option<u32>, errors: &mut Vec<SpecError>| {
        let p = p.unwrap_or(config.default_parallelism);
        if p == 0 {
            errors.push(SpecError::ParallelismZero {
                field: format!("{field}.parallelism"),
            });
        } else if p > max_parallelism {
            errors.push(SpecError::ParallelismAboveMax {
                field: format!("{field}.parallelism"),
                parallelism: p,
                max: max_parallelism,
            });
        }
        p.max(1)
    };
    for (i, s) in spec.sources.iter().enumerate() {
        let field = format!("sources[{i}]");
        check_source(&field, s, &mut errors);
        let p = parallelism(&field, s.parallelism, &mut errors);
        nodes.push((
            field,
            Node {
                id: s.id.clone(),
                uid: s.uid.clone().unwrap_or_else(|| s.id.clone()),
                parallelism: p,
                kind: NodeKind::Source(s.clone()),
            },
        ));
    }
    for (i, o) in spec.operators.iter().enumerate() {
        let field = format!("operators[{i}]");
        let uid = match &o.uid {
            Some(u) if !u.trim().is_empty() => u.clone(),
            _ => {
                errors.push(SpecError::MissingUid {
                    field: field.clone(),
                });
                String::new()
            }
        };
        let wasm = resolve(operators_dir, &o.wasm);
        if !wasm.is_file() {
            errors.push(SpecError::MissingWasm {
                field: format!("{field}.wasm"),
                path: wasm.display().to_string(),
            });
        }
        let p = parallelism(&field, o.parallelism, &mut errors);
        nodes.push((
            field,
            Node {
                id: o.id.clone(),
                uid,
                parallelism: p,
                kind: NodeKind::Operator {
                    wasm,
                    config: o
                        .config
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                },
            },
        ));
    }
    for (i, s) in spec.sinks.iter().enumerate() {
        let field = format!("sinks[{i}]");
        if s.sink_type == SinkType::File && s.path.is_none() {
            errors.push(SpecError::Invalid {
                field: format!("{field}.path"),
                message: "a file sink needs `path` (the output folder)".into(),
            });
        }
        if s.sink_type != SinkType::File && s.path.is_some() {
            errors.push(SpecError::Invalid {
                field: format!("{field}.path"),
                message: "only a file sink takes `path`".into(),
            });
        }
        let p = parallelism(&field, s.parallelism, &mut errors);
        nodes.push((
            field,
            Node {
                id: s.id.clone(),
                uid: s.uid.clone().unwrap_or_else(|| s.id.clone()),
                parallelism: p,
                kind: NodeKind::Sink(s.clone()),
            },
        ));
    }
    if spec.sources.is_empty() {
        errors.push(SpecError::Invalid {
            field: "sources".into(),
            message: "a job needs at least one source".into(),
        });
    }
    if spec.sinks.is_empty() {
        errors.push(SpecError::Invalid {
            field: "sinks".into(),
            message: "a job needs at least one sink".into(),
        });
    }

    // Unique ids and uids.
    let mut ids: HashMap<&str, &str> = HashMap::new();
    let mut uids: HashMap<&str, &str> = HashMap::new();
    for (field, n) in &nodes {
        if n.id.trim().is_empty() {
            errors.push(SpecError::Invalid {
                field: format!("{field}.id"),
                message: "must not be empty".into(),
            });
        }
        if let Some(first) = ids.insert(&n.id, field) {
            errors.push(SpecError::Duplicate {
                field: format!("{field}.id"),
                what: "id",
                value: n.id.clone(),
                first: format!("{first}.id"),
            });
        }
        if !n.uid.is_empty()
            && let Some(first) = uids.insert(&n.uid, field)
        {
            errors.push(SpecError::Duplicate {
                field: format!("{field}.uid"),
                what: "uid",
                value: n.uid.clone(),
                first: format!("{first}.uid"),
            });
        }
    }

    // Edges.
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (_, n))| (n.id.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    for (i, e) in spec.edges.iter().enumerate() {
        let field = format!("edges[{i}]");
        let from = index.get(e.from.as_str()).copied();
        let to = index.get(e.to.as_str()).copied();
        if from.is_none() {
            errors.push(SpecError::UnknownReference {
                field: format!("{field}.from"),
                name: e.from.clone(),
            });
        }
        if to.is_none() {
            errors.push(SpecError::UnknownReference {
                field: format!("{field}.to"),
                name: e.to.clone(),
            });
        }
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        let (nf, nt) = (&nodes[from].1, &nodes[to].1);
        if matches!(nt.kind, NodeKind::Source(_)) {
            errors.push(SpecError::Invalid {
                field: format!("{field}.to"),
                message: format!("`{}` is a source and takes no input", nt.id),
            });
        }
        if matches!(nf.kind, NodeKind::Sink(_)) {
            errors.push(SpecError::Invalid {
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
            errors.push(SpecError::ForwardMismatch {
                field: format!("{field}.partition"),
                from: nf.id.clone(),
                to: nt.id.clone(),
                from_parallelism: nf.parallelism,
                to_parallelism: nt.parallelism,
            });
        }
        if edges.iter().any(|x: &Edge| x.from == from && x.to == to) {
            errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("duplicate edge from `{}` to `{}`", nf.id, nt.id),
            });
        }
        let input = match e.input {
            None | Some(1) => 0,
            Some(2) if matches!(nt.kind, NodeKind::Operator { .. }) => 1,
            Some(2) => {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.input"),
                    message: format!(
                        "`{}` has one input; only a two-input operator takes `input: 2`",
                        nt.id
                    ),
                });
                0
            }
            Some(other) => {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.input"),
                    message: format!("input {other} does not exist (1 or 2)"),
                });
                0
            }
        };
        edges.push(Edge {
            from,
            to,
            partition,
            input,
        });
    }
    // A second input needs a first, and a keyed second input a keyed first:
    // both sides of a join see the same key's state.
    for (i, (field, n)) in nodes.iter().enumerate() {
        let side = |s: u8| edges.iter().filter(move |e| e.to == i && e.input == s);
        if side(1).next().is_none() {
            continue;
        }
        if side(0).next().is_none() {
            errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("`{}` has edges into input 2 but none into input 1", n.id),
            });
        }
        let keyed = |s: u8| side(s).any(|e| e.partition == Partitioning::Hash);
        let unkeyed = |s: u8| side(s).any(|e| e.partition != Partitioning::Hash);
        if (keyed(0) || keyed(1)) && (unkeyed(0) || unkeyed(1)) {
            errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!(
                    "both inputs of `{}` must be partitioned by key (`hash`) when either is",
                    n.id
                ),
            });
        }
    }
    for (i, (field, n)) in nodes.iter().enumerate() {
        let has_in = edges.iter().any(|e| e.to == i);
        let has_out = edges.iter().any(|e| e.from == i);
        match n.kind {
            NodeKind::Source(_) if !has_out => errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("source `{}` is not connected to anything", n.id),
            }),
            NodeKind::Operator { .. } if !has_in => errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("operator `{}` has no input edge", n.id),
            }),
            NodeKind::Operator { .. } if !has_out => errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("operator `{}` has no output edge", n.id),
            }),
            NodeKind::Sink(_) if !has_in => errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("sink `{}` has no input edge", n.id),
            }),
            _ => {}
        }
        let keyed = edges
            .iter()
            .filter(|e| e.to == i)
            .map(|e| e.partition == Partitioning::Hash);
        let kinds: Vec<bool> = keyed.collect();
        if kinds.contains(&true) && kinds.contains(&false) {
            errors.push(SpecError::Invalid {
                field: field.clone(),
                message: format!("`{}` mixes hash and non-hash input edges; a keyed node needs every input hashed", n.id),
            });
        }
    }

    // One process runs a thread per subtask and a channel per pair of
    // connected subtasks: refuse jobs that would exhaust it before starting.
    let subtasks: u64 = nodes.iter().map(|(_, n)| u64::from(n.parallelism)).sum();
    if subtasks > MAX_SUBTASKS {
        errors.push(SpecError::Invalid {
            field: "parallelism".into(),
            message: format!(
                "the job has {subtasks} subtasks; one process runs at most {MAX_SUBTASKS}"
            ),
        });
    }
    for (i, e) in edges.iter().enumerate() {
        let channels =
            u64::from(nodes[e.from].1.parallelism) * u64::from(nodes[e.to].1.parallelism);
        if e.partition != Partitioning::Forward && channels > MAX_CHANNELS_PER_EDGE {
            errors.push(SpecError::Invalid {
                field: format!("edges[{i}]"),
                message: format!("needs {channels} channels; at most {MAX_CHANNELS_PER_EDGE}"),
            });
        }
    }

    // Topological order (Kahn); what is left is on a cycle.
    let order = match topological_order(nodes.len(), &edges) {
        Ok(order) => order,
        Err(on_cycle) => {
            errors.push(SpecError::Cycle {
                nodes: on_cycle.iter().map(|&i| nodes[i].1.id.clone()).collect(),
            });
            (0..nodes.len()).collect()
        }
    };

    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    let mut position = vec![0; nodes.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut ordered: BTreeMap<usize, Node> = BTreeMap::new();
    for (i, (_, n)) in nodes.into_iter().enumerate() {
        ordered.insert(position[i], n);
    }
    let edges = edges
        .into_iter()
        .map(|e| Edge {
            from: position[e.from],
            to: position[e.to],
            partition: e.partition,
            input: e.input,
        })
        .collect();
    config.max_parallelism = max_parallelism;
    Ok(JobGraph {
        name: spec.name.clone(),
        max_parallelism,
        nodes: ordered.into_values().collect(),
        edges,
        config,
        base_dir: base_dir.to_path_buf(),
    })
}

fn resolve(dir: &Path, wasm: &str) -> PathBuf {
    let p = Path::new(wasm);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn check_source(field: &str, s: &SourceSpec, errors: &mut Vec<SpecError>) {
    let mut not_for = |name: &str, present: bool| {
        if present {
            errors.push(SpecError::Invalid {
                field: format!("{field}.{name}"),
                message: format!("not a setting of a {} source", type_name(s.source_type)),
            });
        }
    };
    match s.source_type {
        SourceType::Datagen => {
            not_for("path", s.path.is_some());
            not_for("paths", s.paths.is_some());
            not_for("format", s.format.is_some());
            if s.count.is_none() {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.count"),
                    message: "a datagen source needs `count`".into(),
                });
            }
            if s.keys == Some(0) {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.keys"),
                    message: "must be at least 1".into(),
                });
            }
            if s.rate == Some(0) {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.rate"),
                    message: "must be at least 1 (leave it out for no limit)".into(),
                });
            }
        }
        SourceType::File => {
            not_for("count", s.count.is_some());
            not_for("keys", s.keys.is_some());
            not_for("rate", s.rate.is_some());
            not_for("timestamp-step-ms", s.timestamp_step_ms.is_some());
            not_for("sequential-keys", s.sequential_keys.is_some());
            let n = s.path.iter().count() + s.paths.as_ref().map_or(0, Vec::len);
            if n == 0 {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.path"),
                    message: "a file source needs `path` or `paths`".into(),
                });
            }
        }
    }
}

fn type_name(t: SourceType) -> &'static str {
    match t {
        SourceType::Datagen => "datagen",
        SourceType::File => "file",
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
