//! The operator bundle handlers: upload (checked and stored at once,
//! compiled in the background), list (with each bundle's compile) and
//! delete.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Shared;
use super::error::{ApiError, ErrorBody};
use crate::session::{Bundle, CompileStatus};

#[derive(Debug, Deserialize)]
pub(super) struct UploadQuery {
    name: Option<String>,
}

/// `POST /api/v1/bundles`: the component either as the raw body with
/// `?name=count.wasm`, or as the first file of a `multipart/form-data`
/// body (named by its file name unless `?name=` is given).
#[utoipa::path(post, path = "/api/v1/bundles", tag = "bundles", params(("name" = Option<String>, Query, description = "bundle name, e.g. count.wasm (raw bodies; multipart uses the file name)")), request_body(content = Vec<u8>, description = "the component: raw (application/wasm) or multipart/form-data", content_type = "application/wasm"), responses((status = 201, description = "checked and stored; it compiles afterwards (see `compile`)", body = UploadedBundle), (status = 400, description = "bad request", body = ErrorBody), (status = 413, description = "larger than weir.server.max-upload", body = ErrorBody)))]
pub(super) async fn upload_bundle(
    State(state): State<Shared>,
    Query(q): Query<UploadQuery>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    // Taken before the body is read, and held until the bundle is checked
    // and stored: at most that many uploads use memory at once. Compiles
    // have permits of their own (`start_compile`).
    let permit = state
        .uploads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "too many uploads at once (weir.server.max-concurrent-uploads); try again"
                .into(),
        })?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let unreadable = |status: StatusCode, text: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status,
                message: format!(
                    "the upload is larger than weir.server.max-upload ({} bytes)",
                    state.max_upload
                ),
            }
        } else {
            ApiError::bad_request(format!("cannot read the upload: {text}"))
        }
    };
    let (name, body) = if multipart {
        let mut form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
        let field = form
            .next_field()
            .await
            .map_err(|e| unreadable(e.status(), e.body_text()))?
            .ok_or_else(|| ApiError::bad_request("the multipart body holds no file"))?;
        let name = q.name.or_else(|| field.file_name().map(str::to_owned));
        let body = field
            .bytes()
            .await
            .map_err(|e| unreadable(e.status(), e.body_text()))?;
        (name, body)
    } else {
        let body = Bytes::from_request(request, &state)
            .await
            .map_err(|e| unreadable(e.status(), e.body_text()))?;
        (q.name, body)
    };
    let name = name.ok_or_else(|| {
        ApiError::bad_request("name the bundle: ?name=<name>.wasm or a multipart file name")
    })?;
    let s = state.clone();
    let bundle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        s.bundles.add(&name, &body, &s.sandbox)
    })
    .await
    .map_err(|e| ApiError::internal("upload task failed", e))??;
    start_compile(&state, &bundle);
    let compile = state.bundles.compile_status(&bundle, &state.sandbox);
    Ok((
        StatusCode::CREATED,
        Json(UploadedBundle { bundle, compile }),
    ))
}

/// An uploaded bundle and where its compile stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadedBundle {
    /// The stored bundle.
    #[serde(flatten)]
    pub bundle: Bundle,
    /// Its compile (`compiling` right after an upload, unless the
    /// component cache already holds it).
    pub compile: CompileStatus,
}

/// Compiles `bundle` into the component cache in the background, unless
/// it is cached or compiling: at most `weir.server.max-concurrent-compiles`
/// at once (others wait their turn), each holding its permit until it
/// ends, since wasmtime cannot interrupt a compile. One still running
/// `weir.server.compile-timeout` after it took its permit shows `failed`
/// until it ends; how it ended then replaces that.
fn start_compile(state: &Shared, bundle: &Bundle) {
    let Some(generation) = state.bundles.begin_compile(bundle, &state.sandbox) else {
        return;
    };
    let s = state.clone();
    let bundle = bundle.clone();
    tokio::spawn(async move {
        let permit = match s.compiles.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(e) => {
                let outcome = Err(format!("the server is stopping: {e}"));
                s.bundles.finish_compile(&bundle, generation, outcome);
                return;
            }
        };
        let (w, b) = (s.clone(), bundle.clone());
        let mut compile = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            w.bundles.compile(&b, &w.sandbox)
        });
        let limit = s.compile_timeout;
        let joined = match tokio::time::timeout(limit, &mut compile).await {
            Ok(joined) => joined,
            Err(_) => {
                let late = Err(format!(
                    "compiling took longer than weir.server.compile-timeout ({} ms); it goes on, and this changes when it ends",
                    limit.as_millis()
                ));
                s.bundles.finish_compile(&bundle, generation, late);
                compile.await
            }
        };
        let outcome = joined.unwrap_or_else(|e| Err(format!("the compile task failed: {e}")));
        s.bundles.finish_compile(&bundle, generation, outcome);
    });
}

/// `GET /api/v1/bundles`.
#[utoipa::path(get, path = "/api/v1/bundles", tag = "bundles", responses((status = 200, description = "`{\"bundles\": [Bundle with jobs: the running jobs using it, and compile: its CompileStatus]}`", body = Object)))]
pub(super) async fn list_bundles(State(state): State<Shared>) -> Json<Value> {
    let jobs = state.jobs.list();
    let bundles: Vec<Value> = state
        .bundles
        .list()
        .into_iter()
        .map(|b| {
            let using: Vec<&str> = jobs
                .iter()
                .filter(|j| j.is_running() && j.bundles.contains(&b.id))
                .map(|j| j.id.as_str())
                .collect();
            let mut v = json!(b);
            v["jobs"] = json!(using);
            v["compile"] = json!(state.bundles.compile_status(&b, &state.sandbox));
            v
        })
        .collect();
    Json(json!({ "bundles": bundles }))
}

/// `DELETE /api/v1/bundles/{bundle}`: refused while a running job uses it.
#[utoipa::path(delete, path = "/api/v1/bundles/{bundle}", tag = "bundles", params(("bundle" = String, Path, description = "name or sha256 id")), responses((status = 204, description = "deleted"), (status = 404, description = "no such bundle", body = ErrorBody), (status = 409, description = "a running job uses it", body = ErrorBody)))]
pub(super) async fn delete_bundle(
    State(state): State<Shared>,
    Path(bundle): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .bundles
        .delete(&bundle, |id| state.jobs.uses_bundle(id))?;
    Ok(StatusCode::NO_CONTENT)
}
