//! Savepoints over the API, in Flink's shapes: trigger (and stop with) a
//! savepoint, poll it by trigger id, dispose of one, list those the server
//! wrote, and the dry run of a restore.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::checkpoint::savepoint::StopMode;
use crate::config::SavepointFormat;
use crate::session::{DISPOSAL, Operation, SavepointTrigger, SubmitRequest};

type Shared = Arc<AppState>;

/// `POST /api/v1/jobs/{id}/savepoints`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavepointBody {
    /// Folder under the savepoints root (default: the root).
    #[serde(default)]
    target_directory: Option<String>,
    /// Cancel the job once the savepoint is complete.
    #[serde(default)]
    cancel_job: bool,
    /// `CANONICAL` (default) or `NATIVE`.
    #[serde(default)]
    format_type: Option<String>,
    /// The client's id for this request: a retry with it starts nothing new.
    #[serde(default)]
    trigger_id: Option<String>,
}

/// `POST /api/v1/jobs/{id}/stop`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopBody {
    /// Folder under the savepoints root (default: the root).
    #[serde(default)]
    target_directory: Option<String>,
    /// End the input first: event-time timers fire, windows flush.
    #[serde(default)]
    drain: bool,
    /// `CANONICAL` (default) or `NATIVE`.
    #[serde(default)]
    format_type: Option<String>,
    /// The client's id for this request.
    #[serde(default)]
    trigger_id: Option<String>,
}

/// `POST /api/v1/savepoint-disposal`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisposalBody {
    /// The savepoint folder.
    savepoint_path: String,
    /// The client's id for this request.
    #[serde(default)]
    trigger_id: Option<String>,
}

/// A JSON body, or the default for an empty one.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed body: {e}")))
}

fn format(v: Option<&str>) -> Result<SavepointFormat, ApiError> {
    v.map_or(Ok(SavepointFormat::Canonical), |f| {
        SavepointFormat::parse(f).map_err(|e| ApiError::bad_request(format!("formatType: {e}")))
    })
}

/// Runs a blocking session call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::session::SessionError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("savepoint task failed", e))?
        .map_err(ApiError::from)
}

/// `POST /api/v1/jobs/{id}/savepoints`: 202 `{request-id}`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/savepoints", tag = "savepoints", params(("id" = String, Path, description = "job id")), request_body = SavepointBody, responses((status = 202, description = "`{\"request-id\": ..}`", body = Object), (status = 400, description = "bad request", body = ErrorBody), (status = 404, description = "no such job", body = ErrorBody), (status = 409, description = "the job is not running or does not checkpoint", body = ErrorBody)))]
pub async fn trigger_savepoint(
    State(state): State<Shared>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: SavepointBody = body(&bytes)?;
    let trigger = SavepointTrigger {
        target: b.target_directory,
        format: format(b.format_type.as_deref())?,
        stop: None,
        cancel_job: b.cancel_job,
        trigger_id: b.trigger_id,
    };
    let tid = blocking(move || state.jobs.trigger_savepoint(&id, trigger)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "request-id": tid }))))
}

/// `POST /api/v1/jobs/{id}/stop`: stop with savepoint; 202 `{request-id}`,
/// polled at `/api/v1/jobs/{id}/savepoints/{triggerId}`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/stop", tag = "savepoints", params(("id" = String, Path, description = "job id")), request_body = StopBody, responses((status = 202, description = "`{\"request-id\": ..}`", body = Object), (status = 400, description = "bad request", body = ErrorBody), (status = 404, description = "no such job", body = ErrorBody), (status = 409, description = "the job is not running or does not checkpoint", body = ErrorBody)))]
pub async fn stop_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: StopBody = body(&bytes)?;
    let trigger = SavepointTrigger {
        target: b.target_directory,
        format: format(b.format_type.as_deref())?,
        stop: Some(StopMode { drain: b.drain }),
        cancel_job: false,
        trigger_id: b.trigger_id,
    };
    let tid = blocking(move || state.jobs.trigger_savepoint(&id, trigger)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "request-id": tid }))))
}

/// Flink's asynchronous-operation answer.
fn operation(op: Operation) -> Value {
    match op {
        Operation::InProgress => json!({ "status": { "id": "IN_PROGRESS" }, "operation": null }),
        Operation::Completed(location) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "location": location },
        }),
        Operation::Failed(why) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "failure-cause": {
                "class": "weir.SavepointFailure",
                "message": why,
                "stack-trace": why,
            } },
        }),
    }
}

/// `GET /api/v1/jobs/{id}/savepoints/{triggerId}`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/savepoints/{triggerId}", tag = "savepoints", params(("id" = String, Path, description = "job id"), ("triggerId" = String, Path, description = "trigger id")), responses((status = 200, description = "`{status: {id: IN_PROGRESS|COMPLETED}, operation: {location | failure-cause}}`", body = Object), (status = 404, description = "no such operation", body = ErrorBody)))]
pub async fn savepoint_status(
    State(state): State<Shared>,
    Path((id, trigger)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(operation(state.jobs.operation(&id, &trigger)?)))
}

/// `POST /api/v1/savepoint-disposal`: 202 `{request-id}`.
#[utoipa::path(post, path = "/api/v1/savepoint-disposal", tag = "savepoints", request_body = DisposalBody, responses((status = 202, description = "`{\"request-id\": ..}`", body = Object), (status = 400, description = "bad request", body = ErrorBody)))]
pub async fn dispose_savepoint(
    State(state): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: DisposalBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed body: {e}")))?;
    let tid = blocking(move || {
        state
            .jobs
            .dispose_savepoint(&b.savepoint_path, b.trigger_id)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "request-id": tid }))))
}

/// `GET /api/v1/savepoint-disposal/{triggerId}`.
#[utoipa::path(get, path = "/api/v1/savepoint-disposal/{triggerId}", tag = "savepoints", params(("triggerId" = String, Path, description = "trigger id")), responses((status = 200, description = "`{status: {id}, operation: {failure-cause}?}`", body = Object), (status = 404, description = "no such operation", body = ErrorBody)))]
pub async fn disposal_status(
    State(state): State<Shared>,
    Path(trigger): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(operation(state.jobs.operation(DISPOSAL, &trigger)?)))
}

/// `GET /api/v1/savepoints?job=ID`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this job's savepoints.
    job: Option<String>,
}

/// `GET /api/v1/savepoints[?job=ID]`: the savepoints the server wrote.
#[utoipa::path(get, path = "/api/v1/savepoints", tag = "savepoints", params(("job" = Option<String>, Query, description = "only this job's")), responses((status = 200, description = "`{savepoints: [{path, jobId, jobName, checkpointId, timestamp, size, format, components}]}`", body = Object)))]
pub async fn list_savepoints(
    State(state): State<Shared>,
    Query(q): Query<ListQuery>,
) -> Json<Value> {
    Json(json!({ "savepoints": state.jobs.savepoints(q.job.as_deref()) }))
}

/// `GET /api/v1/jobs/{id}/checkpoints/retained`: the job's retained
/// checkpoints on disk, newest first, to recover from.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/checkpoints/retained", tag = "checkpoints", params(("id" = String, Path, description = "job id")), responses((status = 200, description = "`{checkpoints: [{id, path, timestamp, size, backend}]}`", body = Object), (status = 404, description = "no such job", body = ErrorBody)))]
pub async fn retained_checkpoints(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = blocking(move || state.jobs.retained_checkpoints(&id)).await?;
    Ok(Json(json!({ "checkpoints": list })))
}

/// `POST /api/v1/jobs/dry-run` with a submit request naming
/// `savepointPath`: what would be restored where, and whether the
/// components fit; starts nothing.
#[utoipa::path(post, path = "/api/v1/jobs/dry-run", tag = "savepoints", request_body = SubmitRequest, responses((status = 200, description = "`{restorable, operators: [{uid, verdict, ...}], problems}`", body = Object), (status = 400, description = "bad request", body = ErrorBody)))]
pub async fn dry_run(State(state): State<Shared>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let request: SubmitRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed job request: {e}")))?;
    let s = state.clone();
    let (report, point) = blocking(move || s.jobs.dry_run(&request, &s.bundles)).await?;
    Ok(Json(json!({
        "restorable": !report.refused,
        "snapshot": {
            "kind": point.metadata.kind,
            "checkpointId": point.metadata.checkpoint_id,
            "backend": point.metadata.backend,
            "format": point.metadata.savepoint_format,
        },
        "operators": report.operators,
        "problems": report.problems(),
    })))
}
