//! Before a job starts from a savepoint or checkpoint: whether the
//! snapshot fits the job (backend, max parallelism, uids), whether its
//! files are intact, and whether each operator's new component declares
//! the states the old one wrote. A new component's states are learned by
//! opening it once, on an empty state backend, with the node's config.

use super::error::JobError;
use crate::checkpoint::compatibility::{self, CompatibilityReport, JobOperator};
use crate::checkpoint::layout::sink_copy_prefix;
use crate::checkpoint::restore::{RestoreError, RestorePoint};
use crate::keygroup::KeyGroupRange;
use crate::sandbox::{LoadedComponent, Sandbox};
use crate::sink::{Copies, RestoredSink, check_restored_states};
use crate::spec::graph::{JobGraph, NodeKind};
use crate::state::{DeclaredState, HashMapBackend};

/// The compatibility report of `point` for `graph`, whose operators'
/// components are `components` (one per node, as [`super::load_components`]
/// returns them).
pub fn restore_report(
    graph: &JobGraph,
    sandbox: &Sandbox,
    components: &[Option<LoadedComponent>],
    point: &RestorePoint,
    allow_non_restored: bool,
) -> Result<CompatibilityReport, JobError> {
    let mut job = Vec::with_capacity(graph.nodes.len());
    for (n, node) in graph.nodes.iter().enumerate() {
        let component = components.get(n).and_then(Option::as_ref);
        let recorded = point
            .metadata
            .operator(&node.uid)
            .is_some_and(|o| o.component.is_some());
        let states = match (&node.kind, component) {
            (NodeKind::Operator { config, .. }, Some(c)) if recorded => {
                Some(declared_states(graph, sandbox, c, &node.id, config)?)
            }
            _ => None,
        };
        job.push(JobOperator {
            uid: node.uid.clone(),
            sha256: component.map(|c| c.hash.clone()),
            world: component.map(|_| crate::sandbox::HANDLER_INTERFACE.to_owned()),
            states,
        });
    }
    Ok(compatibility::check(
        &point.metadata,
        &job,
        allow_non_restored,
    ))
}

/// Opens `component` once on an empty backend and returns the keyed
/// states it declares.
fn declared_states(
    graph: &JobGraph,
    sandbox: &Sandbox,
    component: &LoadedComponent,
    node: &str,
    config: &[(String, String)],
) -> Result<Vec<DeclaredState>, JobError> {
    let range = KeyGroupRange {
        start: 0,
        end: graph.max_parallelism.saturating_sub(1),
    };
    let backend = Box::new(HashMapBackend::new(range));
    let failed = |e: crate::sandbox::GuestFailure| {
        JobError::Restore(RestoreError::Incompatible {
            problems: vec![format!(
                "operator `{node}`: cannot open its component to learn its states: {e}"
            )],
        })
    };
    let mut guest = sandbox
        .instantiate(
            component,
            format!("{node} (restore check)"),
            Some((backend, graph.max_parallelism)),
        )
        .map_err(failed)?;
    guest.open(config).map_err(failed)?;
    Ok(guest.declared_states())
}

/// Checks `point` against `graph` before the job starts and returns it
/// ready to restore: refused with every problem named if the state does
/// not fit, with the states to drop recorded (`-n`), and with a changed
/// component logged under both hashes.
pub fn prepare_restore(
    graph: &JobGraph,
    sandbox: &Sandbox,
    components: &[Option<LoadedComponent>],
    point: &RestorePoint,
    allow_non_restored: bool,
) -> Result<RestorePoint, JobError> {
    point.check(graph, allow_non_restored)?;
    point.verify()?;
    let afresh = check_sinks(graph, point)?;
    let report = restore_report(graph, sandbox, components, point, allow_non_restored)?;
    if report.refused {
        return Err(JobError::Restore(RestoreError::Incompatible {
            problems: report.problems(),
        }));
    }
    for v in &report.operators {
        match v.verdict {
            "changed-component" => tracing::warn!(
                "operator `{}`: restoring state written by component {} into component {}",
                v.uid,
                v.old_sha256.as_deref().unwrap_or("?"),
                v.new_sha256.as_deref().unwrap_or("?")
            ),
            _ if !v.dropped_states.is_empty() => tracing::warn!(
                "operator `{}`: dropping state {} (not declared by the job)",
                v.uid,
                v.dropped_states.join(", ")
            ),
            _ => {}
        }
    }
    let mut point = point.clone();
    point.dropped = report.dropped_states();
    point.prepared = true;
    // Sinks restored into a new folder start it afresh: without state,
    // they commit nothing of the snapshot's and empty its part files.
    for o in point.metadata.operators.iter_mut() {
        if afresh.contains(&o.uid) {
            o.subtasks.iter_mut().for_each(|s| s.operator_state.clear());
        }
    }
    Ok(point)
}

/// Checks the sink states of `point` against the job's sinks; returns the
/// uids of those restored into a new folder afresh
/// (`weir.sink.file.allow-new-folder`), and refuses the others that would
/// miss their files, naming both folders.
fn check_sinks(graph: &JobGraph, point: &RestorePoint) -> Result<Vec<String>, JobError> {
    let mut afresh = Vec::new();
    let folder = point.reader.folder().map_err(RestoreError::Storage)?;
    for node in &graph.nodes {
        let NodeKind::Sink(spec) = &node.kind else {
            continue;
        };
        let states: Vec<Vec<u8>> = point.operator_states(&node.uid).concat();
        let prefix = sink_copy_prefix(&node.uid);
        let copies = folder.as_deref().map(|dir| Copies {
            dir,
            prefix: &prefix,
        });
        let checked = check_restored_states(spec, &states, &graph.base_dir, copies.as_ref());
        let uid = node.uid.clone();
        match checked.map_err(|message| RestoreError::Redistribution {
            uid: uid.clone(),
            message,
        })? {
            RestoredSink::Fits => {}
            RestoredSink::Moved { from, to } if graph.config.sink_allow_new_folder => {
                tracing::warn!(
                    "sink `{uid}`: the snapshot committed to {from}; starting {to} afresh (weir.sink.file.allow-new-folder)"
                );
                afresh.push(uid);
            }
            RestoredSink::Moved { from, to } => {
                return Err(JobError::Restore(RestoreError::SinkFolder {
                    uid,
                    from,
                    to,
                }));
            }
        }
    }
    Ok(afresh)
}

/// `weir run --dry-run`: the text of what a restore of `point` into
/// `graph` would do (per node, which old subtasks' key groups each new
/// subtask reads; per uid, the compatibility verdict) and whether it would
/// be allowed. Runs nothing.
pub fn dry_run(
    graph: &JobGraph,
    point: &RestorePoint,
    allow_non_restored: bool,
) -> Result<(String, bool), JobError> {
    use std::fmt::Write;
    let sandbox = Sandbox::new(&graph.config).map_err(JobError::Sandbox)?;
    let components = super::load_components(graph, &sandbox)?;
    let checked = point
        .check(graph, allow_non_restored)
        .and_then(|()| point.verify());
    let report = restore_report(graph, &sandbox, &components, point, allow_non_restored)?;
    let m = &point.metadata;
    let mut t = format!(
        "{} {} of job {} ({}, {}{}), max parallelism {}\n",
        m.kind,
        m.checkpoint_id,
        m.job_id,
        point.path,
        m.backend,
        m.savepoint_format
            .as_deref()
            .map_or_else(String::new, |f| format!(", {f}")),
        m.max_parallelism
    );
    for node in &graph.nodes {
        let Some(old) = m.operator(&node.uid) else {
            continue;
        };
        let _ = writeln!(
            t,
            "  {}: parallelism {} -> {}",
            node.uid, old.parallelism, node.parallelism
        );
        for sub in 0..node.parallelism {
            let range = KeyGroupRange::for_subtask(graph.max_parallelism, node.parallelism, sub);
            let from: Vec<String> = old
                .subtasks
                .iter()
                .filter(|s| {
                    let kg = s
                        .keyed
                        .as_ref()
                        .map(|k| k.key_group_range)
                        .or(s.incremental.as_ref().map(|h| h.key_group_range));
                    kg.is_some_and(|(a, b)| a <= range.end && range.start <= b)
                })
                .map(|s| s.subtask.to_string())
                .collect();
            if !from.is_empty() {
                let _ = writeln!(
                    t,
                    "    subtask {sub}: key groups {}-{} from old subtask(s) {}",
                    range.start,
                    range.end,
                    from.join(", ")
                );
            }
        }
    }
    let _ = writeln!(t, "operators:\n{report}");
    let restorable = match (&checked, report.refused) {
        (Err(e), _) => {
            let _ = writeln!(t, "refused: {e}");
            false
        }
        (Ok(()), true) => {
            let _ = writeln!(t, "refused:\n  {}", report.problems().join("\n  "));
            false
        }
        (Ok(()), false) => {
            t.push_str("restorable\n");
            true
        }
    };
    Ok((t, restorable))
}
