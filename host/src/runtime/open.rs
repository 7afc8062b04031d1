//! Opening each kind of node for one subtask and running it: a source, a
//! sink, a native operator, or a WebAssembly operator with its keyed state
//! backend (restored from a checkpoint when the attempt has one).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::chain::{ChainedOperator, ChainedSink, blame};
use super::checkpointing::TaskCheckpointing;
use super::control::JobControl;
use super::error::TaskFailure;
use super::input_loop;
use super::inputs::InputChannel;
use super::operator::{DeadLetterGuard, NativeOperators, SinkTask, StreamOperator, WasmTask};
use super::output::{EdgeOutput, Output};
use super::plan::TaskPlan;
use super::task;
use crate::checkpoint::hub::CheckpointHub;
use crate::checkpoint::layout::keyed_file_name;
use crate::checkpoint::restore::RestorePoint;
use crate::config::{BackendKind, Config};
use crate::keygroup::KeyGroupRange;
use crate::metrics::TaskMetrics;
use crate::sandbox::{LoadedComponent, Sandbox, WasmOperator};
use crate::sink::latency::LatencyProbe;
use crate::sink::{SinkError, SinkWriter, TransactionalSink, open_sink};
use crate::source::{BatchLimit, open_source};
use crate::spec::graph::{JobGraph, NodeKind};
use crate::spec::{SinkSpec, SourceSpec};
use crate::state::incremental::LocatedHandle;
use crate::state::operator_state::redistribute;
use crate::state::{HashMapBackend, KeyedStateBackend, StateError};
use crate::timers::TimerService;

/// The two-phase-commit side of a sink node in one attempt, and the first
/// transaction number its writers use.
pub(super) type AttemptSink = (Box<dyn TransactionalSink>, u64);

/// A keyed operator's state backend as restored, its timers, and the names
/// of the states it restored.
type RestoredKeyed = (Box<dyn KeyedStateBackend>, TimerService, BTreeSet<String>);

/// What one attempt of a job shares with its tasks.
pub(super) struct Attempt<'a> {
    /// Where this job's embedded state backends keep their working files.
    pub(super) state_dir: std::path::PathBuf,
    pub(super) hub: Option<Arc<CheckpointHub>>,
    pub(super) restore: Option<&'a RestorePoint>,
    /// Per node: the two-phase-commit side of a transactional sink (with
    /// checkpoints on) and the first transaction number its writers use.
    pub(super) sinks: Vec<Option<AttemptSink>>,
    /// The operators compiled into the host, for `Native` nodes.
    pub(super) native: Option<Arc<dyn NativeOperators>>,
}

impl Attempt<'_> {
    /// Opens subtask `subtask` of sink node `node`: transactional when the
    /// attempt checkpoints, measuring latency into `metrics` when the sink
    /// asks for it.
    pub(super) fn open_sink(
        &self,
        graph: &JobGraph,
        spec: &SinkSpec,
        (node, subtask): (usize, u32),
        metrics: &Arc<TaskMetrics>,
    ) -> Result<Box<dyn SinkWriter>, SinkError> {
        let writer = match self.sinks.get(node).and_then(Option::as_ref) {
            Some((sink, first)) => sink.begin(subtask, *first),
            None => open_sink(
                spec,
                subtask,
                &graph.base_dir,
                graph.config.files_root.as_deref(),
            ),
        }?;
        Ok(if spec.measure_latency == Some(true) {
            Box::new(LatencyProbe::new(writer, metrics.clone()))
        } else {
            writer
        })
    }

    /// How subtask `subtask` of node `node` takes part in checkpoints, if
    /// the attempt checkpoints.
    pub(super) fn checkpointing(
        &self,
        graph: &JobGraph,
        node: usize,
        subtask: u32,
    ) -> Option<TaskCheckpointing> {
        self.hub.as_ref().map(|hub| TaskCheckpointing {
            hub: hub.clone(),
            node,
            subtask,
            restored_id: self.restore.map_or(0, |r| r.metadata.checkpoint_id),
            restored_watermark: self
                .restore
                .and_then(|r| r.watermark(&graph.nodes[node].uid)),
        })
    }

    /// Keeps in savepoint folder `dir` a copy of every file the subtasks of
    /// sink node `node` name in `states`.
    pub(super) fn preserve(
        &self,
        graph: &JobGraph,
        node: usize,
        states: &[Vec<u8>],
        dir: &std::path::Path,
    ) -> Result<(), String> {
        let Some((sink, _)) = self.sinks.get(node).and_then(Option::as_ref) else {
            return Ok(());
        };
        let prefix = crate::checkpoint::layout::sink_copy_prefix(&graph.nodes[node].uid);
        let copies = crate::sink::Copies {
            dir,
            prefix: &prefix,
        };
        sink.preserve(states, &copies).map_err(|e| e.to_string())
    }

    /// Commits what the subtasks of sink node `node` pre-committed for a
    /// completed checkpoint.
    pub(super) fn commit(&self, node: usize, states: &[Vec<u8>]) -> Result<(), String> {
        match self.sinks.get(node).and_then(Option::as_ref) {
            Some((sink, _)) => sink.commit(states).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// What opening the subtasks of one thread needs.
pub(super) struct Opener<'a> {
    pub(super) graph: &'a JobGraph,
    pub(super) sandbox: &'a Sandbox,
    /// Per node, the loaded component of a WebAssembly operator.
    pub(super) components: &'a [Option<LoadedComponent>],
    pub(super) control: &'a JobControl,
    pub(super) attempt: &'a Attempt<'a>,
}

/// Runs subtask `plan` of its node, with the subtasks chained into it,
/// until its input ends or it fails; adds what their guests counted to
/// `counters`.
pub(super) fn run_task(
    opener: &Opener<'_>,
    plan: TaskPlan,
    counters: &Mutex<Vec<Vec<(String, u64)>>>,
) -> Result<(), TaskFailure> {
    let (graph, attempt) = (opener.graph, opener.attempt);
    let mut task = opener.subtask(plan)?;
    let result = match &graph.nodes[task.node].kind {
        NodeKind::Source(spec) => task.run_source(spec, opener.control),
        NodeKind::Sink(spec) => {
            let writer =
                attempt.open_sink(graph, spec, (task.node, task.subtask), &task.metrics)?;
            task.run(&mut SinkTask { writer }, true)
        }
        NodeKind::Native { .. } | NodeKind::Operator { .. } => {
            let mut op = opener.operator(&task)?;
            let result = task.run(op.as_mut(), false);
            add_counters(counters, task.node, op.user_counters());
            result
        }
    };
    task.out
        .chained_counters(&mut |n, c| add_counters(counters, n, c));
    result
}

impl Opener<'_> {
    /// Subtask `plan` with its output, the subtasks chained into it opened.
    fn subtask(&self, plan: TaskPlan) -> Result<Subtask<'_>, TaskFailure> {
        let TaskPlan {
            node,
            subtask,
            inputs,
            mut outputs,
            side_outputs,
            metrics,
            chained,
        } = plan;
        for down in chained {
            outputs.push(self.chained(down)?);
        }
        let graph = self.graph;
        let out = Output::new(
            outputs,
            side_outputs,
            (graph.config.batch_size, graph.config.batch_max_bytes),
            graph.max_parallelism,
            metrics.clone(),
        );
        Ok(Subtask {
            graph,
            attempt: self.attempt,
            node,
            subtask,
            inputs,
            out,
            metrics,
            ck: self.attempt.checkpointing(graph, node, subtask),
        })
    }

    /// Opens the subtask of `plan` (a sink or an operator) to run in its
    /// upstream's thread; a failure names it.
    fn chained(&self, plan: TaskPlan) -> Result<EdgeOutput, TaskFailure> {
        let (node, subtask) = (plan.node, plan.subtask);
        if matches!(self.graph.nodes[node].kind, NodeKind::Sink(_)) {
            return chain_sink(self.graph, self.attempt, node, subtask, plan.metrics);
        }
        let blame = |failure| TaskFailure::Output(blame(node, failure));
        let task = self.subtask(plan).map_err(blame)?;
        let op = self.operator(&task).map_err(blame)?;
        let replay = restored_in_flight(self.graph, self.attempt, node, subtask).map_err(blame)?;
        let replay = replay.into_iter().map(|(_, b)| b).collect();
        let Subtask { out, ck, .. } = task;
        let op = ChainedOperator::open(node, op, out, ck, replay)?;
        Ok(EdgeOutput::Chained(Box::new(op)))
    }

    /// Opens the operator of `task` (a WebAssembly or a native one), its
    /// state restored.
    fn operator(&self, task: &Subtask<'_>) -> Result<Box<dyn StreamOperator>, TaskFailure> {
        let (graph, node) = (self.graph, task.node);
        match &graph.nodes[node].kind {
            NodeKind::Native { name } => {
                let native = self.attempt.native.as_ref().ok_or_else(|| {
                    TaskFailure::Internal(format!("no native operator {name:?} in this process"))
                })?;
                let mut restore = |b: &mut dyn KeyedStateBackend| task.restore_keyed(b).map(drop);
                native.open(name, task.key_groups(), graph.max_parallelism, &mut restore)
            }
            NodeKind::Operator { config, .. } => {
                let component = self.components[node]
                    .as_ref()
                    .ok_or_else(|| TaskFailure::Internal("operator without a component".into()))?;
                let uid = &graph.nodes[node].uid;
                let dead_letter =
                    dead_letter_guard(self.control, uid, task.subtask, self.attempt.restore);
                let guest = task.open_guest(self.sandbox, component)?;
                Ok(Box::new(WasmTask {
                    guest,
                    config: config.clone(),
                    published: None,
                    dead_letter,
                    pending: None,
                }))
            }
            NodeKind::Source(_) | NodeKind::Sink(_) => Err(TaskFailure::Internal(
                "a source or sink opened as an operator".into(),
            )),
        }
    }
}

/// The dead-letter guard of subtask `subtask` of operator `uid`, if the
/// job has a quarantine; `restore` is what the attempt restored.
fn dead_letter_guard(
    control: &JobControl,
    uid: &str,
    subtask: u32,
    restore: Option<&RestorePoint>,
) -> Option<DeadLetterGuard> {
    control.quarantine().map(|q| DeadLetterGuard {
        quarantine: q.clone(),
        uid: uid.to_owned(),
        subtask,
        checkpoint: restore.map_or(0, |r| r.metadata.checkpoint_id),
    })
}

/// Opens sink `sink_node`'s subtask `subtask` to run in its upstream's
/// thread.
fn chain_sink(
    graph: &JobGraph,
    attempt: &Attempt<'_>,
    sink_node: usize,
    subtask: u32,
    metrics: Arc<TaskMetrics>,
) -> Result<EdgeOutput, TaskFailure> {
    let NodeKind::Sink(spec) = &graph.nodes[sink_node].kind else {
        return Err(TaskFailure::Internal("only sinks are chained".into()));
    };
    let chained = |failure| TaskFailure::Output(blame(sink_node, failure));
    let mut writer = attempt
        .open_sink(graph, spec, (sink_node, subtask), &metrics)
        .map_err(|e| chained(e.into()))?;
    // In-flight records it held in an unaligned checkpoint taken while it
    // was not chained go in before anything of its upstream.
    for (_, batch) in restored_in_flight(graph, attempt, sink_node, subtask)? {
        metrics.add_in(batch.len);
        writer.write(&batch).map_err(|e| chained(e.into()))?;
    }
    Ok(EdgeOutput::Chained(Box::new(ChainedSink {
        node: sink_node,
        writer,
        metrics,
        checkpointing: attempt
            .checkpointing(graph, sink_node, subtask)
            .map(|c| (c.clone(), c.restored_id)),
    })))
}

/// The in-flight records of the unaligned checkpoint restored from that
/// subtask `subtask` of node `node` replays first, with the operator input
/// each goes to.
fn restored_in_flight(
    graph: &JobGraph,
    attempt: &Attempt<'_>,
    node: usize,
    subtask: u32,
) -> Result<Vec<(u8, crate::channel::Batch)>, TaskFailure> {
    let Some(r) = attempt.restore else {
        return Ok(Vec::new());
    };
    let n = &graph.nodes[node];
    let range = KeyGroupRange::for_subtask(graph.max_parallelism, n.parallelism, subtask);
    r.channel_state_for(
        &n.uid,
        (subtask, n.parallelism, range),
        graph.config.batch_size,
    )
    .map_err(|e| TaskFailure::restore(r, format!("in-flight records: {e}")))
}

/// Adds a guest's user counters to node `n`'s totals.
fn add_counters(counters: &Mutex<Vec<Vec<(String, u64)>>>, n: usize, guest: &[(String, u64)]) {
    let mut all = counters.lock().unwrap_or_else(|p| p.into_inner());
    for (name, v) in guest {
        match all[n].iter_mut().find(|(x, _)| x == name) {
            Some(c) => c.1 = c.1.saturating_add(*v),
            None => all[n].push((name.clone(), *v)),
        }
    }
}

/// One subtask being opened and run.
struct Subtask<'a> {
    graph: &'a JobGraph,
    attempt: &'a Attempt<'a>,
    node: usize,
    subtask: u32,
    inputs: Vec<InputChannel>,
    out: Output,
    metrics: Arc<TaskMetrics>,
    ck: Option<TaskCheckpointing>,
}

impl Subtask<'_> {
    /// The key groups this subtask owns.
    fn key_groups(&self) -> KeyGroupRange {
        let node = &self.graph.nodes[self.node];
        KeyGroupRange::for_subtask(self.graph.max_parallelism, node.parallelism, self.subtask)
    }

    /// Feeds `op` from the inputs until they end.
    fn run(&mut self, op: &mut dyn StreamOperator, is_sink: bool) -> Result<(), TaskFailure> {
        let replay = restored_in_flight(self.graph, self.attempt, self.node, self.subtask)?;
        input_loop::run_operator(
            op,
            std::mem::take(&mut self.inputs),
            replay,
            &mut self.out,
            &self.metrics,
            is_sink,
            self.ck.as_ref(),
        )
    }

    /// Reads the source until its end, from its restored position.
    fn run_source(&mut self, spec: &SourceSpec, control: &JobControl) -> Result<(), TaskFailure> {
        let node = &self.graph.nodes[self.node];
        let restored = self.attempt.restore.map(|r| r.operator_states(&node.uid));
        let root = self.graph.config.files_root.as_deref();
        let mut reader = open_source(
            spec,
            (self.subtask, node.parallelism),
            (&self.graph.base_dir, root),
            restored.as_deref(),
        )?;
        task::run_source(
            reader.as_mut(),
            &mut self.out,
            BatchLimit {
                records: self.graph.config.batch_size,
                bytes: self.graph.config.batch_max_bytes,
            },
            spec.out_of_orderness_ms,
            spec.idle_timeout_ms.map(std::time::Duration::from_millis),
            control,
            self.ck.as_ref(),
        )
    }

    /// Keyed state and timers of a restored checkpoint, for this subtask's
    /// key groups.
    fn restore_keyed(
        &self,
        backend: &mut dyn KeyedStateBackend,
    ) -> Result<TimerService, TaskFailure> {
        let mut timers = TimerService::default();
        if let Some(r) = self.attempt.restore {
            let uid = &self.graph.nodes[self.node].uid;
            r.restore_keyed(uid, backend, &mut timers)
                .map_err(|e| TaskFailure::restore(r, e))?;
        }
        Ok(timers)
    }

    /// The keyed state backend of a keyed operator, restored, with its
    /// timers and the names of the states it restored.
    fn open_keyed(&self) -> Result<RestoredKeyed, TaskFailure> {
        let node = &self.graph.nodes[self.node];
        let dir = self
            .attempt
            .state_dir
            .join(keyed_file_name(self.node, &node.uid, self.subtask))
            .with_extension("db");
        let handles = match self.attempt.restore {
            Some(r) => r
                .incremental_handles(&node.uid, self.key_groups())
                .map_err(|e| TaskFailure::restore(r, e))?,
            None => Vec::new(),
        };
        // A failure to bring the snapshot's files in is the snapshot's
        // fault only if they no longer verify; otherwise it is the working
        // folder's (a lock, a full disk), which a restart may fix.
        let mut backend = open_backend(&self.graph.config, &dir, self.key_groups(), &handles)
            .map_err(|e| match self.attempt.restore.map(|r| (r, r.verify())) {
                Some((r, Err(damaged))) if !handles.is_empty() => {
                    TaskFailure::restore(r, format!("{e} ({damaged})"))
                }
                _ => TaskFailure::from(e),
            })?;
        let timers = self.restore_keyed(backend.as_mut())?;
        let restored = backend.declared().iter().map(|d| d.0.clone()).collect();
        Ok((backend, timers, restored))
    }

    /// Instantiates the operator's guest with its restored keyed state,
    /// timers and operator state.
    fn open_guest(
        &self,
        sandbox: &Sandbox,
        component: &LoadedComponent,
    ) -> Result<WasmOperator, TaskFailure> {
        let node = &self.graph.nodes[self.node];
        let (keyed, timers, restored_states) = match self.graph.is_keyed(self.node) {
            true => {
                let (backend, timers, restored) = self.open_keyed()?;
                (
                    Some((backend, self.graph.max_parallelism)),
                    Some(timers),
                    restored,
                )
            }
            false => (None, None, BTreeSet::new()),
        };
        let label = format!("{}[{}/{}]", node.uid, self.subtask + 1, node.parallelism);
        let mut guest = sandbox.instantiate(component, label, keyed)?;
        if let Some(t) = timers {
            guest.set_timers(t);
        }
        if let Some(r) = self.attempt.restore {
            guest.set_restored_states(restored_states, r.ttl_states(&node.uid));
            let old = r.operator_states(&node.uid);
            let lists = redistribute(&old, self.subtask, node.parallelism)
                .map_err(|e| TaskFailure::restore(r, e))?;
            guest.set_operator_state(lists);
        }
        Ok(guest)
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
            let options = rocksdb_options(config);
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

/// The RocksDB backend's options from `config` (its memory and write
/// cache settings, `state.backend.incremental` where checkpoints go to a
/// file system, `weir.state.max-bytes`).
#[cfg(feature = "rocksdb")]
pub(crate) fn rocksdb_options(config: &Config) -> crate::state::rocksdb::RocksDbOptions {
    let b = &config.backend;
    crate::state::rocksdb::RocksDbOptions {
        block_cache_bytes: usize::try_from(b.rocksdb_block_cache).unwrap_or(usize::MAX),
        memory_bytes: usize::try_from(b.rocksdb_memory).unwrap_or(usize::MAX),
        write_buffer_ratio: b.rocksdb_write_buffer_ratio,
        write_buffer_bytes: usize::try_from(b.rocksdb_write_buffer).unwrap_or(usize::MAX),
        write_buffer_count: i32::try_from(b.rocksdb_write_buffers).unwrap_or(i32::MAX),
        write_cache_bytes: usize::try_from(b.rocksdb_write_cache).unwrap_or(usize::MAX),
        incremental: b.incremental
            && config.checkpoint.storage == crate::config::StorageKind::Filesystem,
        max_bytes: usize::try_from(config.state_max_bytes).unwrap_or(usize::MAX),
    }
}
