//! Runs a [`JobGraph`] in this process.
//!
//! Each subtask of each node is a thread. Subtasks talk only through
//! bounded [`crate::channel`]s, one per (upstream subtask, downstream
//! subtask) pair, so a network channel could stand in for one later. An
//! operator subtask owns its guest instance and, on a keyed input, a state
//! backend for its key-group range.
//!
//! A failing subtask stops the job: its channels close, upstream and
//! downstream subtasks see that and stop, and [`run_job`] returns the first
//! failure with the node, uid and subtask it happened in. Nothing a guest
//! does brings the process down.
//!
//! Not here yet: checkpoints, restarts (the next issue builds them on the
//! barrier events the channels already carry).

mod error;
mod operator;
mod output;
mod progress;
mod task;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use error::{JobError, TaskFailure};
pub use operator::{NativeCount, StreamOperator};
pub use output::{Output, OutputError};
pub use progress::{JobSummary, NodeSummary};

use self::operator::{SinkTask, WasmTask};
use self::output::{ChainedSink, EdgeOutput};
use crate::channel::{ChannelReceiver, channel};
use crate::graph::{JobGraph, NativeOperator, NodeKind};
use crate::keygroup::KeyGroupRange;
use crate::metrics::TaskMetrics;
use crate::sandbox::{LoadedComponent, Sandbox};
use crate::sink::open_sink;
use crate::source::open_source;
use crate::spec::Partitioning;
use crate::state::HashMapBackend;
use weir_wire::BatchBuilder;

/// Lets other threads stop a running job, and records job-wide moments.
#[derive(Debug, Default)]
pub struct JobControl {
    cancelled: AtomicBool,
    failed: AtomicBool,
}

impl JobControl {
    /// Asks the job to stop; [`run_job`] then returns [`JobError::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
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
}

struct TaskPlan {
    node: usize,
    subtask: u32,
    inputs: Vec<ChannelReceiver>,
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

/// Runs a job to its end (bounded sources) or until `control` cancels it.
pub fn run_job(
    graph: &JobGraph,
    options: &RunOptions,
    control: &JobControl,
) -> Result<JobSummary, JobError> {
    let started = Instant::now();
    let sandbox = Sandbox::new(&graph.config).map_err(JobError::Sandbox)?;
    let components = load_components(graph, &sandbox)?;
    let plans = plan_tasks(graph);
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
    let first_failure: Mutex<Option<JobError>> = Mutex::new(None);
    let user_counters: Mutex<Vec<Vec<(String, u64)>>> =
        Mutex::new(vec![Vec::new(); graph.nodes.len()]);

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
        let mut handles = Vec::new();
        for plan in plans.into_iter().filter(|p| !p.chained) {
            let node = &graph.nodes[plan.node];
            let component = components[plan.node].as_ref();
            let (sandbox, failure, counters) = (&sandbox, &first_failure, &user_counters);
            let name = format!("{}[{}]", node.id, plan.subtask + 1);
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || {
                    let (head, subtask) = (plan.node, plan.subtask);
                    let result = run_task(graph, plan, sandbox, component, control, counters);
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
        drop(stop_progress);
    });

    if let Some(e) = first_failure
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        if control.cancelled.load(Ordering::SeqCst)
            && matches!(&e, JobError::Task { cause, .. } if cause.is_secondary())
        {
            return Err(JobError::Cancelled);
        }
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
                    EdgeOutput::Forward(tx)
                }
                Partitioning::Rebalance | Partitioning::Hash => {
                    let mut senders = Vec::with_capacity(pb as usize);
                    for downstream in plans[edge.to].iter_mut() {
                        let (tx, rx) = channel(cap, sender_metrics.clone());
                        downstream.inputs.push(rx);
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
) -> Result<(), TaskFailure> {
    let node = &graph.nodes[plan.node];
    let TaskPlan {
        node: n,
        subtask,
        inputs,
        mut outputs,
        metrics,
        chained_sinks,
        chained: _,
    } = plan;
    for (sink_node, sink_metrics) in chained_sinks {
        let NodeKind::Sink(spec) = &graph.nodes[sink_node].kind else {
            return Err(TaskFailure::Internal("only sinks are chained".into()));
        };
        let writer = open_sink(spec, subtask, &graph.base_dir).map_err(|e| {
            TaskFailure::Output(OutputError::Chained {
                node: sink_node,
                failure: Box::new(e.into()),
            })
        })?;
        outputs.push(EdgeOutput::Chained(ChainedSink {
            node: sink_node,
            writer,
            metrics: sink_metrics,
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
    match &node.kind {
        NodeKind::Source(spec) => {
            let mut reader = open_source(spec, subtask, node.parallelism, &graph.base_dir)?;
            task::run_source(
                reader.as_mut(),
                &mut out,
                graph.config.batch_size,
                spec.out_of_orderness_ms,
                control,
            )
        }
        NodeKind::Sink(spec) => {
            let writer = open_sink(spec, subtask, &graph.base_dir)?;
            let mut sink = SinkTask { writer };
            task::run_operator(&mut sink, &inputs, &mut out, &metrics, true)
        }
        NodeKind::Native(NativeOperator::Count) => {
            let mut op =
                NativeCount::new(HashMapBackend::new(keyed_range()), graph.max_parallelism)?;
            task::run_operator(&mut op, &inputs, &mut out, &metrics, false)
        }
        NodeKind::Operator { config, .. } => {
            let component = component
                .ok_or_else(|| TaskFailure::Internal("operator without a component".into()))?;
            let keyed = graph.is_keyed(n).then(|| {
                let limit = usize::try_from(graph.config.state_max_bytes).unwrap_or(usize::MAX);
                let backend: Box<dyn crate::state::KeyedStateBackend> =
                    Box::new(HashMapBackend::with_limit(keyed_range(), limit));
                (backend, graph.max_parallelism)
            });
            let label = format!("{}[{}/{}]", node.uid, subtask + 1, node.parallelism);
            let guest = sandbox.instantiate(component, label, keyed)?;
            let mut op = WasmTask {
                guest,
                config: config.clone(),
            };
            let result = task::run_operator(&mut op, &inputs, &mut out, &metrics, false);
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
