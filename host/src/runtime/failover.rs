//! The task threads of an attempt, and region failover inside it (`jobmanager.execution.failover-strategy:
//! region`, the default). When a job has more than one failover region
//! (see [`Regions`]: a job whose edges are all forward has one per parallel
//! slice), a failed task restarts only its region: once every task of the
//! region has ended, the restart strategy decides (region restarts count
//! as restarts, as in Flink), checkpoints in progress are declined, the
//! region's sink subtasks are recovered alone, and its tasks start again
//! from the latest completed checkpoint, while the other regions run on
//! without rolling back. Checkpoints stay global.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::Scope;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::attempt::{JobRun, Tasks, task_error};
use super::error::{JobError, TaskFailure};
use super::job::wait_unless_cancelled;
use super::open::{Attempt, AttemptSink, Opener, run_task};
use super::plan::{TaskPlan, plan_tasks};
use super::regions::Regions;
use super::restart::RestartDecision;
use super::restore_point::latest_valid;
use crate::checkpoint::hub::TaskMessage;
use crate::checkpoint::restore::RestorePoint;
use crate::sandbox::SandboxError;
use crate::sink::{is_missing_precommitted, transactional};
use crate::spec::graph::{JobGraph, NodeKind};

/// How one task thread ended: its node, subtask and result.
type Ended = (usize, u32, Result<(), TaskFailure>);

/// What a restarted region's tasks start from, shared by its threads.
struct RegionStart {
    restore: Option<RestorePoint>,
    /// (sink node, subtask, first transaction number) of the region's
    /// recovered sink subtasks.
    firsts: Vec<(usize, u32, u64)>,
}

/// Reports how a task thread ended when dropped, also if it panicked, so
/// that the region's count of live tasks always comes down.
struct Report {
    done: Sender<Ended>,
    node: usize,
    subtask: u32,
    result: Option<Result<(), TaskFailure>>,
}

impl Report {
    /// Reports `result` (by dropping the report).
    fn end(mut self, result: Result<(), TaskFailure>) {
        self.result = Some(result);
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or_else(|| {
            Err(TaskFailure::Internal(
                "a task thread panicked (a bug in Weir)".into(),
            ))
        });
        let _ = self.done.send((self.node, self.subtask, result));
    }
}

/// Runs the attempt's tasks (a thread each, chained subtasks inside
/// their upstream's) until every one has ended for good. With `regions`, a
/// failover region is restarted on its own after a failure; without, the
/// first failure is recorded at once and fails the attempt as a whole.
pub(super) fn run_tasks<'s, 'e, 'j: 's, 'a>(
    tasks: &'s Tasks<'j, 'a>,
    scope: &'s Scope<'s, 'e>,
    plans: Vec<TaskPlan>,
    regions: Option<&Regions>,
) {
    let region_of = |n: usize, s: u32| regions.map_or(0, |r| r.region_of(n, s));
    let count = regions.map_or(1, Regions::count);
    let (done, ended) = crossbeam_channel::unbounded::<Ended>();
    let mut live = vec![0usize; count];
    for plan in plans {
        live[region_of(plan.node, plan.subtask)] += 1;
        spawn(tasks, scope, plan, None, &done);
    }
    let mut failing: Vec<Option<(usize, u32, TaskFailure)>> = (0..count).map(|_| None).collect();
    while live.iter().sum::<usize>() > 0 {
        let Ok((node, subtask, result)) = ended.recv() else {
            break;
        };
        let r = region_of(node, subtask);
        live[r] -= 1;
        if let Err(cause) = result {
            if regions.is_none() || tasks.job.control.is_stopping() {
                tasks.failures.record_task(node, subtask, cause);
            } else if failing[r]
                .as_ref()
                .is_none_or(|(_, _, c)| c.is_secondary() && !cause.is_secondary())
            {
                if failing[r].is_none() {
                    // At once: a source of the region waiting for the
                    // outcome of a stop with savepoint then learns it
                    // failed, and ends.
                    decline_pending(tasks);
                }
                // The region's first own failure wins over the
                // disconnections that follow from it.
                failing[r] = Some((node, subtask, cause));
            }
        }
        if let (0, Some(regions)) = (live[r], regions)
            && let Some((n, s, cause)) = failing[r].take()
        {
            live[r] += restart_region(tasks, scope, regions, r, (n, s, cause), &done);
        }
    }
}

/// Starts a thread for `plan`, from `start` for a restarted region; its
/// end is reported on `done`.
fn spawn<'s, 'e, 'j: 's, 'a>(
    tasks: &'s Tasks<'j, 'a>,
    scope: &'s Scope<'s, 'e>,
    plan: TaskPlan,
    start: Option<Arc<RegionStart>>,
    done: &Sender<Ended>,
) {
    let job = tasks.job;
    let graph = job.graph;
    let (node, subtask) = (plan.node, plan.subtask);
    let name = format!("{}[{}]", graph.nodes[node].id, subtask + 1);
    let (base, counters) = (tasks.attempt, tasks.counters);
    let report = Report {
        done: done.clone(),
        node,
        subtask,
        result: None,
    };
    let spawned = std::thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, move || {
            fn opener<'b>(job: &'b JobRun<'_>, attempt: &'b Attempt<'b>) -> Opener<'b> {
                Opener {
                    graph: job.graph,
                    sandbox: job.sandbox,
                    components: job.components,
                    control: job.control,
                    attempt,
                }
            }
            // A panic is reported as this task's failure (the report's
            // drop), not carried to the scope, which would end the job.
            let run = std::panic::AssertUnwindSafe(|| match &start {
                None => run_task(&opener(job, base), plan, counters),
                Some(st) => {
                    let attempt = Attempt {
                        state_dir: base.state_dir.clone(),
                        hub: base.hub.clone(),
                        restore: st.restore.as_ref(),
                        sinks: region_sinks(graph, st, subtask),
                        native: base.native.clone(),
                    };
                    run_task(&opener(job, &attempt), plan, counters)
                }
            });
            if let Ok(r) = std::panic::catch_unwind(run) {
                report.end(r);
            }
        });
    if let Err(e) = spawned {
        tasks
            .failures
            .record(JobError::Sandbox(SandboxError::Setup(format!(
                "cannot start a task thread: {e}"
            ))));
    }
}

/// The transactional sinks a restarted region's subtask `subtask` writes
/// through, with the part numbers its recovery gave.
fn region_sinks(graph: &JobGraph, start: &RegionStart, subtask: u32) -> Vec<Option<AttemptSink>> {
    graph
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let NodeKind::Sink(spec) = &node.kind else {
                return None;
            };
            let first = start
                .firsts
                .iter()
                .find(|(sn, s, _)| *sn == n && *s == subtask)?
                .2;
            let sink = transactional(spec, &graph.base_dir, graph.config.files_root.as_deref())
                .ok()
                .flatten()?;
            Some((sink, first))
        })
        .collect()
}

/// Restarts region `r` after its failure `failed` (node, subtask, cause),
/// if the restart strategy allows; returns how many task threads it
/// started (0: the job fails, or was cancelled meanwhile). A restore
/// failure ends the attempt instead: the job's restart loop falls back to
/// an older checkpoint, which a region cannot.
fn restart_region<'s, 'e, 'j: 's, 'a>(
    tasks: &'s Tasks<'j, 'a>,
    scope: &'s Scope<'s, 'e>,
    regions: &Regions,
    r: usize,
    failed: (usize, u32, TaskFailure),
    done: &Sender<Ended>,
) -> usize {
    let job = tasks.job;
    let (graph, control) = (job.graph, job.control);
    let error = task_error(graph, failed.0, failed.1, failed.2);
    if control.is_stopping() || !error.is_restartable() || error.is_restore_failure() {
        tasks.failures.record(error);
        return 0;
    }
    let decision = job.lock_policy().on_failure(Instant::now());
    let delay = match decision {
        RestartDecision::Fail(why) => {
            tracing::error!("not restarting ({why}): {error}");
            tasks.failures.record(error);
            return 0;
        }
        RestartDecision::RestartAfter(delay) => delay,
    };
    let restarts = job.restarts.fetch_add(1, Ordering::SeqCst) + 1;
    settle_checkpoints(tasks);
    let from = job
        .checkpoints
        .and_then(|c| latest_valid(c.completed))
        .or_else(|| tasks.attempt.restore.cloned());
    let members = regions.members(r);
    let names: Vec<String> = members
        .iter()
        .map(|(n, s)| format!("{}[{s}]", graph.nodes[*n].id))
        .collect();
    let what = from.as_ref().map_or_else(
        || "from the beginning (no completed checkpoint)".to_owned(),
        |p| format!("from checkpoint {}", p.metadata.checkpoint_id),
    );
    tracing::warn!(
        "restart {restarts}: region {} in {} ms, {what}, after: {error}",
        names.join(", "),
        delay.as_millis()
    );
    let message = format!("{error} (region failover restarted {})", names.join(", "));
    control.publish_restart(restarts, message, from.as_ref(), Some(names));
    if wait_unless_cancelled(control, delay).is_err() || control.is_stopping() {
        return 0;
    }
    // (A sink that cannot recover has recorded the failure that ends the
    // job.)
    let Some(firsts) = recover_region_sinks(graph, members, from.as_ref(), tasks) else {
        return 0;
    };
    let start = Arc::new(RegionStart {
        restore: from,
        firsts,
    });
    let plans: Vec<TaskPlan> = plan_tasks(graph)
        .into_iter()
        .filter(|p| regions.region_of(p.node, p.subtask) == r)
        .collect();
    control.update_live(|l| {
        for p in plans.iter().flat_map(TaskPlan::with_chained) {
            if let Some(slot) = l
                .metrics
                .get_mut(p.node)
                .and_then(|m| m.get_mut(p.subtask as usize))
            {
                *slot = p.metrics.clone();
            }
        }
    });
    let mut started = 0;
    for plan in plans {
        spawn(tasks, scope, plan, Some(start.clone()), done);
        started += 1;
    }
    started
}

/// Declines the checkpoints in progress (none of them can complete without
/// the failed region) and waits until the coordinator has handled that and
/// everything before it, so that no checkpoint completes, or is still
/// being committed, after the restore point is chosen.
fn settle_checkpoints(tasks: &Tasks<'_, '_>) {
    let Some(hub) = tasks.attempt.hub.as_ref() else {
        return;
    };
    decline_pending(tasks);
    if !hub.sync(Duration::from_secs(30)) {
        tracing::warn!("the checkpoint coordinator did not answer within 30 s; restoring anyway");
    }
}

/// Declines the checkpoints (and savepoints) in progress: none of them can
/// complete without the failed region.
fn decline_pending(tasks: &Tasks<'_, '_>) {
    let Some(hub) = tasks.attempt.hub.as_ref() else {
        return;
    };
    if let Some(newest) = hub.poll_trigger(hub.last_completed()) {
        for id in hub.last_completed() + 1..=newest.id {
            hub.send(TaskMessage::Decline {
                id,
                reason: "a failover region restarts".into(),
            });
        }
    }
}

/// Recovers the region's transactional sink subtasks alone (the others
/// keep writing): `(node, subtask, first part number)` for each, or
/// `None` after recording the failure that ends the job.
fn recover_region_sinks(
    graph: &JobGraph,
    members: &[(usize, u32)],
    from: Option<&RestorePoint>,
    tasks: &Tasks<'_, '_>,
) -> Option<Vec<(usize, u32, u64)>> {
    let mut firsts = Vec::new();
    if tasks.attempt.hub.is_none() {
        // Without checkpoints sinks are not transactional: nothing to
        // recover (the region's output is at least once, as after a full
        // restart).
        return Some(firsts);
    }
    for &(n, s) in members {
        let NodeKind::Sink(spec) = &graph.nodes[n].kind else {
            continue;
        };
        let failed = |e| {
            tasks
                .failures
                .record(task_error(graph, n, s, TaskFailure::Sink(e)));
        };
        let sink = match transactional(spec, &graph.base_dir, graph.config.files_root.as_deref()) {
            Ok(Some(sink)) => sink,
            Ok(None) => continue,
            Err(e) => {
                failed(e);
                return None;
            }
        };
        let states = from.map(|p| p.operator_states(&graph.nodes[n].uid).concat());
        match sink.recover_subtask(s, states.as_deref()) {
            Ok(first) => firsts.push((n, s, first)),
            Err(e) => {
                // What the snapshot names cannot be recovered: a restore
                // failure, which no restart from it can fix.
                let cause = match from {
                    Some(p) if is_missing_precommitted(&e) => {
                        TaskFailure::restore(p, format!("sink: {e}"))
                    }
                    _ => TaskFailure::Sink(e),
                };
                tasks.failures.record(task_error(graph, n, s, cause));
                return None;
            }
        }
    }
    Some(firsts)
}
