//! A job's checkpoints over the API: statistics, configuration, a manual
//! trigger and the job metrics Flink names, with Flink's field names.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::checkpoint::stats::{CheckpointStats, FailedCheckpoint};
use crate::config::{CheckpointingMode, Retention, StorageKind};
use crate::reporting::point::{JOB_METRICS, Value as Metric, job_metric};
use crate::runtime::LiveJob;
use crate::session::Roots;

type Shared = Arc<AppState>;

/// One completed checkpoint in Flink's shape.
fn completed(c: &CheckpointStats) -> Value {
    json!({
        "id": c.id,
        "status": "COMPLETED",
        "is_savepoint": c.is_savepoint,
        "trigger_timestamp": c.trigger_timestamp,
        "latest_ack_timestamp": c.trigger_timestamp + c.duration_ms.round() as i64,
        "end_to_end_duration": c.duration_ms,
        "state_size": c.size,
        "checkpointed_size": c.checkpointed_size,
        "max_sync_duration": c.max_sync_ms,
        "max_async_duration": c.max_async_ms,
        "max_alignment_duration": c.max_alignment_ms,
        "is_final": c.is_final,
        "checkpoint_type": checkpoint_type(c),
        "unaligned": c.unaligned,
        "processed_data": c.processed_bytes,
        "persisted_data": c.persisted_bytes,
        "num_subtasks": c.subtasks.len(),
        "subtasks": c.subtasks.iter().map(|s| json!({
            "vertex": s.node,
            "index": s.subtask,
            "sync_duration": s.sync_ms,
            "async_duration": s.async_ms,
            "alignment_duration": s.alignment_ms,
            "start_delay": s.start_delay_ms,
            "unaligned_checkpoint": s.unaligned,
            "alignment": {
                "duration": s.alignment_ms,
                "processed": s.processed_bytes,
                "persisted": s.persisted_bytes,
            },
        })).collect::<Vec<_>>(),
    })
}

/// Flink's `checkpoint_type` of a completed checkpoint.
fn checkpoint_type(c: &CheckpointStats) -> &'static str {
    match (c.is_savepoint, c.unaligned) {
        (true, _) => "SAVEPOINT",
        (false, true) => "UNALIGNED_CHECKPOINT",
        (false, false) => "CHECKPOINT",
    }
}

/// The statistics document of `live`; failure messages name paths
/// relative to `roots`.
pub fn statistics(live: &LiveJob, roots: &Roots) -> Value {
    let latest = live.last_checkpoint().map(|c| {
        let mut v = completed(c);
        v["external_path"] = json!(live.last_checkpoint_path());
        v
    });
    let failed = |f: &FailedCheckpoint| {
        json!({
            "id": f.id,
            "status": "FAILED",
            "trigger_timestamp": f.trigger_timestamp,
            "failure_timestamp": f.failure_timestamp,
            "failure_message": roots.redact(&f.reason),
        })
    };
    let restored = live.restored.as_ref().map(|r| {
        json!({
            "id": r.id,
            "restore_timestamp": r.restore_timestamp,
            "is_savepoint": r.kind == "savepoint",
            "external_path": r.external_path,
        })
    });
    let mut history: Vec<(u64, Value)> = live
        .checkpoints
        .iter()
        .map(|c| (c.id, completed(c)))
        .collect();
    history.extend(live.failed_checkpoints.iter().map(|f| (f.id, failed(f))));
    history.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    let done = live.completed_count;
    json!({
        "counts": {
            "completed": done,
            "failed": live.failed_count,
            "in_progress": live.in_progress,
            "restored": live.restored_count,
            "total": done + live.failed_count + live.in_progress,
        },
        "latest": {
            "completed": latest,
            "failed": live.failed_checkpoints.last().map(failed),
            "restored": restored,
            "savepoint": live.last_savepoint.as_ref().map(|(c, path)| {
                let mut v = completed(c);
                v["external_path"] = json!(path);
                v
            }),
        },
        "history": history.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/jobs/{id}/checkpoints`: counts, the latest completed,
/// failed and restored checkpoints, and the history (newest first).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/checkpoints", tag = "checkpoints", params(("id" = String, Path, description = "job id")), responses((status = 200, description = "counts; latest completed, failed and restored; history with per-subtask times", body = Object), (status = 404, description = "no such job", body = ErrorBody)))]
pub async fn job_checkpoints(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = state.jobs.get(&id)?;
    let body = job.rendered("checkpoints", state.cache_ttl, || {
        statistics(&job.control.live(), state.jobs.roots())
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/v1/jobs/{id}/checkpoints/config`: how the job checkpoints.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/checkpoints/config", tag = "checkpoints", params(("id" = String, Path, description = "job id")), responses((status = 200, description = "interval, timeout, mode, retention, ...", body = Object), (status = 404, description = "no such job", body = ErrorBody)))]
pub async fn checkpoint_config(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    let c = &job.graph.config.checkpoint;
    let Some(interval) = c.interval else {
        return Ok(Json(json!({ "enabled": false })));
    };
    Ok(Json(json!({
        "enabled": true,
        "mode": match c.mode {
            CheckpointingMode::ExactlyOnce => "exactly_once",
            CheckpointingMode::AtLeastOnce => "at_least_once",
        },
        "interval": interval.as_millis() as u64,
        "timeout": c.timeout.as_millis() as u64,
        "min_pause": c.min_pause.as_millis() as u64,
        "max_concurrent": c.max_concurrent,
        "tolerable_failed_checkpoints": c.tolerable_failed,
        "num_retained": c.num_retained,
        "checkpoint_storage": match c.storage {
            StorageKind::Filesystem => "filesystem",
            StorageKind::JobManager => "jobmanager",
        },
        "state_backend": job.graph.config.backend.kind.name(),
        "unaligned_checkpoints": c.unaligned.active(),
        "unaligned_checkpoints_forced": c.unaligned.forced,
        "aligned_checkpoint_timeout": c.unaligned.aligned_timeout.as_millis() as u64,
        "externalization": {
            "enabled": c.retention != Retention::NoExternalizedCheckpoints,
            "delete_on_cancellation": c.retention != Retention::RetainOnCancellation,
        },
    })))
}

/// `POST /api/v1/jobs/{id}/checkpoints`: triggers a checkpoint now. The
/// answer says it was requested; the statistics show it when it is done.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/checkpoints", tag = "checkpoints", params(("id" = String, Path, description = "job id")), responses((status = 202, description = "requested", body = Object), (status = 404, description = "no such job", body = ErrorBody), (status = 409, description = "conflicts with the job's state", body = ErrorBody)))]
pub async fn trigger_checkpoint(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let job = state.jobs.get(&id)?;
    if !job.is_running() {
        return Err(ApiError::conflict(format!("job {id} is not running")));
    }
    if !job.control.request_checkpoint(&job.graph) {
        return Err(ApiError::conflict(
            "the job does not checkpoint (set execution.checkpointing.interval)",
        ));
    }
    let after = job.control.live().last_checkpoint().map_or(0, |c| c.id);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "request-id": after + 1, "after-checkpoint": after })),
    ))
}

/// The query of the metrics endpoint.
#[derive(Debug, Deserialize)]
pub struct MetricsQuery {
    get: Option<String>,
}

/// `GET /api/v1/jobs/{id}/metrics?get=a,b`: `[{"id": .., "value": ..}]`,
/// values as strings, as Flink answers; without `get`, the metric ids.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/metrics", tag = "metrics", params(("id" = String, Path, description = "job id"), ("get" = Option<String>, Query, description = "comma-separated metric names")), responses((status = 200, description = "`[{id, value}]`, or the metric ids without `get`", body = Object), (status = 400, description = "bad request", body = ErrorBody), (status = 404, description = "no such job", body = ErrorBody)))]
pub async fn job_metrics(
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
    let mut out = Vec::new();
    for name in get.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let value = metric(&live, name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown metric {name:?} (known: {})",
                JOB_METRICS.join(", ")
            ))
        })?;
        out.push(json!({ "id": name, "value": value }));
    }
    Ok(Json(json!(out)))
}

/// The value of job metric `name` as Flink prints it (`-1` where Flink's
/// gauges say "none yet"); `None` for an unknown name.
pub fn metric(live: &LiveJob, name: &str) -> Option<String> {
    Some(match job_metric(live, name)? {
        Metric::Number(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Metric::Number(v) => format!("{v}"),
        Metric::Text(s) => s,
        Metric::Count(n) | Metric::Meter { count: n, .. } => n.to_string(),
        Metric::Histogram(d) => d.count.to_string(),
    })
}
