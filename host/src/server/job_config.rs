//! `GET /api/v1/jobs/{id}/config`: the job's effective configuration in
//! the shape of Flink's job configuration, so a user can see what each
//! key pasted from a Flink setup came to mean.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::config::StorageKind;
use crate::runtime::restart::RestartStrategy;

/// The job's configuration: Flink's `execution-config` (with the restart
/// strategy in words) and what Weir made of the state and checkpoint keys.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/config", tag = "jobs", params(("id" = String, Path, description = "job id")), responses((status = 200, description = "`{jid, name, execution-config: {execution-mode, restart-strategy, restart-strategy-config, job-parallelism, object-reuse-mode, user-config}, state-backend, checkpoint-storage}`", body = Object), (status = 404, description = "no such job", body = ErrorBody)))]
pub async fn job_config(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(&id)?;
    let config = &job.graph.config;
    let strategy = RestartStrategy::from_config(config);
    let cp = &config.checkpoint;
    Ok(Json(json!({
        "jid": id,
        "name": job.graph.name,
        "execution-config": {
            "execution-mode": "PIPELINED",
            "restart-strategy": strategy.to_string(),
            "restart-strategy-config": restart_config(&strategy),
            "job-parallelism": config.default_parallelism,
            "object-reuse-mode": false,
            "user-config": {},
        },
        "state-backend": config.backend.kind.name(),
        "incremental": config.backend.incremental,
        "checkpoint-storage": match cp.storage {
            StorageKind::Filesystem => "filesystem",
            StorageKind::JobManager => "jobmanager",
        },
        "checkpoint-directory": match cp.storage {
            StorageKind::Filesystem if cp.enabled() => {
                let dir = crate::config::resolve_location(&job.graph.base_dir, &cp.dir);
                Value::from(dir.display().to_string())
            }
            _ => Value::Null,
        },
    })))
}

/// The strategy's type and parameters, milliseconds for durations.
fn restart_config(s: &RestartStrategy) -> Value {
    let ms = |d: &std::time::Duration| d.as_millis() as u64;
    let mut v = match s {
        RestartStrategy::None => json!({}),
        RestartStrategy::FixedDelay { attempts, delay } => {
            json!({ "attempts": attempts, "delay": ms(delay) })
        }
        RestartStrategy::ExponentialDelay {
            initial_backoff,
            max_backoff,
            multiplier,
            reset_threshold,
            jitter,
            attempts,
        } => json!({
            "initial-backoff": ms(initial_backoff),
            "max-backoff": ms(max_backoff),
            "backoff-multiplier": multiplier,
            "reset-backoff-threshold": ms(reset_threshold),
            "jitter-factor": jitter,
            "attempts-before-reset-backoff": attempts,
        }),
        RestartStrategy::FailureRate {
            max_failures,
            interval,
            delay,
        } => json!({
            "max-failures-per-interval": max_failures,
            "failure-rate-interval": ms(interval),
            "delay": ms(delay),
        }),
    };
    v["type"] = s.name().into();
    v
}
