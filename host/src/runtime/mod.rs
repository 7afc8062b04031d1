//! Runs a [`JobGraph`] in this process.
//!
//! Each subtask of each node is a thread. Subtasks talk only through
//! bounded [`crate::channel`]s, one per (upstream subtask, downstream
//! subtask) pair, so a network channel could stand in for one later. An
//! operator subtask owns its guest instance and, on a keyed input, a state
//! backend for its key-group range.
//!
//! A failing subtask stops the attempt: its channels close, upstream and
//! downstream subtasks see that and stop. With checkpoints on, a
//! [`crate::checkpoint::coordinator::Coordinator`] thread runs beside the
//! tasks. After a failure the restart strategy ([`restart`]) decides whether
//! the job runs again, from its latest completed checkpoint; otherwise
//! [`run_job`] returns the first failure with the node, uid and subtask it
//! happened in. Nothing a guest does brings the process down.

mod error;
mod operator;
mod output;
mod progress;
pub mod restart;
mod task;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use error::{JobError, TaskFailure};
pub use operator::{NativeCount, StreamOperator};
pub use output::{Output, OutputError};
pub use progress::{JobSummary, NodeSummary};
pub use restart::{RestartDecision, RestartPolicy, RestartStrategy};

use self::operator::{SinkTask, WasmTask};
use self::output::{ChainedSink, EdgeOutput};
use self::task::TaskCheckpointing;
use crate::channel::{ChannelReceiver, channel};
use crate::checkpoint::Retention;
use crate::checkpoint::coordinator::{
    CheckpointHub, CheckpointStats, CompletedCheckpoint, Coordinator, FailedCheckpoint, epoch_ms,
};
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::storage::{CheckpointStorage, new_job_id};
use crate::graph::{JobGraph, NativeOperator, NodeKind};
use crate::keygroup::KeyGroupRange;
use crate::metrics::TaskMetrics;
use crate::sandbox::{LoadedComponent, Sandbox};
use crate::sink::{file as file_sink, open_sink, sink_folder};
use crate::source::open_source;
use crate::spec::{Partitioning, SinkType};
use crate::state::{HashMapBackend, KeyedStateBackend};
use crate::timers::TimerService;
use weir_wire::BatchBuilder;

/// Lets other threads stop a running job, and records job-wide moments.
#[derive(Debug, Default)]
pub struct JobControl {
    cancelled: AtomicBool,
    failed: AtomicBool,
    /// A user asked for a checkpoint now.
    checkpoint_requested: AtomicBool,
    live: Mutex<LiveJob>,
}

/// The checkpoint a job (attempt) started from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestoredCheckpoint {
    /// Its id.
    pub id: u64,
    /// Its external path.
    pub external_path: String,
    /// When the job restored from it (ms since the Unix epoch).
    pub restore_timestamp: i64,
    /// `checkpoint` or `savepoint`, as its `_metadata` says.
    pub kind: String,
}

/// What a running job shows while it runs (for the REST API): its tasks'
/// counters, its checkpoints and restarts.
#[derive(Debug, Clone, Default)]
pub struct LiveJob {
    /// Per node, per subtask: the counters of the current attempt.
    pub metrics: Vec<Vec<Arc<TaskMetrics>>>,
    /// The newest completed checkpoints, oldest first (at most
    /// [`HISTORY_KEPT`], like Flink's `web.checkpoints.history`).
    pub checkpoints: Vec<CheckpointStats>,
    /// How many checkpoints completed in all.
    pub completed_count: u64,
    /// The external path of the newest completed checkpoint.
    pub last_checkpoint_path: Option<String>,
    /// Restarts so far.
    pub restarts: u32,
    /// The newest failed checkpoints, oldest first (at most
    /// [`FAILED_KEPT`]).
    pub failed_checkpoints: Vec<FailedCheckpoint>,
    /// How many checkpoints failed in all.
    pub failed_count: u64,
    /// The checkpoint the current attempt started from.
    pub restored: Option<RestoredCheckpoint>,
    /// How many times the job started from a checkpoint.
    pub restored_count: u64,
    /// (ms since the Unix epoch, message) of the newest failures that
    /// restarted the job, oldest first (at most [`EXCEPTIONS_KEPT`]).
    pub exceptions: Vec<(i64, String)>,
}

/// How many completed checkpoints [`LiveJob`] remembers.
pub const HISTORY_KEPT: usize = 10;

/// How many failed checkpoints [`LiveJob`] remembers.
pub const FAILED_KEPT: usize = 10;

/// How many restarting failures [`LiveJob`] remembers.
pub const EXCEPTIONS_KEPT: usize = 20;

impl JobControl {
    /// Asks the job to stop; [`run_job`] then returns [`JobError::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Asks for a checkpoint as soon as one can start; `false` if the job
    /// does not checkpoint.
    pub fn request_checkpoint(&self, graph: &JobGraph) -> bool {
        if graph.config.checkpoint.interval.is_none() {
            return false;
        }
        self.checkpoint_requested.store(true, Ordering::SeqCst);
        true
    }

    /// A copy of what the job shows now.
    pub fn live(&self) -> LiveJob {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update_live(&self, f: impl FnOnce(&mut LiveJob)) {
        f(&mut self.live.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn is_stopping(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed)
    }
}

/// How to run a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print progress lines on stderr every `weir.progress.interval`.
    pub progress: bool,
    /// Start from this checkpoint (`weir run -s`).
    pub restore: Option<RestorePoint>,
    /// Skip state whose uid the job lacks (`-n`).
    pub allow_non_restored_state: bool,
    /// The job id (names its checkpoint folder); a fresh one if `None`.
    pub job_id: Option<String>,
    /// Leave the checkpoints when the job ends: the caller deletes them
    /// after it has recorded the end (the server).
    pub keep_checkpoints: bool,
}

/// What one attempt of a job shares with its tasks.
struct Attempt<'a> {
    /// Where this job's embedded state backends keep their working files.
    state_dir: std::path::PathBuf,
    hub: Option<Arc<CheckpointHub>>,
    restore: Option<&'a RestorePoint>,
    /// Per node: the first part number of a transactional file sink.
    first_parts: Vec<u64>,
}

impl Attempt<'_> {
    /// Opens subtask `subtask` of sink node `node`: transactional when the
    /// attempt checkpoints.
    fn open_sink(
        &self,
        graph: &JobGraph,
        spec: &crate::spec::SinkSpec,
        node: usize,
        subtask: u32,
    ) -> Result<Box<dyn crate::sink::SinkWriter>, crate::sink::SinkError> {
        open_sink(
            spec,
            subtask,
            &graph.base_dir,
            self.hub.as_ref(),
            self.first_parts[node],
        )
    }

    fn checkpointing(&self, node: usize, subtask: u32) -> Option<TaskCheckpointing> {
        self.hub.as_ref().map(|hub| TaskCheckpointing {
            hub: hub.clone(),
            node,
            subtask,
            restored_id: self.restore.map_or(0, |r| r.metadata.checkpoint_id),
        })
    }
}

struct TaskPlan {
    node: usize,
    subtask: u32,
    inputs: Vec<ChannelReceiver>,
    /// Per input channel: which operator input it feeds (0 or 1).
    input_sides: Vec<u8>,
    outputs: Vec<EdgeOutput>,
    metrics: Arc<TaskMetrics>,
    /// Sinks chained into this task: (node, their metrics).
    chained_sinks: Vec<(usize, Arc<TaskMetrics>)>,
    /// Runs inside its upstream's task, not in a thread of its own.
    chained: bool,
}

/// Loads every operator's component (checking it against the world), so a
/// bad component is refused before anything starts.
pub fn load_components(
    graph: &JobGraph,
    sandbox: &Sandbox,
) -> Result<Vec<Option<LoadedComponent>>, JobError> {
    graph
        .nodes
        .iter()
        .map(|n| match &n.kind {
            NodeKind::Operator { wasm, .. } => {
                sandbox
                    .load(wasm)
                    .map(Some)
                    .map_err(|error| JobError::Component {
                        node: n.id.clone(),
                        error,
                    })
            }
            _ => Ok(None),
        })
        .collect()
}

/// Runs a job to its end (bounded sources) or until `control` cancels it,
/// restarting it after failures as the restart strategy allows.
pub fn run_job(
    graph: &JobGraph,
    options: &RunOptions,
    control: &JobControl,
) -> Result<JobSummary, JobError> {
    let started = Instant::now();
    let sandbox = Sandbox::new(&graph.config).map_err(JobError::Sandbox)?;
    let components = load_components(graph, &sandbox)?;
    if let Some(r) = &options.restore {
        r.check(graph, options.allow_non_restored_state)?;
        r.verify()?;
    }
    let cp = &graph.config.checkpoint;
    let job_id = options.job_id.clone().unwrap_or_else(new_job_id);
    // The working folder of embedded state backends, held while the job
    // runs and removed after it (and swept after a crash).
    let _state_folder = match graph.config.backend.kind {
        crate::config::BackendKind::RocksDb => Some(
            crate::state::workdir::JobFolder::claim(&graph.config.backend.rocksdb_dir, &job_id)
                .map_err(|e| {
                    JobError::Storage(crate::checkpoint::storage::StorageError {
                        path: graph.config.backend.rocksdb_dir.display().to_string(),
                        message: e.to_string(),
                    })
                })?,
        ),
        crate::config::BackendKind::HashMap => None,
    };
    // A relative checkpoint folder lies beside the spec, like the
    // sources' and sinks' paths.
    let storage = match cp.interval {
        Some(_) => Some(CheckpointStorage::new(
            cp.storage,
            &graph.base_dir.join(&cp.dir),
            &job_id,
        )?),
        None => None,
    };
    if let Some(s) = &storage {
        tracing::info!(
            "job {job_id}: checkpoints every {} ms in {}",
            cp.interval.map_or(0, |d| d.as_millis()),
            s.location(0).trim_end_matches("/chk-0")
        );
    }
    if let Some(r) = &options.restore {
        tracing::info!(
            "restoring from checkpoint {} ({})",
            r.metadata.checkpoint_id,
            r.path
        );
    }
    // The job's own retained checkpoints (a resumed job's), after removing
    // what a crash left: unfinished checkpoints and unused shared files;
    // and the same sweep of the folder of another job restored from.
    let _folder_lock = match &storage {
        Some(s) => s.lock()?,
        None => None,
    };
    if let Some(r) = &options.restore {
        let folder = std::path::Path::new(&r.path);
        let is_checkpoint = folder
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("chk-"));
        if let Some(job_dir) = folder.parent().filter(|_| is_checkpoint) {
            crate::checkpoint::storage::sweep_folder(job_dir);
        }
    }
    if let Some(root) = storage.as_ref().and_then(|s| s.job_dir()?.parent()) {
        crate::checkpoint::storage::sweep_jobs(root);
    }
    let retained = match &storage {
        Some(s) => {
            let own = options.restore.as_ref().and_then(|r| {
                let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
                let folder = canonical(std::path::Path::new(&r.path));
                let inside = s.job_dir().and_then(canonical).is_some_and(|d| {
                    folder.as_deref().and_then(std::path::Path::parent) == Some(d.as_path())
                });
                inside.then_some(r.metadata.checkpoint_id)
            });
            s.recover(cp.num_retained, own)
        }
        None => crate::checkpoint::storage::Recovered::default(),
    };
    // Ids continue after the restored checkpoint and after every
    // checkpoint folder of this job, so a new one never lands in an old
    // one's folder.
    let mut next_id = options
        .restore
        .as_ref()
        .map_or(0, |r| r.metadata.checkpoint_id)
        .max(retained.highest_id)
        + 1;
    let completed: Mutex<Vec<CompletedCheckpoint>> = Mutex::new(
        retained
            .retained
            .into_iter()
            .filter_map(|(metadata, path)| {
                let s = storage.as_ref()?;
                Some(CompletedCheckpoint {
                    reader: s.reader(metadata.checkpoint_id),
                    metadata,
                    path,
                })
            })
            .collect(),
    );
    let seed = started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let mut policy = RestartPolicy::new(graph.config.restart_strategy(), seed);
    let mut restore = options.restore.clone();
    let mut restarts = 0u32;
    let mut history = Vec::new();
    loop {
        let result = run_attempt(
            graph,
            &sandbox,
            &components,
            options,
            control,
            &job_id,
            storage.as_ref().map(|s| (s, job_id.as_str(), &completed)),
            restore.as_ref(),
            &mut next_id,
            &mut history,
            started,
        );
        let cancelled = control.cancelled.load(Ordering::SeqCst);
        match result {
            Ok(mut summary) => {
                summary.job_id = job_id.clone();
                summary.restarts = restarts;
                summary.checkpoints_completed = history.len() as u64;
                summary.checkpoints = history;
                // Flink discards the checkpoints of a finished job under
                // every retention policy.
                if let Some(s) = &storage
                    && !options.keep_checkpoints
                    && let Err(e) = s.discard_all()
                {
                    tracing::warn!("cannot delete the finished job's checkpoints: {e}");
                }
                return Ok(summary);
            }
            Err(e) if cancelled => {
                if cp.retention != Retention::RetainOnCancellation
                    && !options.keep_checkpoints
                    && let Some(s) = &storage
                    && let Err(e) = s.discard_all()
                {
                    tracing::warn!("cannot delete the cancelled job's checkpoints: {e}");
                }
                return Err(match e {
                    JobError::Task { cause, .. } if cause.is_secondary() => JobError::Cancelled,
                    other => other,
                });
            }
            Err(e) if !e.is_restartable() => return Err(e),
            Err(e) => match policy.on_failure(Instant::now()) {
                RestartDecision::Fail(why) => {
                    tracing::error!("not restarting ({why}): {e}");
                    return Err(e);
                }
                RestartDecision::RestartAfter(delay) => {
                    restarts += 1;
                    let message = e.to_string();
                    control.update_live(|l| {
                        l.restarts = restarts;
                        l.exceptions.push((epoch_ms(), message));
                        if l.exceptions.len() > EXCEPTIONS_KEPT {
                            l.exceptions.remove(0);
                        }
                    });
                    let from = latest_valid(&completed).or_else(|| options.restore.clone());
                    let what = from.as_ref().map_or_else(
                        || "from the beginning (no completed checkpoint)".to_owned(),
                        |r| format!("from checkpoint {} ({})", r.metadata.checkpoint_id, r.path),
                    );
                    tracing::warn!(
                        "restart {restarts} ({}) in {} ms, {what}, after: {e}",
                        policy.strategy().name(),
                        delay.as_millis()
                    );
                    let until = Instant::now() + delay;
                    while Instant::now() < until {
                        if control.cancelled.load(Ordering::SeqCst) {
                            return Err(JobError::Cancelled);
                        }
                        std::thread::sleep(
                            until
                                .saturating_duration_since(Instant::now())
                                .min(std::time::Duration::from_millis(20)),
                        );
                    }
                    control.failed.store(false, Ordering::SeqCst);
                    restore = from;
                }
            },
        }
    }
}

/// The newest retained checkpoint whose files are intact; a damaged one is
/// logged and skipped in favour of the one before it.
fn latest_valid(completed: &Mutex<Vec<CompletedCheckpoint>>) -> Option<RestorePoint> {
    let completed = completed.lock().unwrap_or_else(|p| p.into_inner());
    for c in completed.iter().rev() {
        let point = RestorePoint {
            metadata: c.metadata.clone(),
            reader: c.reader.clone(),
            path: c.path.clone(),
        };
        match point.verify() {
            Ok(()) => return Some(point),
            Err(e) => tracing::error!(
                "checkpoint {} is damaged ({e}); falling back to the previous retained checkpoint",
                c.metadata.checkpoint_id
            ),
        }
    }
    None
}

/// One run of the job's tasks, from `restore` if given.
#[allow(clippy::too_many_arguments)]
fn run_attempt(
    graph: &JobGraph,
    sandbox: &Sandbox,
    components: &[Option<LoadedComponent>],
    options: &RunOptions,
    control: &JobControl,
    job_id: &str,
    checkpoints: Option<(&CheckpointStorage, &str, &Mutex<Vec<CompletedCheckpoint>>)>,
    restore: Option<&RestorePoint>,
    next_id: &mut u64,
    history: &mut Vec<CheckpointStats>,
    started: Instant,
) -> Result<JobSummary, JobError> {
    let plans = plan_tasks(graph);
    let (hub, hub_rx) = match checkpoints {
        Some(_) => {
            let (hub, rx) = CheckpointHub::new(graph.config.checkpoint.mode);
            (Some(hub), Some(rx))
        }
        None => (None, None),
    };
    // Transactional file sinks: commit what the restored checkpoint
    // pre-committed and remove everything else, before any task starts.
    let mut first_parts = vec![0u64; graph.nodes.len()];
    if hub.is_some() {
        for (n, node) in graph.nodes.iter().enumerate() {
            let NodeKind::Sink(spec) = &node.kind else {
                continue;
            };
            if spec.sink_type != SinkType::File {
                continue;
            }
            let folder = sink_folder(spec, &graph.base_dir)
                .map_err(|e| sink_setup_failure(graph, n, e.to_string()))?;
            let states: Option<Vec<Vec<u8>>> =
                restore.map(|r| r.operator_states(&node.uid).concat());
            first_parts[n] = file_sink::recover(&folder, states.as_deref())
                .map_err(|e| sink_setup_failure(graph, n, e))?;
        }
    }
    let attempt = Attempt {
        state_dir: graph.config.backend.rocksdb_dir.join(job_id),
        hub: hub.clone(),
        restore,
        first_parts,
    };
    let metrics: Vec<Vec<Arc<TaskMetrics>>> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(n, _)| {
            plans
                .iter()
                .filter(|p| p.node == n)
                .map(|p| p.metrics.clone())
                .collect()
        })
        .collect();
    control.update_live(|l| l.metrics = metrics.clone());
    let first_failure: Mutex<Option<JobError>> = Mutex::new(None);
    let user_counters: Mutex<Vec<Vec<(String, u64)>>> =
        Mutex::new(vec![Vec::new(); graph.nodes.len()]);
    let sink_folders: Vec<Option<std::path::PathBuf>> = graph
        .nodes
        .iter()
        .map(|n| match &n.kind {
            NodeKind::Sink(spec) if spec.sink_type == SinkType::File => {
                sink_folder(spec, &graph.base_dir).ok()
            }
            _ => None,
        })
        .collect();
    let committer = |n: usize, states: &[Vec<u8>]| -> Result<(), String> {
        match sink_folders.get(n).and_then(Option::as_ref) {
            Some(folder) => file_sink::commit(folder, states),
            None => Ok(()),
        }
    };
    let cp_config = &graph.config.checkpoint;
    let publish = |stats: &CheckpointStats, path: &str| {
        control.update_live(|l| {
            l.completed_count += 1;
            l.checkpoints.push(stats.clone());
            if l.checkpoints.len() > HISTORY_KEPT {
                l.checkpoints.remove(0);
            }
            l.last_checkpoint_path = Some(path.to_owned());
        });
    };
    let publish_failure = |failed: &FailedCheckpoint| {
        control.update_live(|l| {
            l.failed_count += 1;
            l.failed_checkpoints.push(failed.clone());
            if l.failed_checkpoints.len() > FAILED_KEPT {
                l.failed_checkpoints.remove(0);
            }
        });
    };
    if let Some(r) = restore {
        let restored = RestoredCheckpoint {
            id: r.metadata.checkpoint_id,
            external_path: r.path.clone(),
            restore_timestamp: epoch_ms(),
            kind: r.metadata.kind.clone(),
        };
        control.update_live(|l| {
            l.restored = Some(restored);
            l.restored_count += 1;
        });
    }
    let mut coordinator = checkpoints.map(|(storage, job_id, completed)| {
        Coordinator::new(
            graph, cp_config, storage, job_id, &committer, completed, *next_id,
        )
        .on_complete(&publish)
        .on_failure(&publish_failure)
        .manual_trigger(&control.checkpoint_requested)
    });

    std::thread::scope(|scope| {
        let (stop_progress, progress_stopped) = crossbeam_channel::bounded::<()>(0);
        if options.progress && !graph.config.progress_interval.is_zero() {
            let metrics = &metrics;
            scope.spawn(move || {
                progress::report(
                    graph,
                    metrics,
                    graph.config.progress_interval,
                    &progress_stopped,
                    started,
                )
            });
        }
        let coordinator_thread = match (coordinator.take(), hub.as_ref(), hub_rx) {
            (Some(mut c), Some(hub), Some(rx)) => {
                let failure = &first_failure;
                Some(scope.spawn(move || {
                    let r = c.run(hub, &rx, &|| control.is_stopping());
                    if let Err(e) = &r {
                        control.failed.store(true, Ordering::SeqCst);
                        let mut first = failure.lock().unwrap_or_else(|p| p.into_inner());
                        if first.as_ref().is_none_or(JobError::is_secondary) {
                            *first = Some(JobError::Checkpoint(e.clone()));
                        }
                    }
                    c
                }))
            }
            _ => None,
        };
        let mut handles = Vec::new();
        for plan in plans.into_iter().filter(|p| !p.chained) {
            let node = &graph.nodes[plan.node];
            let component = components[plan.node].as_ref();
            let (failure, counters, attempt) = (&first_failure, &user_counters, &attempt);
            let name = format!("{}[{}]", node.id, plan.subtask + 1);
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || {
                    let (head, subtask) = (plan.node, plan.subtask);
                    let result =
                        run_task(graph, plan, sandbox, component, control, counters, attempt);
                    if let Err(cause) = result {
                        // A chained sink's failure belongs to the sink.
                        let (n, cause) = match cause {
                            TaskFailure::Output(OutputError::Chained { node, failure }) => {
                                (node, *failure)
                            }
                            other => (head, other),
                        };
                        control.failed.store(true, Ordering::SeqCst);
                        let mut first = failure.lock().unwrap_or_else(|p| p.into_inner());
                        let replace = match &*first {
                            None => true,
                            Some(JobError::Task { cause: c, .. }) => {
                                c.is_secondary() && !cause.is_secondary()
                            }
                            Some(_) => false,
                        };
                        if replace {
                            let node = &graph.nodes[n];
                            *first = Some(JobError::Task {
                                kind: match node.kind {
                                    NodeKind::Source(_) => "source",
                                    NodeKind::Sink(_) => "sink",
                                    _ => "operator",
                                },
                                node: node.id.clone(),
                                uid: node.uid.clone(),
                                subtask,
                                parallelism: node.parallelism,
                                cause: Box::new(cause),
                            });
                        }
                    }
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    control.failed.store(true, Ordering::SeqCst);
                    let mut first = first_failure.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert(JobError::Sandbox(crate::sandbox::SandboxError::Setup(
                        format!("cannot start a task thread: {e}"),
                    )));
                }
            }
        }
        for h in handles {
            if h.join().is_err() {
                control.failed.store(true, Ordering::SeqCst);
                let mut first = first_failure.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(JobError::Sandbox(crate::sandbox::SandboxError::Setup(
                    "a task thread panicked (a bug in Weir)".into(),
                )));
            }
        }
        if let Some(hub) = &hub {
            hub.close();
        }
        if let Some(t) = coordinator_thread {
            match t.join() {
                Ok(c) => coordinator = Some(c),
                Err(_) => {
                    let mut first = first_failure.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert(JobError::Sandbox(crate::sandbox::SandboxError::Setup(
                        "the checkpoint coordinator panicked (a bug in Weir)".into(),
                    )));
                }
            }
        }
        drop(stop_progress);
    });

    let failure = first_failure
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = coordinator.as_mut() {
        if failure.is_none()
            && !control.cancelled.load(Ordering::SeqCst)
            && let Some(hub) = &hub
        {
            c.finish(hub)?;
        }
        *next_id = c.next_id();
        history.extend_from_slice(c.history());
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if control.cancelled.load(Ordering::SeqCst) {
        return Err(JobError::Cancelled);
    }
    let counters = user_counters
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(JobSummary::new(
        graph,
        &metrics,
        counters,
        started,
        first_sink_record(graph, &metrics),
    ))
}

fn sink_setup_failure(graph: &JobGraph, n: usize, message: String) -> JobError {
    let node = &graph.nodes[n];
    JobError::Task {
        kind: "sink",
        node: node.id.clone(),
        uid: node.uid.clone(),
        subtask: 0,
        parallelism: node.parallelism,
        cause: Box::new(TaskFailure::Sink(crate::sink::SinkError(message))),
    }
}

/// Whether `edge` leads to a sink that can run in its upstream's thread: a
/// forward edge into a sink with no other input.
fn is_chainable(graph: &JobGraph, edge: &crate::graph::Edge) -> bool {
    edge.partition == Partitioning::Forward
        && matches!(graph.nodes[edge.to].kind, NodeKind::Sink(_))
        && graph.inputs(edge.to).count() == 1
}

/// Channels for every edge, and one plan per subtask.
fn plan_tasks(graph: &JobGraph) -> Vec<TaskPlan> {
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
                    input_sides: Vec::new(),
                    outputs: Vec::new(),
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
                    plans[edge.to][i].inputs.push(rx);
                    plans[edge.to][i].input_sides.push(edge.input);
                    EdgeOutput::Forward(tx)
                }
                Partitioning::Rebalance | Partitioning::Hash => {
                    let mut senders = Vec::with_capacity(pb as usize);
                    for downstream in plans[edge.to].iter_mut() {
                        let (tx, rx) = channel(cap, sender_metrics.clone());
                        downstream.inputs.push(rx);
                        downstream.input_sides.push(edge.input);
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
            plans[edge.from][i].outputs.push(out);
        }
    }
    plans.into_iter().flatten().collect()
}

fn run_task(
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
                    .join(crate::checkpoint::coordinator::keyed_file_name(
                        n, &node.uid, subtask,
                    ))
                    .with_extension("db");
                let handles = match attempt.restore {
                    Some(r) => r
                        .incremental_handles(&node.uid, keyed_range())
                        .map_err(|e| TaskFailure::Restore(e.to_string()))?,
                    None => Vec::new(),
                };
                let mut backend =
                    crate::state::open_backend(&graph.config, &dir, keyed_range(), &handles)
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

/// When the first element reached any sink.
fn first_sink_record(graph: &JobGraph, metrics: &[Vec<Arc<TaskMetrics>>]) -> Option<Instant> {
    graph
        .nodes
        .iter()
        .zip(metrics)
        .filter(|(n, _)| matches!(n.kind, NodeKind::Sink(_)))
        .flat_map(|(_, m)| m.iter().filter_map(|t| t.first_record()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{CheckpointMetadata, OperatorSnapshot, SubtaskState};
    use crate::checkpoint::storage::CheckpointDir;
    use crate::keygroup::KeyGroupRange;
    use crate::state::snapshot;

    /// A completed checkpoint `id` in `dir` with one keyed state file.
    fn checkpoint(dir: &std::path::Path, id: u64) -> CompletedCheckpoint {
        let chk = dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(&chk).expect("mkdir");
        let backend = HashMapBackend::new(KeyGroupRange { start: 0, end: 127 });
        let snap = snapshot::encode(&backend, &TimerService::default(), 128);
        std::fs::write(chk.join("s.keyed"), &snap.bytes).expect("write");
        let metadata = CheckpointMetadata {
            job_id: "j".into(),
            job_name: "j".into(),
            checkpoint_id: id,
            kind: "checkpoint".into(),
            trigger_timestamp: 0,
            completed_timestamp: 0,
            duration_ms: 0.0,
            state_size: 0,
            checkpointed_size: 0,
            max_parallelism: 128,
            mode: "EXACTLY_ONCE".into(),
            backend: "hashmap".into(),
            is_final: false,
            operators: vec![OperatorSnapshot {
                uid: "count".into(),
                node: "count".into(),
                parallelism: 1,
                subtasks: vec![SubtaskState {
                    subtask: 0,
                    keyed: Some(snap.handle("s.keyed".into())),
                    incremental: None,
                    operator_state: Vec::new(),
                    sync_ms: 0.0,
                    async_ms: 0.0,
                    alignment_ms: 0.0,
                }],
            }],
        };
        CompletedCheckpoint {
            metadata,
            path: chk.display().to_string(),
            reader: Arc::new(CheckpointDir(chk)),
        }
    }

    #[test]
    fn automatic_recovery_falls_back_past_a_damaged_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let completed = Mutex::new(vec![checkpoint(dir.path(), 7), checkpoint(dir.path(), 8)]);
        let chosen = latest_valid(&completed).expect("a valid checkpoint");
        assert_eq!(chosen.metadata.checkpoint_id, 8);
        // Damage the newest: its state file goes missing.
        std::fs::remove_file(dir.path().join("chk-8/s.keyed")).expect("remove");
        let chosen = latest_valid(&completed).expect("falls back");
        assert_eq!(chosen.metadata.checkpoint_id, 7);
        std::fs::write(dir.path().join("chk-7/s.keyed"), b"junk").expect("damage");
        assert!(latest_valid(&completed).is_none());
    }
}
