//! `weir serve`: a session cluster. It keeps operator bundles, runs many
//! jobs at once in this process, and serves the REST API (JSON under
//! `/api/v1`, named like Flink's where the concept is Flink's) with axum on
//! hyper and tokio.
//!
//! This module is HTTP only: the jobs, their records, the bundles and the
//! path roots are the [`crate::session`]'s; here are the handlers (jobs in
//! this file), the routing and what a failure answers.
//!
//! - [`bundles`]: upload, list and delete operator bundles (an upload is
//!   answered once checked and stored; it compiles in the background);
//! - [`checkpoints`]: checkpoint statistics, configuration, trigger and
//!   the job metrics;
//! - [`dashboard`]: the web dashboard's page and assets (no token needed:
//!   they carry no data);
//! - [`prometheus`]: `/metrics` for Prometheus;
//! - [`savepoints`]: trigger, stop with, poll, dispose of and list
//!   savepoints, and the dry run of a restore;
//! - [`openapi`]: the OpenAPI document, generated from the handlers;
//! - [`local`]: the same API served by `weir run` for its one job;
//! - [`error`]: how a failed request is answered;
//! - [`router`] puts the routes together behind the bearer token.

mod bundles;
pub mod checkpoints;
pub mod dashboard;
mod data_dir;
pub mod dead_letters;
pub mod error;
mod exceptions;
pub mod job_config;
pub mod listen;
pub mod local;
pub mod openapi;
pub mod prometheus;
pub mod reporters;
pub mod savepoints;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

pub use self::data_dir::{create_private_dir, keep_files_private, load_or_create_token};
use self::error::{ApiError, ErrorBody};
use crate::config::Config;
use crate::sandbox::Sandbox;
use crate::session::{
    BundleStore, JobEntry, JobManager, JobStore, Roots, SubmitRequest, node_kind,
};

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
    /// Time a request other than an upload may take.
    pub request_timeout: std::time::Duration,
    /// Time an upload may take.
    pub upload_timeout: std::time::Duration,
    /// `weir.server.compile-timeout`.
    pub compile_timeout: std::time::Duration,
    /// The bounds of the accept loop.
    pub limits: listen::Limits,
    /// Permits for uploads being read, checked and stored.
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// Permits for bundles compiling in the background
    /// (`weir.server.max-concurrent-compiles`).
    pub compiles: Arc<tokio::sync::Semaphore>,
    /// How long a rendered job answer is reused (`weir.server.cache-ttl`).
    pub cache_ttl: std::time::Duration,
    /// The metric reporters.
    pub reporting: reporters::Reporting,
}

impl AppState {
    /// The state of a server with `config`, keeping its files in
    /// `data_dir`. With `durable`, it takes the data folder's lock, records
    /// jobs there and resumes those a previous process left running
    /// (`weir serve`); without, jobs live only as long as the process
    /// (the API that `weir run` serves).
    pub fn new(
        config: &Config,
        data_dir: &std::path::Path,
        token: String,
        durable: bool,
    ) -> anyhow::Result<Self> {
        if durable {
            create_private_dir(data_dir)?;
        } else {
            std::fs::create_dir_all(data_dir)?;
        }
        let data_dir = data_dir.canonicalize()?;
        let roots = Roots::open(config, &data_dir)?;
        let store = match durable {
            true => Some(JobStore::open(&data_dir)?),
            false => None,
        };
        let state = AppState {
            token,
            sandbox: Sandbox::new(config)?,
            bundles: BundleStore::open(&data_dir)?,
            jobs: JobManager::new(config.clone(), roots, store),
            max_upload: usize::try_from(config.server.max_upload).unwrap_or(usize::MAX),
            max_body: usize::try_from(config.server.max_body).unwrap_or(usize::MAX),
            request_timeout: config.server.request_timeout,
            upload_timeout: config.server.upload_timeout,
            compile_timeout: config.server.compile_timeout,
            uploads: Arc::new(tokio::sync::Semaphore::new(
                config.server.max_concurrent_uploads,
            )),
            compiles: Arc::new(tokio::sync::Semaphore::new(
                config.server.max_concurrent_compiles,
            )),
            limits: listen::Limits {
                header_read_timeout: config.server.header_read_timeout,
                max_connections: config.server.max_connections,
            },
            cache_ttl: config.server.cache_ttl,
            reporting: reporters::Reporting::new(config),
        };
        state.jobs.resume(&state.bundles);
        Ok(state)
    }
}

type Shared = Arc<AppState>;

/// The API's routes, behind the bearer token.
pub fn router(state: Shared) -> Router {
    let uploads = Router::new()
        .route(
            "/api/v1/bundles",
            get(bundles::list_bundles).post(bundles::upload_bundle),
        )
        .layer(DefaultBodyLimit::max(state.max_upload))
        .layer(middleware::from_fn_with_state(
            state.upload_timeout,
            listen::time_limit,
        ));
    let rest = Router::new()
        .route("/api/v1/bundles/{bundle}", delete(bundles::delete_bundle))
        .route("/api/v1/jobs", get(list_jobs).post(submit_job))
        .route("/api/v1/jobs/{id}", get(job_detail).patch(patch_job))
        .route("/api/v1/jobs/{id}/spec", get(job_spec))
        .route("/api/v1/jobs/{id}/config", get(job_config::job_config))
        .route(
            "/api/v1/jobs/{id}/checkpoints",
            get(checkpoints::job_checkpoints).post(checkpoints::trigger_checkpoint),
        )
        .route(
            "/api/v1/jobs/{id}/checkpoints/config",
            get(checkpoints::checkpoint_config),
        )
        .route("/api/v1/jobs/{id}/metrics", get(checkpoints::job_metrics))
        .route(
            "/api/v1/jobs/{id}/dead-letters",
            get(dead_letters::dead_letters),
        )
        .route(
            "/api/v1/jobs/{id}/savepoints",
            post(savepoints::trigger_savepoint),
        )
        .route(
            "/api/v1/jobs/{id}/savepoints/{trigger}",
            get(savepoints::savepoint_status),
        )
        .route("/api/v1/jobs/{id}/stop", post(savepoints::stop_job))
        .route("/api/v1/jobs/dry-run", post(savepoints::dry_run))
        .route(
            "/api/v1/jobs/{id}/checkpoints/retained",
            get(savepoints::retained_checkpoints),
        )
        .route(
            "/api/v1/savepoint-disposal",
            post(savepoints::dispose_savepoint),
        )
        .route(
            "/api/v1/savepoint-disposal/{trigger}",
            get(savepoints::disposal_status),
        )
        .route("/api/v1/savepoints", get(savepoints::list_savepoints))
        .route("/metrics", get(prometheus::prometheus))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(middleware::from_fn_with_state(
            state.request_timeout,
            listen::time_limit,
        ));
    let api = uploads
        .merge(rest)
        .fallback(|| async { ApiError::not_found("no such resource") })
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{*file}", get(dashboard::asset))
        .merge(api)
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
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(state.token.as_bytes())));
    if !ok {
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong bearer token (Authorization: Bearer <token>)".into(),
        }
        .into_response();
    }
    next.run(request).await
}

/// `POST /api/v1/jobs` with a [`SubmitRequest`].
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = SubmitRequest, responses((status = 202, description = "`{\"jobid\": ..}`", body = Object), (status = 400, description = "bad request", body = ErrorBody)))]
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
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", responses((status = 200, description = "`{\"jobs\": [{jid, name, state, start-time, end-time, duration, parallelism, restarts, last-checkpoint}]}`", body = Object)))]
async fn list_jobs(State(state): State<Shared>) -> Json<Value> {
    let jobs: Vec<Value> = state
        .jobs
        .list()
        .iter()
        .map(|j| {
            let (st, end, _) = j.status();
            let live = j.control.live();
            json!({
                "jid": j.id,
                "name": j.graph.name,
                "state": st,
                "start-time": j.start_time,
                "end-time": end.unwrap_or(-1),
                "duration": end.unwrap_or_else(crate::clock::epoch_ms) - j.start_time,
                "parallelism": j.graph.nodes.iter().map(|n| n.parallelism).max().unwrap_or(0),
                "restarts": live.restarts,
                "last-checkpoint": live
                    .last_checkpoint()
                    .map(|c| c.trigger_timestamp + c.duration_ms.round() as i64),
            })
        })
        .collect();
    Json(json!({ "jobs": jobs }))
}

/// `GET /api/v1/jobs/{id}`: the graph, per-operator and per-subtask
/// counters, state, restarts and exceptions.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "job id")), responses((status = 200, description = "graph, per-operator and per-subtask counters and backpressure, state, restarts, exceptions", body = Object), (status = 404, description = "no such job", body = ErrorBody)))]
async fn job_detail(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = state.jobs.get(&id)?;
    let body = job.rendered("detail", state.cache_ttl, || {
        detail(&job, state.jobs.roots())
    });
    Ok(json_bytes(body))
}

/// `GET /api/v1/jobs/{id}/spec`: the request that submitted the job, as
/// recorded (operators name their bundles `sha256:<id>`), to resume it.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/spec", tag = "jobs", params(("id" = String, Path, description = "job id")), responses((status = 200, description = "the submit request as recorded", body = SubmitRequest), (status = 404, description = "no such job, or one the server did not submit", body = ErrorBody)))]
async fn job_spec(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<SubmitRequest>, ApiError> {
    let job = state.jobs.get(&id)?;
    job.request()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("job {id} was not submitted to this server")))
}

/// A JSON answer from bytes already encoded.
fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The detail document of `job`.
fn detail(job: &JobEntry, roots: &Roots) -> Value {
    let (st, end, exceptions) = job.status();
    let live = job.control.live();
    let heads = job.graph.chain_heads();
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
                // The node whose thread runs it: itself, or its chain's head.
                "task": job.graph.nodes[heads[n]].id,
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
                "side-output": e.side,
                "chained": job.graph.is_chained(e),
            })
        })
        .collect();
    json!({
        "jid": job.id,
        "name": job.graph.name,
        "state": st,
        "start-time": job.start_time,
        "end-time": end.unwrap_or(-1),
        "restarts": live.restarts,
        "vertices": vertices,
        "plan": { "edges": edges },
        "exceptions": exceptions::exceptions_json(&live, &exceptions, roots),
        "restart-history": live
            .restart_history
            .iter()
            .map(|r| json!({
                "timestamp": r.timestamp,
                "cause": roots.redact(&r.cause),
                "restored": r.restored,
                "subtasks": r.subtasks,
            }))
            .collect::<Vec<_>>(),
    })
}

/// `?mode=` of a job's PATCH.
#[derive(Debug, Deserialize)]
struct PatchQuery {
    mode: Option<String>,
}

/// `PATCH /api/v1/jobs/{id}?mode=cancel`.
#[utoipa::path(patch, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "job id"), ("mode" = Option<String>, Query, description = "cancel (the default)")), responses((status = 202, description = "cancelling"), (status = 400, description = "bad request", body = ErrorBody), (status = 404, description = "no such job", body = ErrorBody), (status = 409, description = "conflicts with the job's state", body = ErrorBody)))]
async fn patch_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<PatchQuery>,
) -> Result<StatusCode, ApiError> {
    match q.mode.as_deref() {
        Some("cancel") | None => {
            let s = state.clone();
            tokio::task::spawn_blocking(move || s.jobs.cancel(&id))
                .await
                .map_err(|e| ApiError::internal("cancel task failed", e))??;
            Ok(StatusCode::ACCEPTED)
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "mode {other:?} is not supported (cancel)"
        ))),
    }
}

/// Lowers the calling thread's CPU priority to `nice`, so that API work
/// yields to job threads when the CPU is contended. A failure is logged:
/// the API still works at normal priority.
pub fn lower_thread_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!("cannot lower the API thread's priority: {e}");
    }
}

/// The tokio runtime of `weir serve`: its threads run at
/// `weir.server.api-nice`.
pub fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let nice = config.server.api_nice;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || lower_thread_priority(nice))
        .build()
}

/// Binds `addr` and serves until Ctrl-C.
pub async fn serve(state: Shared, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!("serving the REST API on http://{local}");
    // The token rides in the fragment, which a browser never sends: one
    // click signs in, and no request or log line carries it.
    eprintln!("Dashboard: http://{local}/#token={}", state.token);
    let limits = state.limits;
    listen::serve_bounded(listener, router(state), limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
