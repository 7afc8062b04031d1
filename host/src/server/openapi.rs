//! The OpenAPI document of the REST API, generated from the handlers'
//! `#[utoipa::path]` attributes and served at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::error::ErrorBody;
use crate::session::Bundle;
use crate::session::{JobState, SubmitRequest};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Weir REST API", description = "Operator bundles, jobs, checkpoints, savepoints and metrics of a Weir session cluster. Resources are named like Flink's REST API where the concept is Flink's."),
    paths(
        super::bundles::upload_bundle,
        super::bundles::list_bundles,
        super::bundles::delete_bundle,
        super::submit_job,
        super::list_jobs,
        super::job_detail,
        super::job_spec,
        super::job_config::job_config,
        super::patch_job,
        super::checkpoints::job_checkpoints,
        super::checkpoints::trigger_checkpoint,
        super::checkpoints::checkpoint_config,
        super::checkpoints::job_metrics,
        super::dead_letters::dead_letters,
        super::savepoints::trigger_savepoint,
        super::savepoints::stop_job,
        super::savepoints::savepoint_status,
        super::savepoints::dispose_savepoint,
        super::savepoints::disposal_status,
        super::savepoints::list_savepoints,
        super::savepoints::dry_run,
        super::savepoints::retained_checkpoints,
        super::prometheus::prometheus,
        openapi_json,
    ),
    components(schemas(
        Bundle,
        super::bundles::UploadedBundle,
        crate::session::CompileStatus,
        crate::session::CompileState,
        SubmitRequest,
        JobState,
        ErrorBody,
        super::savepoints::SavepointBody,
        super::savepoints::StopBody,
        super::savepoints::DisposalBody
    )),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// Declares the bearer token every endpoint requires.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
