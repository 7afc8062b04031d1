//! The types of a session's jobs that the job manager, the job store and
//! the API share: a job's state and the request that submitted it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A job's state, with Flink's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobState {
    /// Its tasks are running.
    Running,
    /// A cancel was asked for; its tasks are stopping.
    Cancelling,
    /// Its input ended and its output is committed.
    Finished,
    /// It failed and its restart strategy gave up.
    Failed,
    /// It was cancelled.
    Canceled,
}

impl JobState {
    /// Its name as the API shows it (`RUNNING`, `CANCELED`, ...).
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "RUNNING",
            JobState::Cancelling => "CANCELLING",
            JobState::Finished => "FINISHED",
            JobState::Failed => "FAILED",
            JobState::Canceled => "CANCELED",
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Canceled
        )
    }
}

/// What `POST /api/v1/jobs` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitRequest {
    /// The job spec, as JSON; its operators name bundles in `wasm`.
    #[schema(value_type = Object)]
    pub job: serde_json::Value,
    /// Default parallelism of nodes that set none.
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Start from this checkpoint or savepoint (under the checkpoints or
    /// savepoints root).
    #[serde(default)]
    pub savepoint_path: Option<String>,
    /// Skip restored state whose uid the job lacks.
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// `NO_CLAIM` (default) or `CLAIM`: whether the job owns the snapshot
    /// it starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_mode: Option<String>,
    /// Parallelism of single nodes, by node id (over the spec's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parallelism_overrides: BTreeMap<String, u32>,
    /// The job's id, chosen by the client (32 lowercase hex digits), which
    /// makes the submission idempotent: the same request again answers the
    /// job it started; a different one under the id is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl SubmitRequest {
    /// A fingerprint of the request as the client sent it: xxh3-128 of its
    /// JSON, in hex (a retried submission has the same).
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }
}
