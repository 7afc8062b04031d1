//! `GET /api/v1/jobs/{id}/dead-letters`: the records the dead-letter
//! quarantine took from a job (`weir.dead-letter.*`), read from its
//! dead-letter file, so they are listed for ended jobs and after a restart
//! of the server too.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::error::ApiError;
use crate::sink::dead_letter::{dead_letter_path, read};

/// The most records one answer lists.
const MOST: usize = 1000;

/// `?limit=`.
#[derive(Debug, Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

/// `GET /api/v1/jobs/{id}/dead-letters[?limit=N]`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/dead-letters", tag = "jobs", params(("id" = String, Path, description = "job id"), ("limit" = Option<usize>, Query, description = "at most this many records (default 100, at most 1000)")), responses((status = 200, description = "`{\"enabled\": bool, \"total\": n, \"records\": [dead letter]}`: each with operator, subtask, input, failures, message, key, value, timestamp, checkpoint, time", body = Object), (status = 404, description = "no such job", body = crate::server::error::ErrorBody)))]
pub async fn dead_letters(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    let config = &job.graph.config.dead_letter;
    let path = dead_letter_path(&job.graph.base_dir.join(&config.dir), &job.id);
    let limit = q.limit.unwrap_or(100).min(MOST);
    let records = tokio::task::spawn_blocking(move || read(&path, usize::MAX))
        .await
        .map_err(|e| ApiError::internal("dead-letter task failed", e))?
        .map_err(|e| ApiError::internal("cannot read the dead-letter file", e))?;
    let total = records.len();
    let roots = state.jobs.roots();
    let shown: Vec<_> = records
        .into_iter()
        .take(limit)
        .map(|mut r| {
            r.message = roots.redact(&r.message);
            r
        })
        .collect();
    Ok(Json(json!({
        "enabled": config.enabled,
        "total": total,
        "records": shown,
    })))
}
