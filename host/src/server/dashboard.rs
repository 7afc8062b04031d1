//! The web dashboard's files: `GET /` answers `index.html` and
//! `GET /assets/<file>` the scripts and styles, without a token (no data
//! comes with them: the page asks the API, with the token, for everything).
//! They are built from `web/` by `host/build.rs` and embedded in the
//! binary; with `WEIR_WEB_DIR` set they are read from that folder instead
//! (for working on the dashboard without rebuilding).
//!
//! `index.html` is never cached; assets, whose names carry a hash of their
//! content, are cached for a year.

use std::borrow::Cow;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The built dashboard, embedded at compile time.
#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/web"]
struct Built;

/// The file `name` of the dashboard: from `WEIR_WEB_DIR` if set, else the
/// embedded build.
fn file(name: &str) -> Option<Cow<'static, [u8]>> {
    match std::env::var_os("WEIR_WEB_DIR") {
        Some(dir) => {
            // Plain names only: nothing outside the folder.
            let plain = name
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != "..");
            plain
                .then(|| std::fs::read(std::path::Path::new(&dir).join(name)).ok())
                .flatten()
                .map(Cow::Owned)
        }
        None => Built::get(name).map(|f| f.data),
    }
}

/// The content type of file `name`, by its extension.
fn content_type(name: &str) -> String {
    mime_guess::from_path(name)
        .first_or_octet_stream()
        .essence_str()
        .to_owned()
}

/// `GET /`: the dashboard's page.
pub async fn index() -> Response {
    match file("index.html") {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (header::CACHE_CONTROL, "no-cache".to_owned()),
            ],
            bytes.into_owned(),
        )
            .into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            message: "the dashboard is not in this build".into(),
        }
        .into_response(),
    }
}

/// `GET /assets/{file}`: a script, style or other asset of the dashboard.
pub async fn asset(Path(name): Path<String>) -> Response {
    let name = format!("assets/{name}");
    match file(&name) {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&name)),
                (
                    header::CACHE_CONTROL,
                    "public, max-age=31536000, immutable".to_owned(),
                ),
            ],
            bytes.into_owned(),
        )
            .into_response(),
        None => ApiError::not_found("no such asset").into_response(),
    }
}
