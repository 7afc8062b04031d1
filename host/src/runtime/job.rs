//! The restart loop of a job: prepares its checkpoint storage, runs
//! attempts, and after a failure asks the restart policy whether (and when)
//! to run again, from the latest intact retained checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::attempt::{JobCheckpoints, JobRun, run_attempt};
use super::control::{JobControl, RunOptions};
use super::error::JobError;
use super::progress::JobSummary;
use super::quarantine::Quarantine;
use super::restart::{RestartDecision, RestartPolicy, RestartStrategy};
use super::restore_check::prepare_restore;
use super::restore_point::{latest_valid, unreachable};
use crate::checkpoint::coordinator::CompletedCheckpoint;
use crate::checkpoint::fs::StorageError;
use crate::checkpoint::recovery::{
    Recovered, is_held, sweep_folder, sweep_jobs, sweep_object_folder,
};
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::retention::{JobEnd, discard_on_end};
use crate::checkpoint::storage::{CheckpointStorage, new_job_id};
use crate::config::{BackendKind, ClaimMode, Config, ObjectUri, StorageKind, resolve_location};
use crate::sandbox::{LoadedComponent, Sandbox};
use crate::sink::dead_letter::{DeadLetterFile, dead_letter_path};
use crate::spec::graph::{JobGraph, NodeKind};
use crate::state::workdir::JobFolder;

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
/// restarting it after failures as the restart strategy allows. However it
/// ends, savepoints asked for and not taken then fail.
pub fn run_job(
    graph: &JobGraph,
    options: &RunOptions,
    control: &JobControl,
) -> Result<JobSummary, JobError> {
    let result = run_job_until_it_ends(graph, options, control);
    control.close_savepoints();
    result
}

fn run_job_until_it_ends(
    graph: &JobGraph,
    options: &RunOptions,
    control: &JobControl,
) -> Result<JobSummary, JobError> {
    let started = Instant::now();
    let sandbox = Sandbox::new(&graph.config)
        .map_err(JobError::Sandbox)?
        .interrupted_by(control.cancelled.clone());
    let components = load_components(graph, &sandbox)?;
    check_connectors(graph)?;
    let restore = prepared_restore(graph, &sandbox, &components, options)?;
    let claim = claim_mode(graph, options.claim_mode, restore.as_ref())?;
    let job_id = options.job_id.clone().unwrap_or_else(new_job_id);
    // The working folder of embedded state backends, held while the job
    // runs and removed after it (and swept after a crash).
    let _state_folder = claim_state_folder(graph, &job_id)?;
    open_quarantine(graph, &job_id, control)?;
    let storage = open_storage(graph, &job_id)?;
    let _folder_lock = match &storage {
        Some(s) => s.lock()?,
        None => None,
    };
    let retained = recover_folders(storage.as_ref(), options, &graph.config);
    // Ids continue after the restored checkpoint and after every
    // checkpoint folder of this job, so a new one never lands in an old
    // one's folder.
    let next_id = options
        .restore
        .as_ref()
        .map_or(0, |r| r.metadata.checkpoint_id)
        .max(retained.highest_id)
        + 1;
    let completed = Mutex::new(owned_at_start(
        storage.as_ref(),
        retained,
        restore.as_ref(),
        claim,
    ));
    let mut job = JobRun {
        graph,
        sandbox: &sandbox,
        components: &components,
        options,
        control,
        job_id: &job_id,
        checkpoints: storage.as_ref().map(|storage| JobCheckpoints {
            storage,
            completed: &completed,
        }),
        started,
        next_id,
        history: Vec::new(),
        policy: Mutex::new(RestartPolicy::new(
            RestartStrategy::from_config(&graph.config),
            started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()),
        )),
        restarts: std::sync::atomic::AtomicU32::new(0),
        unusable: Default::default(),
    };
    restart_loop(&mut job, restore)
}

/// Opens the job's dead-letter file and its quarantine, seeded with what
/// the file holds, if `weir.dead-letter.enabled`.
fn open_quarantine(graph: &JobGraph, job_id: &str, control: &JobControl) -> Result<(), JobError> {
    let config = &graph.config.dead_letter;
    if !config.enabled || control.quarantine.get().is_some() {
        return Ok(());
    }
    let path = dead_letter_path(&graph.base_dir.join(&config.dir), job_id);
    let (file, held) = DeadLetterFile::open(&path).map_err(|message| {
        JobError::Storage(StorageError {
            path: path.display().to_string(),
            message,
        })
    })?;
    if RestartStrategy::from_config(&graph.config).name() == "none" {
        tracing::warn!(
            "weir.dead-letter.enabled needs restarts (a record is quarantined after {} failures and restores), but restart-strategy.type is none",
            config.max_failures + 1
        );
    }
    let quarantine = Quarantine::new(config.max_failures, file, held);
    let _ = control.quarantine.set(Arc::new(quarantine));
    Ok(())
}

/// The snapshot the job starts from, checked against its components (a
/// server prepared it already when the job was submitted).
fn prepared_restore(
    graph: &JobGraph,
    sandbox: &Sandbox,
    components: &[Option<LoadedComponent>],
    options: &RunOptions,
) -> Result<Option<RestorePoint>, JobError> {
    let Some(r) = &options.restore else {
        return Ok(None);
    };
    let allow = options.allow_non_restored_state;
    let r = match r.prepared {
        true => r.clone(),
        false => prepare_restore(graph, sandbox, components, r, allow)?,
    };
    tracing::info!(
        "restoring from {} {} ({}, {})",
        r.metadata.kind,
        r.metadata.checkpoint_id,
        r.path,
        options.claim_mode.name()
    );
    Ok(Some(r))
}

/// The completed checkpoints a starting job owns: its own retained ones
/// (a resumed job's) and, under CLAIM, the snapshot it restores from,
/// which is then retained and deleted like its own checkpoints.
fn owned_at_start(
    storage: Option<&CheckpointStorage>,
    retained: Recovered,
    restore: Option<&RestorePoint>,
    claim: ClaimMode,
) -> Vec<CompletedCheckpoint> {
    let Some(s) = storage else {
        return Vec::new();
    };
    let mut owned: Vec<CompletedCheckpoint> = retained
        .retained
        .into_iter()
        .map(|(metadata, path)| CompletedCheckpoint {
            reader: s.reader(metadata.checkpoint_id),
            metadata,
            path,
            claimed: None,
        })
        .collect();
    if let (Some(r), ClaimMode::Claim, true) = (restore, claim, owned.is_empty()) {
        owned.push(CompletedCheckpoint {
            metadata: r.metadata.clone(),
            reader: r.reader.clone(),
            path: r.path.clone(),
            claimed: Some(PathBuf::from(&r.path)),
        });
    }
    owned
}

/// Commits what the stop with savepoint `point` pre-committed (from its
/// own copies): for a job whose stop completed but whose end was not
/// recorded (a server that crashed in between), so that it ends FINISHED
/// with its output as the stop left it, instead of running again.
pub fn finish_stopped(graph: &JobGraph, point: &RestorePoint) -> Result<(), JobError> {
    super::attempt::recover_sinks(graph, Some(point), true).map(drop)
}

/// The claim mode a restore can have: CLAIM needs filesystem checkpoint
/// storage (in memory, the job would delete the only durable copy: it runs
/// as NO_CLAIM, with a warning), and is refused for a checkpoint whose job
/// still runs (it holds its folder's lock and may need it).
fn claim_mode(
    graph: &JobGraph,
    asked: ClaimMode,
    restore: Option<&RestorePoint>,
) -> Result<ClaimMode, JobError> {
    let Some(r) = restore.filter(|_| asked == ClaimMode::Claim) else {
        return Ok(asked);
    };
    if ObjectUri::of(Path::new(&r.path)).is_some() {
        tracing::warn!(
            "CLAIM of a snapshot in object storage is not supported; {} is left alone (NO_CLAIM)",
            r.path
        );
        return Ok(ClaimMode::NoClaim);
    }
    if graph.config.checkpoint.storage != StorageKind::Filesystem {
        tracing::warn!(
            "CLAIM needs execution.checkpointing.storage: filesystem; {} is left alone (NO_CLAIM)",
            r.path
        );
        return Ok(ClaimMode::NoClaim);
    }
    let folder = Path::new(&r.path);
    let is_checkpoint = folder
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("chk-"));
    if let Some(job_dir) = folder
        .parent()
        .filter(|_| is_checkpoint && ObjectUri::of(folder).is_none())
        && is_held(job_dir)
    {
        return Err(JobError::Storage(StorageError {
            path: r.path.clone(),
            message: "CLAIM refused: the job of this checkpoint is running (it holds its folder); restore with NO_CLAIM".into(),
        }));
    }
    Ok(ClaimMode::Claim)
}

/// Claims the working folder of the job's embedded state backends.
fn claim_state_folder(graph: &JobGraph, job_id: &str) -> Result<Option<JobFolder>, JobError> {
    let dir = &graph.config.backend.rocksdb_dir;
    match graph.config.backend.kind {
        BackendKind::RocksDb => JobFolder::claim(dir, job_id).map(Some).map_err(|e| {
            JobError::Storage(StorageError {
                path: dir.display().to_string(),
                message: e.to_string(),
            })
        }),
        BackendKind::HashMap => Ok(None),
    }
}

/// The job's checkpoint storage, if it checkpoints. A relative checkpoint
/// folder lies beside the spec, like the sources' and sinks' paths.
fn open_storage(graph: &JobGraph, job_id: &str) -> Result<Option<CheckpointStorage>, JobError> {
    let cp = &graph.config.checkpoint;
    let Some(interval) = cp.interval else {
        return Ok(None);
    };
    let dir = resolve_location(&graph.base_dir, &cp.dir);
    let s = CheckpointStorage::new(cp.storage, &dir, job_id, &graph.config.s3)?;
    tracing::info!(
        "job {job_id}: checkpoints every {} ms in {}",
        interval.as_millis(),
        s.location(0).trim_end_matches("/chk-0")
    );
    Ok(Some(s))
}

/// The job's own retained checkpoints (a resumed job's), after removing
/// what a crash left: unfinished checkpoints and unused shared files; and
/// the same sweep of the folder of another job restored from, and of every
/// job folder beside this one that nobody holds.
fn recover_folders(
    storage: Option<&CheckpointStorage>,
    options: &RunOptions,
    config: &Config,
) -> Recovered {
    if let Some(r) = &options.restore {
        let folder = Path::new(&r.path);
        if let Some(uri) = ObjectUri::of(folder) {
            sweep_object_folder(&uri, &config.s3);
        }
        let is_checkpoint = folder
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("chk-"));
        if let Some(job_dir) = folder
            .parent()
            .filter(|_| is_checkpoint && ObjectUri::of(folder).is_none())
        {
            sweep_folder(job_dir);
        }
    }
    let Some(s) = storage else {
        return Recovered::default();
    };
    if let Some(root) = s.job_dir().and_then(Path::parent) {
        sweep_jobs(root);
    }
    let own = options.restore.as_ref().and_then(|r| {
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        let folder = canonical(Path::new(&r.path));
        let inside = s
            .job_dir()
            .and_then(canonical)
            .is_some_and(|d| folder.as_deref().and_then(Path::parent) == Some(d.as_path()));
        inside.then_some(r.metadata.checkpoint_id)
    });
    s.recover(config.checkpoint.num_retained, own)
}

/// Checks, before the job starts, that its sources and sinks can use what
/// they read and write (creating a sink's topic if its spec asks for it).
fn check_connectors(graph: &JobGraph) -> Result<(), JobError> {
    for node in &graph.nodes {
        let failed = |kind, message: String| JobError::Connector {
            kind,
            node: node.id.clone(),
            message,
        };
        match &node.kind {
            NodeKind::Source(spec) => {
                crate::source::check_ready(spec).map_err(|e| failed("source", e.to_string()))?
            }
            NodeKind::Sink(spec) => {
                crate::sink::check_ready(spec, &graph.config.checkpoint)
                    .map_err(|e| failed("sink", e.to_string()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs attempts until one finishes, the job is cancelled, or the restart
/// policy gives up.
fn restart_loop(job: &mut JobRun<'_>, first: Option<RestorePoint>) -> Result<JobSummary, JobError> {
    let control = job.control;
    let mut restore = first.clone();
    loop {
        if let Some(r) = restore.as_ref() {
            r.reader.begin_attempt();
        }
        let result = run_attempt(job, restore.as_ref());
        let cancelled = control.cancelled.load(Ordering::SeqCst);
        let e = match result {
            Ok(mut summary) => {
                summary.job_id = job.job_id.to_owned();
                summary.restarts = job.restarts.load(Ordering::SeqCst);
                summary.checkpoints_completed =
                    job.history.iter().filter(|c| !c.is_savepoint).count() as u64;
                summary.checkpoints = std::mem::take(&mut job.history);
                job_ended(job, JobEnd::Finished);
                return Ok(summary);
            }
            Err(e) if cancelled => {
                job_ended(job, JobEnd::Cancelled);
                return Err(match e {
                    JobError::Task { cause, .. } if cause.is_secondary() => JobError::Cancelled,
                    other => other,
                });
            }
            // A snapshot whose storage does not answer is not damaged:
            // the restart strategy tries it again after its delay.
            Err(e) if e.is_restore_failure() && !unreachable(restore.as_ref()) => {
                match fall_back(job, first.as_ref(), restore.as_ref(), &e) {
                    // Not counted by the restart strategy: each try reads
                    // another (older) snapshot, and there are only so many.
                    Some(older) => {
                        control.failed.store(false, Ordering::SeqCst);
                        restore = Some(older);
                        continue;
                    }
                    None => return Err(e),
                }
            }
            Err(e) if !e.is_restartable() && !e.is_restore_failure() => return Err(e),
            Err(e) => e,
        };
        let decision = job.lock_policy().on_failure(Instant::now());
        let delay = match decision {
            RestartDecision::Fail(why) => {
                tracing::error!("not restarting ({why}): {e}");
                return Err(e);
            }
            RestartDecision::RestartAfter(delay) => delay,
        };
        let restarts = job.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        let from = restart_point(job, first.as_ref());
        control.publish_restart(restarts, e.to_string(), from.as_ref(), None);
        let what = from.as_ref().map_or_else(
            || "from the beginning (no completed checkpoint)".to_owned(),
            |r| format!("from checkpoint {} ({})", r.metadata.checkpoint_id, r.path),
        );
        tracing::warn!(
            "restart {restarts} ({}) in {} ms, {what}, after: {e}",
            job.lock_policy().strategy().name(),
            delay.as_millis()
        );
        wait_unless_cancelled(control, delay)?;
        control.failed.store(false, Ordering::SeqCst);
        restore = from;
    }
}

/// What a restart restores: the newest intact retained checkpoint, else
/// the snapshot the job started from (if it is still usable).
fn restart_point(job: &JobRun<'_>, first: Option<&RestorePoint>) -> Option<RestorePoint> {
    job.checkpoints
        .and_then(|c| latest_valid(c.completed))
        // The claimed snapshot restores as it first did (with the states
        // -n dropped).
        .map(|p| match first {
            Some(f) if f.path == p.path => f.clone(),
            _ => p,
        })
        .or_else(|| {
            first
                .filter(|f| !job.unusable.contains(&f.metadata.checkpoint_id))
                .cloned()
        })
}

/// After restore failure `e`: the snapshot it read is never tried again
/// (it leaves the retained list, its folder stays for inspection), and the
/// previous one is chosen, as for a damaged checkpoint; `None` when none
/// is left, and the job fails with `e`.
fn fall_back(
    job: &mut JobRun<'_>,
    first: Option<&RestorePoint>,
    tried: Option<&RestorePoint>,
    e: &JobError,
) -> Option<RestorePoint> {
    // The snapshot a task failed on (a region failover's own restore
    // included), else the one the attempt started from.
    let bad = e
        .failed_restore()
        .or_else(|| tried.map(|p| p.metadata.checkpoint_id))?;
    job.unusable.insert(bad);
    if let Some(c) = job.checkpoints {
        let mut completed = c.completed.lock().unwrap_or_else(|p| p.into_inner());
        completed.retain(|k| k.metadata.checkpoint_id != bad);
    }
    let older = restart_point(job, first);
    match &older {
        Some(p) => {
            let id = p.metadata.checkpoint_id;
            tracing::error!(
                "checkpoint {bad} cannot be restored ({e}); falling back to the previous retained checkpoint, {id}"
            );
            let message =
                format!("{e} (checkpoint {bad} cannot be restored; falling back to {id})");
            let restarts = job.restarts.load(Ordering::SeqCst);
            job.control
                .publish_restart(restarts, message, older.as_ref(), None);
        }
        None => tracing::error!(
            "checkpoint {bad} cannot be restored ({e}), and no earlier checkpoint is left to try"
        ),
    }
    older
}

/// Deletes the job's checkpoints if the retention policy says so for how
/// it ended (unless the caller keeps them to delete after it recorded the
/// end).
fn job_ended(job: &JobRun<'_>, end: JobEnd) {
    let retention = job.graph.config.checkpoint.retention;
    let Some(c) = job.checkpoints else {
        return;
    };
    if job.options.keep_checkpoints || !discard_on_end(retention, end) {
        return;
    }
    if let Err(e) = c.storage.discard_all() {
        tracing::warn!("cannot delete the {} job's checkpoints: {e}", end.name());
    }
}

/// Sleeps `delay`, returning early with [`JobError::Cancelled`] if the
/// job is cancelled meanwhile.
pub(super) fn wait_unless_cancelled(control: &JobControl, delay: Duration) -> Result<(), JobError> {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if control.cancelled.load(Ordering::SeqCst) {
            return Err(JobError::Cancelled);
        }
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        );
    }
    Ok(())
}
