//! `GET /metrics`: every job's metrics as Prometheus text, with Flink's
//! Prometheus reporter's names and labels (see
//! [`crate::reporting::exposition`]), shaped by a configured Prometheus
//! reporter's filters and excluded variables.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::reporting::point::collect;
use crate::reporting::{exposition, host_name, select};

/// `GET /metrics`: Prometheus text for every job, including the newest
/// checkpoint's path as a label of an info metric.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses((status = 200, description = "Prometheus text exposition (format 0.0.4): Flink's metric names with the prefix weir_", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    let jobs = state.jobs.list();
    let points = {
        let mut rates = state
            .reporting
            .rates
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        collect(&jobs, &host_name(), &mut rates)
    };
    let points = match &state.reporting.prometheus {
        Some(config) => select(points, config),
        None => points,
    };
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        exposition::encode(&points),
    )
        .into_response()
}
