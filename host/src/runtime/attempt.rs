//! One attempt of a job: its tasks' threads, the checkpoint coordinator
//! beside them, and the first failure among them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::control::RunOptions;
use super::control::{JobControl, RestoredCheckpoint};
use super::error::OutputError;
use super::error::{JobError, TaskFailure};
use super::open::{Attempt, AttemptSink};
use super::plan::{TaskPlan, plan_tasks};
use super::progress::{self, JobSummary};
use super::regions::Regions;
use super::restart::RestartPolicy;
use crate::checkpoint::coordinator::{CompletedCheckpoint, Coordinator};
use crate::checkpoint::hub::{CheckpointHub, TaskMessage};
use crate::checkpoint::layout::sink_copy_prefix;
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::stats::CheckpointStats;
use crate::checkpoint::storage::CheckpointStorage;
use crate::config::FailoverStrategy;
use crate::metrics::TaskMetrics;
use crate::sandbox::{HANDLER_INTERFACE, LoadedComponent, Sandbox, SandboxError};
use crate::sink::{Copies, SinkError, is_missing_precommitted, transactional};
use crate::spec::graph::{JobGraph, NodeKind};

/// A job's checkpoint storage and its completed checkpoints, shared by its
/// attempts.
#[derive(Clone, Copy)]
pub(super) struct JobCheckpoints<'a> {
    /// Where checkpoints go.
    pub(super) storage: &'a CheckpointStorage,
    /// The retained completed checkpoints, oldest first.
    pub(super) completed: &'a Mutex<Vec<CompletedCheckpoint>>,
}

/// What the restart loop hands every attempt, and what attempts carry over
/// to the next (checkpoint ids and history).
pub(super) struct JobRun<'a> {
    pub(super) graph: &'a JobGraph,
    pub(super) sandbox: &'a Sandbox,
    pub(super) components: &'a [Option<LoadedComponent>],
    pub(super) options: &'a RunOptions,
    pub(super) control: &'a JobControl,
    pub(super) job_id: &'a str,
    pub(super) checkpoints: Option<JobCheckpoints<'a>>,
    /// When the job started (for progress lines and the summary).
    pub(super) started: Instant,
    /// The id the next checkpoint gets.
    pub(super) next_id: u64,
    /// Every checkpoint completed so far, over all attempts.
    pub(super) history: Vec<CheckpointStats>,
    /// The restart strategy's state: whole-job restarts and region
    /// failovers both count against it, as in Flink.
    pub(super) policy: Mutex<RestartPolicy>,
    /// Restarts so far, of the job or of a region.
    pub(super) restarts: std::sync::atomic::AtomicU32,
    /// Snapshots whose restore failed: never tried again.
    pub(super) unusable: std::collections::BTreeSet<u64>,
}

impl JobRun<'_> {
    /// The restart policy.
    pub(super) fn lock_policy(&self) -> std::sync::MutexGuard<'_, RestartPolicy> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The SHA-256 of each node's component (WebAssembly operators).
    fn component_hashes(&self) -> Vec<Option<String>> {
        self.components
            .iter()
            .map(|c| c.as_ref().map(|c| c.hash.clone()))
            .collect()
    }

    /// After the tasks of an attempt ended: completes the final checkpoint
    /// if the input ended (not after a failure, a cancel or a stop), and
    /// carries the checkpoint ids and history over to the next attempt.
    fn conclude(
        &mut self,
        c: &mut Coordinator<'_>,
        hub: Option<&CheckpointHub>,
        succeeded: bool,
    ) -> Result<(), JobError> {
        // Whatever was in progress is over with the attempt.
        self.control
            .checkpoints_in_progress
            .store(0, Ordering::Relaxed);
        if succeeded
            && !self.control.cancelled.load(Ordering::SeqCst)
            && let Some(hub) = hub
        {
            c.finish(hub)?;
        }
        self.next_id = c.next_id();
        self.history.extend_from_slice(c.history());
        Ok(())
    }
}

/// The first failure of an attempt: a task's own failure wins over one that
/// only follows from it (a task that saw its neighbour stop).
pub(super) struct FirstFailure<'a> {
    graph: &'a JobGraph,
    control: &'a JobControl,
    first: Mutex<Option<JobError>>,
}

impl FirstFailure<'_> {
    /// Records `error` unless a failure is recorded already.
    pub(super) fn record(&self, error: JobError) {
        self.control.failed.store(true, Ordering::SeqCst);
        self.lock().get_or_insert(error);
    }

    /// Records the checkpoint coordinator's failure unless a primary one
    /// is recorded already.
    fn record_checkpoint(&self, error: JobError) {
        self.control.failed.store(true, Ordering::SeqCst);
        let mut first = self.lock();
        if first.as_ref().is_none_or(JobError::is_secondary) {
            *first = Some(error);
        }
    }

    /// Records the failure of subtask `subtask` of node `head` (or of a
    /// subtask chained into it).
    pub(super) fn record_task(&self, head: usize, subtask: u32, cause: TaskFailure) {
        // A chained subtask's failure belongs to its own node.
        let (n, cause) = match cause {
            TaskFailure::Output(OutputError::Chained { node, failure }) => (node, *failure),
            other => (head, other),
        };
        self.control.failed.store(true, Ordering::SeqCst);
        let mut first = self.lock();
        let replace = match &*first {
            None => true,
            Some(JobError::Task { cause: c, .. }) => c.is_secondary() && !cause.is_secondary(),
            Some(_) => false,
        };
        if replace {
            *first = Some(task_error(self.graph, n, subtask, cause));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<JobError>> {
        self.first.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(self) -> Option<JobError> {
        self.first.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// The job error of a failure in subtask `subtask` of node `n`, or of the
/// subtask chained into it that failed (which it names).
pub(super) fn task_error(graph: &JobGraph, n: usize, subtask: u32, cause: TaskFailure) -> JobError {
    let (n, cause) = match cause {
        TaskFailure::Output(OutputError::Chained { node, failure }) => (node, *failure),
        other => (n, other),
    };
    let node = &graph.nodes[n];
    JobError::Task {
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
    }
}

/// Transactional sinks, with checkpoints on: commit what the restored
/// checkpoint pre-committed and remove everything else, before any task
/// starts.
pub(super) fn recover_sinks(
    graph: &JobGraph,
    restore: Option<&RestorePoint>,
    checkpointing: bool,
) -> Result<Vec<Option<AttemptSink>>, JobError> {
    let mut sinks = Vec::with_capacity(graph.nodes.len());
    for (n, node) in graph.nodes.iter().enumerate() {
        let NodeKind::Sink(spec) = &node.kind else {
            sinks.push(None);
            continue;
        };
        if !checkpointing {
            sinks.push(None);
            continue;
        }
        let failed = |e: SinkError| task_error(graph, n, 0, TaskFailure::Sink(e));
        let Some(sink) = transactional(spec, &graph.base_dir, graph.config.files_root.as_deref())
            .map_err(failed)?
        else {
            sinks.push(None);
            continue;
        };
        let states: Option<Vec<Vec<u8>>> = restore.map(|r| r.operator_states(&node.uid).concat());
        // A savepoint's own copies of the files it names.
        let folder = match restore {
            Some(r) => r.reader.folder().map_err(|e| {
                task_error(graph, n, 0, TaskFailure::restore(r, format!("sink: {e}")))
            })?,
            None => None,
        };
        let prefix = sink_copy_prefix(&node.uid);
        let copies = folder.as_deref().map(|dir| Copies {
            dir,
            prefix: &prefix,
        });
        // What the snapshot names cannot be recovered (a pre-committed file
        // is missing): a restore failure, which no restart from it fixes.
        let first =
            sink.recover(states.as_deref(), copies.as_ref())
                .map_err(|e| match restore {
                    Some(r) if is_missing_precommitted(&e) => {
                        task_error(graph, n, 0, TaskFailure::restore(r, format!("sink: {e}")))
                    }
                    _ => failed(e),
                })?;
        sinks.push(Some((sink, first)));
    }
    Ok(sinks)
}

/// Per node, per subtask: the counters of the attempt's tasks.
fn node_metrics(graph: &JobGraph, plans: &[TaskPlan]) -> Vec<Vec<Arc<TaskMetrics>>> {
    let all: Vec<&TaskPlan> = plans.iter().flat_map(TaskPlan::with_chained).collect();
    (0..graph.nodes.len())
        .map(|n| {
            let mut tasks: Vec<&TaskPlan> = all.iter().copied().filter(|p| p.node == n).collect();
            tasks.sort_by_key(|p| p.subtask);
            tasks.into_iter().map(|p| p.metrics.clone()).collect()
        })
        .collect()
}

/// One run of the job's tasks, from `restore` if given.
pub(super) fn run_attempt(
    job: &mut JobRun<'_>,
    restore: Option<&RestorePoint>,
) -> Result<JobSummary, JobError> {
    let (graph, control) = (job.graph, job.control);
    let plans = plan_tasks(graph);
    let mode = graph.config.checkpoint.mode;
    let (hub, hub_rx) = job
        .checkpoints
        .map(|_| CheckpointHub::new(mode, graph.config.checkpoint.unaligned))
        .unzip();
    // Published first, so that a restore failure is known to be this
    // snapshot's.
    if let Some(r) = restore {
        control.publish_restored(RestoredCheckpoint::now(r));
    }
    let attempt = Attempt {
        state_dir: graph.config.backend.rocksdb_dir.join(job.job_id),
        hub: hub.clone(),
        restore,
        sinks: recover_sinks(graph, restore, hub.is_some())?,
        native: job.options.native.clone(),
    };
    let metrics = node_metrics(graph, &plans);
    control.update_live(|l| l.metrics = metrics.clone());
    let failures = FirstFailure {
        graph,
        control,
        first: Mutex::new(None),
    };
    let user_counters = Mutex::new(vec![Vec::new(); graph.nodes.len()]);
    let committer = |n: usize, states: &[Vec<u8>]| attempt.commit(n, states);
    let preserver = |n, states: &[_], dir: &_| attempt.preserve(graph, n, states, dir);
    let publish = |stats: &CheckpointStats, path: &str| control.publish_completed(stats, path);
    let publish_failure = |f: &_| control.publish_failed(f);
    let stop = || control.stop_after_savepoint();
    let mut coordinator = job.checkpoints.map(|c| {
        Coordinator::new(
            graph,
            &graph.config.checkpoint,
            c.storage,
            job.job_id,
            &committer,
            c.completed,
            job.next_id,
        )
        .on_complete(&publish)
        .on_failure(&publish_failure)
        .manual_trigger(&control.checkpoint_requested)
        .in_progress(&control.checkpoints_in_progress)
        .components(job.component_hashes(), HANDLER_INTERFACE)
        .savepoints(&control.savepoint_rx, &stop, &preserver)
    });
    coordinator = Tasks {
        job: &*job,
        attempt: &attempt,
        failures: &failures,
        counters: &user_counters,
    }
    .run(plans, coordinator, hub.as_deref(), hub_rx);
    // A stop with savepoint stopped the tasks on purpose: what they
    // reported on the way out is no failure.
    let stopped = control.stopped.load(Ordering::SeqCst);
    let failure = failures.take().filter(|_| !stopped);
    if let Some(c) = coordinator.as_mut() {
        job.conclude(c, hub.as_deref(), failure.is_none())?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if control.cancelled.load(Ordering::SeqCst) && !stopped {
        return Err(JobError::Cancelled);
    }
    Ok(summarize(job, control, user_counters))
}

/// The summary of an attempt that ended well.
fn summarize(
    job: &JobRun<'_>,
    control: &JobControl,
    user_counters: Mutex<Vec<Vec<(String, u64)>>>,
) -> JobSummary {
    let counters = user_counters
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    // A region failover replaced the counters of the subtasks it restarted.
    let metrics = control.live().metrics;
    let first_record = first_sink_record(job.graph, &metrics);
    JobSummary::new(job.graph, &metrics, counters, job.started, first_record)
}

/// A failure of Weir itself (a thread that could not start or panicked).
fn internal(what: &str) -> JobError {
    JobError::Sandbox(SandboxError::Setup(format!("{what} (a bug in Weir)")))
}

/// What the threads of one attempt share.
pub(super) struct Tasks<'j, 'a> {
    pub(super) job: &'j JobRun<'a>,
    pub(super) attempt: &'j Attempt<'j>,
    pub(super) failures: &'j FirstFailure<'j>,
    pub(super) counters: &'j Mutex<Vec<Vec<(String, u64)>>>,
}

impl<'j> Tasks<'j, '_> {
    /// Runs the attempt's threads (progress lines, the coordinator, the
    /// tasks) until every task has ended; gives the coordinator back.
    fn run<'c>(
        &self,
        plans: Vec<TaskPlan>,
        mut coordinator: Option<Coordinator<'c>>,
        hub: Option<&CheckpointHub>,
        hub_rx: Option<Receiver<TaskMessage>>,
    ) -> Option<Coordinator<'c>> {
        let graph = self.job.graph;
        std::thread::scope(|scope| {
            let (stop_progress, progress_stopped) = crossbeam_channel::bounded::<()>(0);
            if self.job.options.progress && !graph.config.progress_interval.is_zero() {
                let (started, control) = (self.job.started, self.job.control);
                scope.spawn(move || {
                    let interval = graph.config.progress_interval;
                    let current = || control.live().metrics;
                    progress::report(graph, &current, interval, &progress_stopped, started)
                });
            }
            let coordinator_thread = match (coordinator.take(), hub, hub_rx) {
                (Some(c), Some(hub), Some(rx)) => Some(self.spawn_coordinator(scope, c, hub, rx)),
                _ => None,
            };
            self.spawn_and_join(scope, plans);
            if let Some(hub) = hub {
                hub.close();
            }
            if let Some(t) = coordinator_thread {
                match t.join() {
                    Ok(c) => coordinator = Some(c),
                    Err(_) => self
                        .failures
                        .record(internal("the checkpoint coordinator panicked")),
                }
            }
            drop(stop_progress);
        });
        coordinator
    }

    /// Runs the coordinator in its own thread; a coordinator failure fails
    /// the attempt.
    fn spawn_coordinator<'s, 'e, 'c>(
        &self,
        scope: &'s Scope<'s, 'e>,
        mut c: Coordinator<'c>,
        hub: &'s CheckpointHub,
        rx: Receiver<TaskMessage>,
    ) -> ScopedJoinHandle<'s, Coordinator<'c>>
    where
        'j: 's,
        'c: 's,
    {
        let (control, failures) = (self.job.control, self.failures);
        scope.spawn(move || {
            let r = c.run(hub, &rx, &|| control.is_stopping());
            if let Err(e) = r {
                failures.record_checkpoint(JobError::Checkpoint(e));
            }
            c
        })
    }

    /// Runs the tasks to their end (see [`super::failover::run_tasks`]),
    /// restarting a failover region on its own when the job has more than
    /// one and the strategy is `region`.
    fn spawn_and_join<'s, 'e>(&'s self, scope: &'s Scope<'s, 'e>, plans: Vec<TaskPlan>)
    where
        'j: 's,
    {
        let graph = self.job.graph;
        let whole = graph.nodes.iter().any(|n| match &n.kind {
            NodeKind::Sink(spec) => crate::sink::needs_whole_failover(spec),
            _ => false,
        });
        let regions = (graph.config.failover == FailoverStrategy::Region && !whole)
            .then(|| Regions::of(graph))
            .filter(|r| r.count() > 1);
        super::failover::run_tasks(self, scope, plans, regions.as_ref());
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
