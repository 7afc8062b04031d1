//! The jobs of a session cluster: submitted over the API, each run on
//! threads of its own in this process, watched and cancelled from the API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::bundles::BundleStore;
use super::error::ApiError;
use crate::checkpoint::coordinator::epoch_ms;
use crate::checkpoint::storage::new_job_id;
use crate::config::Config;
use crate::graph::{JobGraph, NodeKind};
use crate::runtime::{JobControl, JobError, RunOptions, run_job};
use crate::spec::{JobSpec, SpecFormat, validate};

/// A job's state, with Flink's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobState {
    /// Its tasks are running.
    Running,
    /// Its input ended and its output is committed.
    Finished,
    /// It failed and its restart strategy gave up.
    Failed,
    /// It was cancelled.
    Canceled,
}

/// A job the server knows.
#[derive(Debug)]
pub struct JobEntry {
    /// The job id (also the name of its checkpoint folder).
    pub id: String,
    /// The validated graph.
    pub graph: JobGraph,
    /// Cancels it and shows its live counters.
    pub control: Arc<JobControl>,
    /// Ids of the bundles it uses.
    pub bundles: Vec<String>,
    /// When it was submitted (ms since the Unix epoch).
    pub start_time: i64,
    status: Mutex<Status>,
}

#[derive(Debug, Clone)]
struct Status {
    state: JobState,
    end_time: Option<i64>,
    /// (ms since the Unix epoch, message).
    exceptions: Vec<(i64, String)>,
}

impl JobEntry {
    /// The current state, end time and exceptions.
    pub fn status(&self) -> (JobState, Option<i64>, Vec<(i64, String)>) {
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        (s.state, s.end_time, s.exceptions.clone())
    }
}

/// What `POST /api/v1/jobs` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitRequest {
    /// The job spec, as JSON; its operators name bundles in `wasm`.
    pub job: serde_json::Value,
    /// Default parallelism of nodes that set none.
    #[serde(default)]
    pub parallelism: Option<u32>,
}

/// The jobs of a server.
#[derive(Debug)]
pub struct JobManager {
    config: Config,
    data_dir: PathBuf,
    jobs: Mutex<BTreeMap<String, Arc<JobEntry>>>,
}

impl JobManager {
    /// A manager whose jobs use `config`; job folders go under `data_dir`.
    pub fn new(config: Config, data_dir: PathBuf) -> Self {
        JobManager {
            config,
            data_dir,
            jobs: Mutex::new(BTreeMap::new()),
        }
    }

    /// Validates a submitted job against the stored bundles and starts it.
    pub fn submit(
        &self,
        request: SubmitRequest,
        bundles: &BundleStore,
    ) -> Result<Arc<JobEntry>, ApiError> {
        let mut job = request.job;
        // Resolve bundle references before validation, so that a missing
        // one is reported with its field like any other spec error.
        let mut used = Vec::new();
        if let Some(ops) = job.get_mut("operators").and_then(|o| o.as_array_mut()) {
            for (i, op) in ops.iter_mut().enumerate() {
                let Some(reference) = op.get("wasm").and_then(|w| w.as_str()).map(str::to_owned)
                else {
                    continue;
                };
                let bundle = bundles.find(&reference).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "operators[{i}].wasm: unknown operator bundle {reference:?} (upload it first)"
                    ))
                })?;
                used.push(bundle.id.clone());
                op["wasm"] = serde_json::Value::String(bundles.path(&bundle).display().to_string());
            }
        }
        let text =
            serde_json::to_string(&job).map_err(|e| ApiError::bad_request(format!("job: {e}")))?;
        let spec = JobSpec::parse(&text, SpecFormat::Json)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut config = self.config.clone();
        if let Some(p) = request.parallelism {
            config
                .set("parallelism.default", &p.to_string())
                .map_err(|e| ApiError::bad_request(format!("parallelism: {e}")))?;
        }
        config.progress_interval = std::time::Duration::ZERO;
        let id = new_job_id();
        let job_dir = self.data_dir.join("jobs").join(&id);
        std::fs::create_dir_all(&job_dir)
            .map_err(|e| ApiError::internal("cannot create the job folder", e))?;
        let graph = match validate(&spec, &config, &job_dir, &job_dir) {
            Ok(g) => g,
            Err(e) => {
                // A refused job leaves nothing behind.
                let _ = std::fs::remove_dir_all(&job_dir);
                return Err(ApiError::bad_request(e.to_string()));
            }
        };
        let entry = Arc::new(JobEntry {
            id: id.clone(),
            graph,
            control: Arc::new(JobControl::default()),
            bundles: used,
            start_time: epoch_ms(),
            status: Mutex::new(Status {
                state: JobState::Running,
                end_time: None,
                exceptions: Vec::new(),
            }),
        });
        let runner = entry.clone();
        std::thread::Builder::new()
            .name(format!("job-{}", &id[..8]))
            .spawn(move || {
                let options = RunOptions {
                    job_id: Some(runner.id.clone()),
                    ..RunOptions::default()
                };
                let result = run_job(&runner.graph, &options, &runner.control);
                let mut s = runner.status.lock().unwrap_or_else(|p| p.into_inner());
                s.end_time = Some(epoch_ms());
                s.state = match result {
                    Ok(_) => JobState::Finished,
                    Err(JobError::Cancelled) => JobState::Canceled,
                    Err(e) => {
                        s.exceptions.push((epoch_ms(), e.to_string()));
                        JobState::Failed
                    }
                };
                tracing::info!("job {} {:?}", runner.id, s.state);
            })
            .map_err(|e| ApiError::internal("cannot start the job", e))?;
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.clone());
        Ok(entry)
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<Arc<JobEntry>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Arc<JobEntry>> = jobs.values().cloned().collect();
        v.sort_by_key(|j| j.start_time);
        v
    }

    /// Job `id`.
    pub fn get(&self, id: &str) -> Result<Arc<JobEntry>, ApiError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no job {id:?}")))
    }

    /// Whether a running job uses bundle `id`.
    pub fn uses_bundle(&self, id: &str) -> bool {
        self.list()
            .iter()
            .any(|j| j.status().0 == JobState::Running && j.bundles.iter().any(|b| b == id))
    }
}

/// The kind of a node, as the API names it.
pub fn node_kind(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Source(_) => "source",
        NodeKind::Sink(_) => "sink",
        _ => "operator",
    }
}
