//! The jobs of a session cluster: submitted over the API, each run on
//! threads of its own in this process, watched and cancelled from the API,
//! recorded in the [`JobStore`] so that they survive a crash of the server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::bundles::BundleStore;
use super::entry::{JobEntry, Status};
use super::error::SessionError;
use super::job_end::{discard_checkpoints, release_pin};
use super::launcher::Launcher;
use super::model::{JobState, SubmitRequest};
use super::roots::Roots;
use super::savepoints::{Operations, SavepointIndex};
use super::store::{JOB_RECORD_VERSION, JobRecord, JobStore};
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::storage::new_job_id;
use crate::clock::epoch_ms;
use crate::config::{ClaimMode, Config, canonical_key};
use crate::runtime::{JobControl, JobError, RunOptions, load_components, prepare_restore, run_job};
use crate::sandbox::Sandbox;
use crate::spec::graph::{JobGraph, NodeKind};
use crate::spec::{JobSpec, SpecFormat, validate};

/// Config keys a submitted job may not set: the server owns them.
const SERVER_KEYS: &[&str] = &[
    "state.checkpoints.dir",
    "execution.checkpointing.savepoint-dir",
    "execution.state-recovery.path",
    "state.backend.rocksdb.localdir",
    "weir.sandbox.cache-dir",
    "weir.sandbox.cache-max-bytes",
    "weir.dead-letter.dir",
];

/// The jobs of a server.
#[derive(Debug)]
pub struct JobManager {
    launcher: Launcher,
    pub(super) config: Config,
    pub(super) roots: Roots,
    pub(super) store: Option<JobStore>,
    jobs: Mutex<BTreeMap<String, Arc<JobEntry>>>,
    /// Savepoint, stop and disposal operations, by trigger id.
    pub(super) operations: Arc<Operations>,
    /// The savepoints this server wrote.
    pub(super) savepoints: Arc<SavepointIndex>,
    /// Held while a submission is checked against the jobs and started.
    admission: Mutex<()>,
}

impl JobManager {
    /// A manager whose jobs use `config`, whose paths stay under `roots`
    /// and whose records go to `store` (none: jobs are not recorded).
    pub fn new(mut config: Config, roots: Roots, store: Option<JobStore>) -> Self {
        let index = SavepointIndex::open(store.as_ref().map(|_| roots.data.path.as_path()));
        config.checkpoint.dir = roots.checkpoints.path.clone();
        config.checkpoint.savepoint_dir = Some(roots.savepoints.path.clone());
        config.dead_letter.dir = roots.data.path.join("dead-letters");
        config.files_root = Some(roots.files.path.clone());
        // RocksDB's working folders live in the server's private data
        // folder, unless its configuration names another place.
        if config.backend.rocksdb_dir == Config::default().backend.rocksdb_dir {
            config.backend.rocksdb_dir = roots.data.path.join("rocksdb");
        }
        config.progress_interval = std::time::Duration::ZERO;
        JobManager {
            launcher: Launcher::new(),
            config,
            roots,
            store,
            jobs: Mutex::new(BTreeMap::new()),
            operations: Arc::default(),
            savepoints: Arc::new(index),
            admission: Mutex::new(()),
        }
    }

    /// The roots request paths must lie under.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// Turns a submitted request into a graph: bundle references become
    /// bundle ids (in the returned request) and stored paths, every path
    /// is resolved under its root. Errors never show host paths.
    pub(super) fn prepare(
        &self,
        request: &SubmitRequest,
        bundles: &BundleStore,
    ) -> Result<(JobGraph, SubmitRequest, Vec<String>), SessionError> {
        let bad = |m: String| SessionError::bad_request(self.roots.redact(&m));
        let mut recorded = request.clone();
        let mut job = request.job.clone();
        // Resolve bundle references before validation, so that a missing
        // one is reported with its field like any other spec error.
        let used = resolve_bundles(&mut job, &mut recorded.job, bundles).map_err(bad)?;
        override_parallelism(&mut job, &request.parallelism_overrides).map_err(bad)?;
        let text = serde_json::to_string(&job).map_err(|e| bad(format!("job: {e}")))?;
        let mut spec = JobSpec::parse(&text, SpecFormat::Json).map_err(|e| bad(e.to_string()))?;
        if let Some(key) = spec.config.keys().map(|k| canonical_key(k)).find(|k| {
            SERVER_KEYS.contains(k)
                // `s3.`: the server's roots decide where snapshots go,
                // and a job's secret key would be kept in its record.
                || ["weir.server.", "rest.", "metrics.", "s3."]
                    .iter()
                    .any(|p| k.starts_with(p))
        }) {
            return Err(bad(format!(
                "config.{key}: set by the server, not by a submitted job"
            )));
        }
        self.resolve_paths(&mut spec).map_err(bad)?;
        let mut config = self.config.clone();
        if let Some(p) = request.parallelism {
            config
                .set("parallelism.default", &p.to_string())
                .map_err(|e| bad(format!("parallelism: {e}")))?;
        }
        let files = &self.roots.files;
        let graph =
            validate(&spec, &config, &files.path, &files.path).map_err(|e| bad(e.to_string()))?;
        let subtasks = graph.nodes.iter().map(|n| u64::from(n.parallelism)).sum();
        let over = crate::config::limits::exceeded(&graph.config, subtasks, &self.config);
        if !over.is_empty() {
            let lines: Vec<String> = over
                .iter()
                .map(|v| match v.key.as_str() {
                    "parallelism" => v.to_string(),
                    _ => format!("config.{v}"),
                })
                .collect();
            return Err(bad(format!(
                "the job asks for more than the server allows:\n  {}",
                lines.join("\n  ")
            )));
        }
        Ok((graph, recorded, used))
    }

    /// Resolves the source and sink paths of `spec` under the files root.
    fn resolve_paths(&self, spec: &mut JobSpec) -> Result<(), String> {
        let files = &self.roots.files;
        let resolve = |field: String, p: &str| {
            files
                .resolve(p)
                .map(|p| p.display().to_string())
                .map_err(|e| format!("{field}: {e}"))
        };
        for (i, source) in spec.sources.iter_mut().enumerate() {
            if let Some(p) = &source.path {
                source.path = Some(resolve(format!("sources[{i}].path"), p)?);
            }
            if let Some(ps) = &mut source.paths {
                for (j, p) in ps.iter_mut().enumerate() {
                    *p = resolve(format!("sources[{i}].paths[{j}]"), p)?;
                }
            }
        }
        for (i, sink) in spec.sinks.iter_mut().enumerate() {
            if let Some(p) = &sink.path {
                sink.path = Some(resolve(format!("sinks[{i}].path"), p)?);
            }
        }
        Ok(())
    }

    /// Opens the checkpoint a request names, checked against `graph`.
    pub(super) fn open_restore(
        &self,
        request: &SubmitRequest,
        graph: &JobGraph,
    ) -> Result<Option<RestorePoint>, SessionError> {
        let Some(p) = &request.savepoint_path else {
            return Ok(None);
        };
        let path = self.roots.restore_path(p).map_err(|e| {
            SessionError::bad_request(self.roots.redact(&format!("savepointPath: {e}")))
        })?;
        self.open_restore_at(request, graph, &path).map(Some)
    }

    /// Opens the checkpoint at `path` for `request`, checked against `graph`.
    pub(super) fn open_restore_at(
        &self,
        request: &SubmitRequest,
        graph: &JobGraph,
        path: &std::path::Path,
    ) -> Result<RestorePoint, SessionError> {
        let bad = |m: String| SessionError::bad_request(self.roots.redact(&m));
        let point = RestorePoint::open_in(path, &self.config.s3)
            .map_err(|e| bad(format!("savepointPath: {e}")))?;
        let sandbox = Sandbox::new(&graph.config).map_err(|e| bad(e.to_string()))?;
        let components = load_components(graph, &sandbox).map_err(|e| bad(e.to_string()))?;
        let point = prepare_restore(
            graph,
            &sandbox,
            &components,
            &point,
            allow_non_restored(request, graph),
        )
        .map_err(|e| bad(format!("savepointPath: {e}")))?;
        Ok(point)
    }

    /// Validates a submitted job against the stored bundles, records it
    /// durably, then starts it. A refused job leaves nothing behind. A
    /// request with a `jobId` submitted before answers the job it started.
    pub fn submit(
        &self,
        request: SubmitRequest,
        bundles: &BundleStore,
    ) -> Result<Arc<JobEntry>, SessionError> {
        let (graph, recorded, used) = self.prepare(&request, bundles)?;
        if let Err(Some(e)) = claim_mode(&request) {
            return Err(SessionError::bad_request(e));
        }
        let restore = self.open_restore(&request, &graph)?;
        // One admission at a time: the checks below and the start of the
        // job they admit are one step.
        let _admitting = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        let submitted = request.fingerprint();
        if let Some(earlier) = self.earlier_submission(&recorded, &submitted)? {
            return Ok(earlier);
        }
        self.check_sink_folders(&graph)?;
        self.check_memory(&graph)?;
        let id = recorded.job_id.clone().unwrap_or_else(new_job_id);
        let restore = restore
            .map(|r| self.pin_restore(&graph, &id, r))
            .transpose()?;
        let record = JobRecord {
            version: JOB_RECORD_VERSION,
            id,
            request: recorded,
            start_time: epoch_ms(),
            state: JobState::Running,
            end_time: None,
            exceptions: Vec::new(),
            submitted: Some(submitted),
        };
        if let Some(store) = &self.store
            && let Err(e) = store.save(&record)
        {
            store.forget(&record.id);
            release_pin(&graph, &record.id);
            return Err(SessionError::internal("cannot record the job", e));
        }
        self.start(record, graph, used, restore)
    }

    /// Starts a recorded job on a thread of its own.
    pub(super) fn start(
        &self,
        record: JobRecord,
        graph: JobGraph,
        bundles: Vec<String>,
        restore: Option<RestorePoint>,
    ) -> Result<Arc<JobEntry>, SessionError> {
        let id = record.id.clone();
        let entry = Arc::new(JobEntry {
            id: id.clone(),
            graph,
            control: Arc::new(JobControl::default()),
            bundles,
            start_time: record.start_time,
            status: Mutex::new(Status {
                state: record.state,
                end_time: record.end_time,
                exceptions: record.exceptions.clone(),
            }),
            record: Mutex::new(Some(record.clone())),
            rendered: Mutex::default(),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), entry.clone());
        if record.state.is_terminal() {
            return Ok(entry);
        }
        let runner = entry.clone();
        let allow_non_restored_state = allow_non_restored(&record.request, &entry.graph);
        let claim_mode = claim_mode(&record.request)
            .unwrap_or(entry.graph.config.checkpoint.recovery.claim_mode);
        let store = self.store.clone();
        let name = format!("job-{}", &id[..8.min(id.len())]);
        self.launcher
            .launch(name, move || {
                let options = RunOptions {
                    job_id: Some(runner.id.clone()),
                    restore,
                    allow_non_restored_state,
                    claim_mode,
                    keep_checkpoints: true,
                    ..RunOptions::default()
                };
                let result = run_job(&runner.graph, &options, &runner.control);
                let (state, exception) = match result {
                    Ok(_) => (JobState::Finished, None),
                    Err(JobError::Cancelled) => (JobState::Canceled, None),
                    Err(e) => (JobState::Failed, Some(e.to_string())),
                };
                // Recorded before the checkpoints go: a crash in between
                // leaves a job that is over, never one that runs again
                // from the start.
                let state = match runner.end(store.as_ref(), state, exception) {
                    Ok(ended) => ended,
                    Err(e) => {
                        tracing::error!("job {}: {}", runner.id, e);
                        return;
                    }
                };
                discard_checkpoints(&runner.graph, &runner.id, state);
                release_pin(&runner.graph, &runner.id);
                tracing::info!("job {} {state:?}", runner.id);
            })
            .map_err(|e| SessionError::internal("cannot start the job", e))?;
        Ok(entry)
    }

    /// Registers a job this process runs by other means (`weir run`), so
    /// the API shows it; it is not recorded.
    pub fn adopt(&self, id: String, graph: JobGraph, control: Arc<JobControl>) -> Arc<JobEntry> {
        let entry = Arc::new(JobEntry {
            id: id.clone(),
            graph,
            control,
            bundles: Vec::new(),
            start_time: epoch_ms(),
            record: Mutex::new(None),
            rendered: Mutex::default(),
            status: Mutex::new(Status {
                state: JobState::Running,
                end_time: None,
                exceptions: Vec::new(),
            }),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.clone());
        entry
    }

    /// Marks an adopted job as ended; waits (a few seconds at most) until
    /// a client has read the outcome of an operation that just ended (the
    /// savepoint of `weir stop`), so that the API does not go before it.
    pub fn adopted_ended(&self, job: &JobEntry, state: JobState, exception: Option<String>) {
        let _ = job.set_state(None, state, exception);
        let patience = std::time::Duration::from_secs(10);
        let until = std::time::Instant::now() + patience;
        while self.operations.unread(patience) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Cancels job `id`: recorded as `CANCELLING` first, so that a crash
    /// before its tasks stop does not bring it back.
    pub fn cancel(&self, id: &str) -> Result<(), SessionError> {
        let job = self.get(id)?;
        match job.transition(self.store.as_ref(), JobState::Running, JobState::Cancelling)? {
            JobState::Running => {
                job.control.cancel();
                Ok(())
            }
            JobState::Cancelling => {
                // Raised again: harmless, and sure to reach the tasks.
                job.control.cancel();
                Ok(())
            }
            other => Err(SessionError::conflict(format!(
                "job {id} is not running: it is {}",
                other.name()
            ))),
        }
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<Arc<JobEntry>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Arc<JobEntry>> = jobs.values().cloned().collect();
        v.sort_by_key(|j| j.start_time);
        v
    }

    /// Job `id`.
    pub fn get(&self, id: &str) -> Result<Arc<JobEntry>, SessionError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(id)
            .cloned()
            .ok_or_else(|| SessionError::not_found(format!("no job {id:?}")))
    }

    /// Whether a running job uses bundle `id`.
    pub fn uses_bundle(&self, id: &str) -> bool {
        self.list()
            .iter()
            .any(|j| j.is_running() && j.bundles.iter().any(|b| b == id))
    }
}

/// Whether a restore for `request` drops state the job has no place for:
/// the request's `allowNonRestoredState`, or the job's (or the server's)
/// `execution.state-recovery.ignore-unclaimed-state`.
pub(super) fn allow_non_restored(request: &SubmitRequest, graph: &JobGraph) -> bool {
    request.allow_non_restored_state || graph.config.checkpoint.recovery.ignore_unclaimed_state
}

/// The claim mode a request asks for (`None`: the server's
/// `execution.state-recovery.claim-mode`).
fn claim_mode(request: &SubmitRequest) -> Result<ClaimMode, Option<String>> {
    match &request.claim_mode {
        None => Err(None),
        Some(m) => ClaimMode::parse(m).map_err(|e| Some(format!("claimMode: {e}"))),
    }
}

/// Points the operators of `job` at their stored bundles, and the recorded
/// request at the bundles' ids; returns the ids used.
fn resolve_bundles(
    job: &mut serde_json::Value,
    recorded: &mut serde_json::Value,
    bundles: &BundleStore,
) -> Result<Vec<String>, String> {
    let mut used = Vec::new();
    let Some(ops) = job.get_mut("operators").and_then(|o| o.as_array_mut()) else {
        return Ok(used);
    };
    for (i, op) in ops.iter_mut().enumerate() {
        let Some(reference) = op.get("wasm").and_then(|w| w.as_str()).map(str::to_owned) else {
            continue;
        };
        let bundle = bundles.find(&reference).ok_or_else(|| {
            format!("operators[{i}].wasm: unknown operator bundle {reference:?} (upload it first)")
        })?;
        if let Some(error) = bundles.compile_failure(&bundle) {
            return Err(format!(
                "operators[{i}].wasm: bundle {:?} (version {}) did not compile: {error}",
                bundle.name, bundle.version
            ));
        }
        if let Some(r) = recorded["operators"][i].get_mut("wasm") {
            *r = serde_json::Value::String(format!("sha256:{}", bundle.id));
        }
        used.push(bundle.id.clone());
        op["wasm"] = serde_json::Value::String(bundles.path(&bundle).display().to_string());
    }
    Ok(used)
}

/// Sets the parallelism of single nodes of `job`, by node id.
fn override_parallelism(
    job: &mut serde_json::Value,
    overrides: &BTreeMap<String, u32>,
) -> Result<(), String> {
    for (node, p) in overrides {
        let found = job
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.iter_mut())
            .filter(|(k, _)| matches!(k.as_str(), "sources" | "operators" | "sinks"))
            .filter_map(|(_, v)| v.as_array_mut())
            .flat_map(|nodes| nodes.iter_mut())
            .find(|n| n.get("id").and_then(|i| i.as_str()) == Some(node.as_str()));
        match found {
            Some(n) => n["parallelism"] = serde_json::json!(p),
            None => {
                return Err(format!(
                    "parallelismOverrides.{node}: the job has no node {node:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The kind of a node, as the API names it.
pub fn node_kind(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Source(_) => "source",
        NodeKind::Sink(_) => "sink",
        _ => "operator",
    }
}
