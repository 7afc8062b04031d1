//! Opening each kind of node for one subtask and running it: a source, a
//! sink, a native operator, or a WebAssembly operator with its keyed state
//! backend (restored from a checkpoint when the attempt has one).

use std::sync::Mutex;

use super::checkpointing::TaskCheckpointing;
use super::control::JobControl;
use super::error::OutputError;
use super::error::TaskFailure;
use super::operator::{NativeCount, SinkTask, StreamOperator, WasmTask};
use super::output::{ChainedSink, EdgeOutput, Output};
use super::plan::TaskPlan;
use super::task;
use crate::checkpoint::hub::CheckpointHub;
use crate::checkpoint::restore::RestorePoint;
use crate::config::{BackendKind, Config};
use crate::keygroup::KeyGroupRange;
use crate::sandbox::{LoadedComponent, Sandbox};
use crate::sink::{SinkError, SinkWriter, TransactionalSink, open_sink};
use crate::source::open_source;
use crate::spec::SinkSpec;
use crate::spec::graph::{JobGraph, NativeOperator, NodeKind};
use crate::state::incremental::LocatedHandle;
use crate::state::{HashMapBackend, KeyedStateBackend, StateError};
use crate::timers::TimerService;
use std::sync::Arc;

/// What one attempt of a job shares with its tasks.
pub(super) struct Attempt<'a> {
    /// Where this job's embedded state backends keep their working files.
    pub(super) state_dir: std::path::PathBuf,
    pub(super) hub: Option<Arc<CheckpointHub>>,
    pub(super) restore: Option<&'a RestorePoint>,
    /// Per node: the two-phase-commit side of a transactional sink (with
    /// checkpoints on) and the first transaction number its writers use.
    pub(super) sinks: Vec<Option<(Box<dyn TransactionalSink>, u64)>>,
}

impl Attempt<'_> {
    /// Opens subtask `subtask` of sink node `node`: transactional when the
    /// attempt checkpoints.
    pub(super) fn open_sink(
        &self,
        graph: &JobGraph,
        spec: &SinkSpec,
        node: usize,
        subtask: u32,
    ) -> Result<Box<dyn SinkWriter>, SinkError> {
        match self.sinks.get(node).and_then(Option::as_ref) {
            Some((sink, first)) => sink.begin(subtask, *first),
            None => open_sink(spec, subtask, &graph.base_dir),
        }
    }

    /// How subtask `subtask` of node `node` takes part in checkpoints, if
    /// the attempt checkpoints.
    pub(super) fn checkpointing(&self, node: usize, subtask: u32) -> Option<TaskCheckpointing> {
        self.hub.as_ref().map(|hub| TaskCheckpointing {
            hub: hub.clone(),
            node,
            subtask,
            restored_id: self.restore.map_or(0, |r| r.metadata.checkpoint_id),
        })
    }

    /// Commits what the subtasks of sink node `node` pre-committed for a
    /// completed checkpoint.
    pub(super) fn commit(&self, node: usize, states: &[Vec<u8>]) -> Result<(), String> {
        match self.sinks.get(node).and_then(Option::as_ref) {
            Some((sink, _)) => sink.commit(states).map_err(|e| e.0),
            None => Ok(()),
        }
    }
}

/// Runs subtask `plan` of its node until its input ends or it fails.
pub(super) fn run_task(
    graph: &JobGraph,
    plan: TaskPlan,
    sandbox: &Sandbox,
    component: Option<&LoadedComponent>,
    control: &JobControl,
    counters: &Mutex<Vec<Vec<(String, u64)>>>,
    attempt: &Attempt<'_>,
) -> Result<(), TaskFailure> {
    let node = &graph.nodes[plan.node];
    let TaskPlan {
        node: n,
        subtask,
        inputs,
        input_sides,
        mut outputs,
        metrics,
        chained_sinks,
        chained: _,
    } = plan;
    for (sink_node, sink_metrics) in chained_sinks {
        let NodeKind::Sink(spec) = &graph.nodes[sink_node].kind else {
            return Err(TaskFailure::Internal("only sinks are chained".into()));
        };
        let writer = attempt
            .open_sink(graph, spec, sink_node, subtask)
            .map_err(|e| {
                TaskFailure::Output(OutputError::Chained {
                    node: sink_node,
                    failure: Box::new(e.into()),
                })
            })?;
        outputs.push(EdgeOutput::Chained(ChainedSink {
            node: sink_node,
            writer,
            metrics: sink_metrics,
            checkpointing: attempt
                .checkpointing(sink_node, subtask)
                .map(|c| (c.clone(), c.restored_id)),
        }));
    }
    let mut out = Output::new(
        outputs,
        graph.config.batch_size,
        graph.max_parallelism,
        metrics.clone(),
    );
    let keyed_range =
        || KeyGroupRange::for_subtask(graph.max_parallelism, node.parallelism, subtask);
    let ck = attempt.checkpointing(n, subtask);
    let mut run = |op: &mut dyn StreamOperator, is_sink: bool| {
        task::run_operator(
            op,
            &inputs,
            &input_sides,
            &mut out,
            &metrics,
            is_sink,
            ck.as_ref(),
        )
    };
    // Keyed state and timers of a restored checkpoint, for this subtask's
    // key groups.
    let restore_keyed = |backend: &mut dyn KeyedStateBackend| -> Result<TimerService, TaskFailure> {
        let mut timers = TimerService::default();
        if let Some(r) = attempt.restore {
            r.restore_keyed(&node.uid, backend, &mut timers)
                .map_err(|e| TaskFailure::Restore(e.to_string()))?;
        }
        Ok(timers)
    };
    match &node.kind {
        NodeKind::Source(spec) => {
            let restored = attempt.restore.map(|r| r.operator_states(&node.uid));
            let mut reader = open_source(
                spec,
                subtask,
                node.parallelism,
                &graph.base_dir,
                restored.as_deref(),
            )?;
            task::run_source(
                reader.as_mut(),
                &mut out,
                graph.config.batch_size,
                spec.out_of_orderness_ms,
                control,
                ck.as_ref(),
            )
        }
        NodeKind::Sink(spec) => {
            let writer = attempt.open_sink(graph, spec, n, subtask)?;
            run(&mut SinkTask { writer }, true)
        }
        NodeKind::Native(NativeOperator::Count) => {
            let mut op =
                NativeCount::new(HashMapBackend::new(keyed_range()), graph.max_parallelism)?;
            restore_keyed(&mut op.backend)?;
            run(&mut op, false)
        }
        NodeKind::Operator { config, .. } => {
            let component = component
                .ok_or_else(|| TaskFailure::Internal("operator without a component".into()))?;
            let mut timers = None;
            let mut restored_states = std::collections::BTreeSet::new();
            let keyed = if graph.is_keyed(n) {
                let dir = attempt
                    .state_dir
                    .join(crate::checkpoint::layout::keyed_file_name(
                        n, &node.uid, subtask,
                    ))
                    .with_extension("db");
                let handles = match attempt.restore {
                    Some(r) => r
                        .incremental_handles(&node.uid, keyed_range())
                        .map_err(|e| TaskFailure::Restore(e.to_string()))?,
                    None => Vec::new(),
                };
                let mut backend = open_backend(&graph.config, &dir, keyed_range(), &handles)
                    .map_err(|e| match handles.is_empty() {
                        true => TaskFailure::from(e),
                        false => TaskFailure::Restore(e.to_string()),
                    })?;
                timers = Some(restore_keyed(backend.as_mut())?);
                restored_states = backend.declared().iter().map(|d| d.0.clone()).collect();
                Some((backend, graph.max_parallelism))
            } else {
                None
            };
            let label = format!("{}[{}/{}]", node.uid, subtask + 1, node.parallelism);
            let mut guest = sandbox.instantiate(component, label, keyed)?;
            if let Some(t) = timers {
                guest.set_timers(t);
            }
            if let Some(r) = attempt.restore {
                guest.set_restored_states(restored_states, r.ttl_states(&node.uid));
            }
            if let Some(r) = attempt.restore {
                let old = r.operator_states(&node.uid);
                let lists =
                    crate::state::operator_state::redistribute(&old, subtask, node.parallelism)
                        .map_err(TaskFailure::Restore)?;
                guest.set_operator_state(lists);
            }
            let mut op = WasmTask {
                guest,
                config: config.clone(),
            };
            let result = run(&mut op, false);
            let mut all = counters.lock().unwrap_or_else(|p| p.into_inner());
            for (name, v) in op.guest.counters() {
                match all[n].iter_mut().find(|(x, _)| x == name) {
                    Some(c) => c.1 = c.1.saturating_add(*v),
                    None => all[n].push((name.clone(), *v)),
                }
            }
            result
        }
    }
}

/// Opens the keyed state backend `config` names for one subtask owning
/// `range`; an embedded backend works in folder `dir`, starting from the
/// incremental snapshots `restore` (empty: from nothing).
pub(super) fn open_backend(
    config: &Config,
    #[cfg_attr(
        not(feature = "rocksdb"),
        expect(unused_variables, reason = "only RocksDB has a working folder")
    )]
    dir: &std::path::Path,
    range: KeyGroupRange,
    restore: &[LocatedHandle],
) -> Result<Box<dyn KeyedStateBackend>, StateError> {
    match config.backend.kind {
        BackendKind::HashMap if !restore.is_empty() => Err(StateError::Storage(
            "the hashmap backend cannot restore RocksDB's incremental snapshots".into(),
        )),
        BackendKind::HashMap => {
            let limit = usize::try_from(config.state_max_bytes).unwrap_or(usize::MAX);
            Ok(Box::new(HashMapBackend::with_limit(range, limit)))
        }
        #[cfg(feature = "rocksdb")]
        BackendKind::RocksDb => {
            let b = &config.backend;
            let options = crate::state::rocksdb::RocksDbOptions {
                block_cache_bytes: usize::try_from(b.rocksdb_block_cache).unwrap_or(usize::MAX),
                write_buffer_bytes: usize::try_from(b.rocksdb_write_buffer).unwrap_or(usize::MAX),
                write_buffer_count: i32::try_from(b.rocksdb_write_buffers).unwrap_or(i32::MAX),
                write_cache_bytes: usize::try_from(b.rocksdb_write_cache).unwrap_or(usize::MAX),
                incremental: b.incremental
                    && config.checkpoint.storage == crate::config::StorageKind::Filesystem,
            };
            Ok(Box::new(crate::state::rocksdb::RocksDbBackend::restore(
                dir, range, options, restore,
            )?))
        }
        #[cfg(not(feature = "rocksdb"))]
        BackendKind::RocksDb => Err(StateError::Storage(
            "this weir was built without the `rocksdb` feature".into(),
        )),
    }
}
