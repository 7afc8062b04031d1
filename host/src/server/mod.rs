//! `weir serve`: a session cluster. It keeps operator bundles, runs many
//! jobs at once in this process, and serves the REST API (JSON under
//! `/api/v1`, named like Flink's where the concept is Flink's) with axum on
//! hyper and tokio.
//!
//! - [`bundles`]: upload (raw body), list and delete operator bundles;
//! - [`jobs`]: submit, list, inspect and cancel jobs;
//! - [`error`]: how a failed request is answered;
//! - [`router`] puts the routes together behind the bearer token.

pub mod bundles;
pub mod error;
pub mod jobs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use self::bundles::BundleStore;
use self::error::ApiError;
use self::jobs::{JobManager, SubmitRequest, node_kind};
use crate::config::Config;
use crate::sandbox::Sandbox;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The bearer token every request must carry.
    pub token: String,
    /// Checks uploaded components against the world.
    pub sandbox: Sandbox,
    /// Stored bundles.
    pub bundles: BundleStore,
    /// Jobs.
    pub jobs: JobManager,
    /// Largest upload.
    pub max_upload: usize,
    /// Largest other request body.
    pub max_body: usize,
}

impl AppState {
    /// The state of a server with `config`, keeping its files in `data_dir`.
    pub fn new(config: &Config, data_dir: PathBuf, token: String) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&data_dir)?;
        Ok(AppState {
            token,
            sandbox: Sandbox::new(config)?,
            bundles: BundleStore::open(&data_dir)?,
            jobs: JobManager::new(config.clone(), data_dir),
            max_upload: usize::try_from(config.server.max_upload).unwrap_or(usize::MAX),
            max_body: usize::try_from(config.server.max_body).unwrap_or(usize::MAX),
        })
    }
}

type Shared = Arc<AppState>;

/// The API's routes, behind the bearer token.
pub fn router(state: Shared) -> Router {
    let uploads = Router::new()
        .route("/api/v1/bundles", get(list_bundles).post(upload_bundle))
        .layer(DefaultBodyLimit::max(state.max_upload));
    let rest = Router::new()
        .route("/api/v1/bundles/{bundle}", delete(delete_bundle))
        .route("/api/v1/jobs", get(list_jobs).post(submit_job))
        .route("/api/v1/jobs/{id}", get(job_detail).patch(patch_job))
        .route("/api/v1/jobs/{id}/checkpoints", get(job_checkpoints))
        .route("/api/v1/jobs/{id}/metrics", get(job_metrics))
        .route("/metrics", get(prometheus))
        .layer(DefaultBodyLimit::max(state.max_body));
    uploads
        .merge(rest)
        .fallback(|| async { ApiError::not_found("no such resource") })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Refuses a request without the right `Authorization: Bearer` token.
async fn authorize(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time, so the token cannot be guessed byte by
    // byte from response times.
    let ok = given.is_some_and(|g| {
        g.len() == state.token.len()
            && g.bytes()
                .zip(state.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !ok {
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong bearer token (Authorization: Bearer <token>)".into(),
        }
        .into_response();
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// `POST /api/v1/bundles?name=count.wasm` with the component as the body.
async fn upload_bundle(
    State(state): State<Shared>,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("name the bundle: ?name=<name>.wasm"))?;
    let s = state.clone();
    let bundle = tokio::task::spawn_blocking(move || s.bundles.add(&name, &body, &s.sandbox))
        .await
        .map_err(|e| ApiError::internal("upload task failed", e))??;
    Ok((StatusCode::CREATED, Json(bundle)))
}

/// `GET /api/v1/bundles`.
async fn list_bundles(State(state): State<Shared>) -> Json<Value> {
    Json(json!({ "bundles": state.bundles.list() }))
}

/// `DELETE /api/v1/bundles/{bundle}`: refused while a running job uses it.
async fn delete_bundle(
    State(state): State<Shared>,
    Path(bundle): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .bundles
        .delete(&bundle, |id| state.jobs.uses_bundle(id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/jobs` with a [`SubmitRequest`].
async fn submit_job(
    State(state): State<Shared>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: SubmitRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed job request: {e}")))?;
    let s = state.clone();
    let job = tokio::task::spawn_blocking(move || s.jobs.submit(request, &s.bundles))
        .await
        .map_err(|e| ApiError::internal("submit task failed", e))??;
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobid": job.id }))))
}

/// `GET /api/v1/jobs`: Flink's job overview.
async fn list_jobs(State(state): State<Shared>) -> Json<Value> {
    let jobs: Vec<Value> = state
        .jobs
        .list()
        .iter()
        .map(|j| {
            let (st, end, _) = j.status();
            json!({
                "jid": j.id,
                "name": j.graph.name,
                "state": st,
                "start-time": j.start_time,
                "end-time": end.unwrap_or(-1),
                "duration": end.unwrap_or_else(crate::checkpoint::coordinator::epoch_ms) - j.start_time,
            })
        })
        .collect();
    Json(json!({ "jobs": jobs }))
}

/// `GET /api/v1/jobs/{id}`: the graph, per-operator and per-subtask
/// counters, state, restarts and exceptions.
async fn job_detail(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    let (st, end, exceptions) = job.status();
    let live = job.control.live();
    let vertices: Vec<Value> = job
        .graph
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let subtasks: Vec<Value> = live
                .metrics
                .get(n)
                .map(|m| {
                    m.iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let s = t.snapshot();
                            json!({
                                "subtask": i,
                                "read-records": s.records_in,
                                "write-records": s.records_out,
                                "backpressured-ms": s.backpressure.as_millis() as u64,
                                "busy-ms": s.busy.as_millis() as u64,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let sum = |k: &str| subtasks.iter().filter_map(|s| s[k].as_u64()).sum::<u64>();
            json!({
                "id": node.id,
                "uid": node.uid,
                "kind": node_kind(&node.kind),
                "parallelism": node.parallelism,
                "metrics": { "read-records": sum("read-records"), "write-records": sum("write-records") },
                "subtasks": subtasks,
            })
        })
        .collect();
    let edges: Vec<Value> = job
        .graph
        .edges
        .iter()
        .map(|e| {
            json!({
                "from": job.graph.nodes[e.from].id,
                "to": job.graph.nodes[e.to].id,
                "partition": format!("{:?}", e.partition).to_lowercase(),
                "input": e.input + 1,
            })
        })
        .collect();
    Ok(Json(json!({
        "jid": job.id,
        "name": job.graph.name,
        "state": st,
        "start-time": job.start_time,
        "end-time": end.unwrap_or(-1),
        "restarts": live.restarts,
        "vertices": vertices,
        "plan": { "edges": edges },
        "exceptions": exceptions.iter().map(|(t, m)| json!({ "timestamp": t, "exception": m })).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/jobs/{id}/checkpoints`: counts, the latest completed
/// checkpoint and the history, with Flink's field names.
async fn job_checkpoints(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    let live = job.control.live();
    let entry = |c: &crate::checkpoint::coordinator::CheckpointStats| {
        json!({
            "id": c.id,
            "status": "COMPLETED",
            "end_to_end_duration": c.duration_ms,
            "state_size": c.size,
            "max_sync_duration": c.max_sync_ms,
            "max_async_duration": c.max_async_ms,
            "max_alignment_duration": c.max_alignment_ms,
            "is_final": c.is_final,
        })
    };
    let latest = live.checkpoints.last().map(|c| {
        let mut v = entry(c);
        v["external_path"] = json!(live.last_checkpoint_path);
        v
    });
    Ok(Json(json!({
        "counts": { "completed": live.checkpoints.len(), "restarts": live.restarts },
        "latest": { "completed": latest },
        "history": live.checkpoints.iter().rev().map(entry).collect::<Vec<_>>(),
    })))
}

/// The job metrics the API knows, with Flink's names.
const JOB_METRICS: &[&str] = &[
    "lastCheckpointDuration",
    "lastCheckpointSize",
    "lastCheckpointExternalPath",
    "numberOfCompletedCheckpoints",
    "numRestarts",
];

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    get: Option<String>,
}

/// `GET /api/v1/jobs/{id}/metrics?get=a,b`: `[{"id": .., "value": ..}]`,
/// values as strings, as Flink answers; without `get`, the metric ids.
async fn job_metrics(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    let Some(get) = q.get else {
        return Ok(Json(json!(
            JOB_METRICS
                .iter()
                .map(|m| json!({ "id": m }))
                .collect::<Vec<_>>()
        )));
    };
    let live = job.control.live();
    let last = live.checkpoints.last();
    let mut out = Vec::new();
    for name in get.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let value = match name {
            "lastCheckpointDuration" => last.map(|c| format!("{}", c.duration_ms.round() as u64)),
            "lastCheckpointSize" => last.map(|c| c.size.to_string()),
            "lastCheckpointExternalPath" => live.last_checkpoint_path.clone(),
            "numberOfCompletedCheckpoints" => Some(live.checkpoints.len().to_string()),
            "numRestarts" => Some(live.restarts.to_string()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown metric {other:?} (known: {})",
                    JOB_METRICS.join(", ")
                )));
            }
        };
        out.push(json!({ "id": name, "value": value.unwrap_or_else(|| "n/a".into()) }));
    }
    Ok(Json(json!(out)))
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: Prometheus text for every job, including the newest
/// checkpoint's path as a label of an info metric.
async fn prometheus(State(state): State<Shared>) -> impl IntoResponse {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(t, "# TYPE weir_job_num_restarts gauge");
    let _ = writeln!(t, "# TYPE weir_job_completed_checkpoints gauge");
    let _ = writeln!(t, "# TYPE weir_job_last_checkpoint_duration_ms gauge");
    let _ = writeln!(t, "# TYPE weir_job_last_checkpoint_size_bytes gauge");
    let _ = writeln!(t, "# TYPE weir_job_last_checkpoint_info gauge");
    let _ = writeln!(t, "# TYPE weir_operator_records_in_total counter");
    let _ = writeln!(t, "# TYPE weir_operator_records_out_total counter");
    for job in state.jobs.list() {
        let live = job.control.live();
        let l = format!(
            "job_id=\"{}\",job_name=\"{}\"",
            job.id,
            label(&job.graph.name)
        );
        let _ = writeln!(t, "weir_job_num_restarts{{{l}}} {}", live.restarts);
        let _ = writeln!(
            t,
            "weir_job_completed_checkpoints{{{l}}} {}",
            live.checkpoints.len()
        );
        if let Some(c) = live.checkpoints.last() {
            let _ = writeln!(
                t,
                "weir_job_last_checkpoint_duration_ms{{{l}}} {}",
                c.duration_ms
            );
            let _ = writeln!(t, "weir_job_last_checkpoint_size_bytes{{{l}}} {}", c.size);
        }
        if let Some(p) = &live.last_checkpoint_path {
            let _ = writeln!(
                t,
                "weir_job_last_checkpoint_info{{{l},path=\"{}\"}} 1",
                label(p)
            );
        }
        for (node, tasks) in job.graph.nodes.iter().zip(&live.metrics) {
            let (mut rin, mut rout) = (0u64, 0u64);
            for task in tasks {
                let s = task.snapshot();
                rin += s.records_in;
                rout += s.records_out;
            }
            let o = format!("{l},operator=\"{}\"", label(&node.id));
            let _ = writeln!(t, "weir_operator_records_in_total{{{o}}} {rin}");
            let _ = writeln!(t, "weir_operator_records_out_total{{{o}}} {rout}");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t)
}

#[derive(Debug, Deserialize)]
struct PatchQuery {
    mode: Option<String>,
}

/// `PATCH /api/v1/jobs/{id}?mode=cancel`.
async fn patch_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<PatchQuery>,
) -> Result<StatusCode, ApiError> {
    let job = state.jobs.get(&id)?;
    match q.mode.as_deref() {
        Some("cancel") | None => {
            job.control.cancel();
            Ok(StatusCode::ACCEPTED)
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "mode {other:?} is not supported (cancel)"
        ))),
    }
}

/// The API token: `weir.server.token` if set, else the one in
/// `<data_dir>/token`, else a new random one written there (mode 0600).
/// The flag says whether it is new, so the caller prints it once.
pub fn load_or_create_token(
    config: &Config,
    data_dir: &std::path::Path,
) -> anyhow::Result<(String, bool)> {
    if let Some(t) = &config.server.token {
        return Ok((t.clone(), false));
    }
    let path = data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    Ok((token, true))
}

/// Binds `addr` and serves until Ctrl-C.
pub async fn serve(state: Shared, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("serving the REST API on http://{}", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
