//! The IETF resumable-upload draft, interop versions 6 (draft -05) and 8
//! (draft -11): `POST /ietf` creates, `HEAD|PATCH|DELETE /ietf/{id}`,
//! `OPTIONS /ietf[/{id}]`. Every request but OPTIONS must carry
//! `Upload-Draft-Interop-Version: 6` or `8`; responses echo it. No 104
//! interim responses (hyper cannot send them).

mod create;
mod patch;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};

use crate::headers::BadHeader;
use crate::reply::{Handled, found, poll_fault, remove, text};
use crate::store::Snapshot;
use crate::{AppState, expiry};

pub(crate) const INTEROP: HeaderName = HeaderName::from_static("upload-draft-interop-version");
pub(crate) const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub(crate) const UPLOAD_COMPLETE: HeaderName = HeaderName::from_static("upload-complete");
pub(crate) const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub(crate) const UPLOAD_LIMIT: HeaderName = HeaderName::from_static("upload-limit");
/// The append media type (required from interop 6 on).
pub(crate) const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// The interop version of the request (6 or 8), a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interop(pub(crate) u8);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ietf", post(create::create).options(options))
        .route(
            "/ietf/{id}",
            head(status)
                .patch(patch::append)
                .delete(delete)
                .options(options),
        )
        .route_layer(middleware::from_fn(interop))
}

/// Checks `Upload-Draft-Interop-Version` (6 or 8; 400 otherwise, except a
/// plain OPTIONS without it, for discovery) and echoes it on the response.
async fn interop(mut req: Request, next: Next) -> Response {
    let value = req.headers().get(&INTEROP).cloned();
    let version = value
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|v| matches!(v, 6 | 8));
    match (version, value) {
        (Some(v), Some(value)) => {
            req.extensions_mut().insert(Interop(v));
            let mut resp = next.run(req).await;
            resp.headers_mut().insert(INTEROP, value);
            resp
        }
        (_, None) if req.method() == Method::OPTIONS => next.run(req).await,
        _ => text(
            StatusCode::BAD_REQUEST,
            "Upload-Draft-Interop-Version: 6 or 8 required",
        ),
    }
}

/// `Upload-Limit` (a structured-field dictionary). With an upload that can
/// expire, adds the seconds it has left (`expires` in interop 6, `max-age`
/// in 8).
pub(crate) fn upload_limit(app: &AppState, snap: Option<&Snapshot>, version: u8) -> HeaderValue {
    let mut v = format!("max-size={}, min-size=0", app.store.max_size());
    if let Some(max) = app.limits.max_append_size {
        v.push_str(&format!(", max-append-size={max}"));
    }
    if let Some(at) = snap.and_then(Snapshot::live_expiry_ms) {
        let key = if version == 6 { "expires" } else { "max-age" };
        v.push_str(&format!(", {key}={}", expiry::seconds_left(at)));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("min-size=0"))
}

/// A structured-field boolean.
pub(crate) fn sf_bool(value: bool) -> HeaderValue {
    HeaderValue::from_static(if value { "?1" } else { "?0" })
}

/// `Upload-Complete` of a request: `Ok(None)` when missing, `Err` unless
/// exactly `?0` or `?1`.
pub(crate) fn upload_complete(headers: &HeaderMap) -> Result<Option<bool>, BadHeader> {
    match headers
        .get(&UPLOAD_COMPLETE)
        .map(|v| v.as_bytes().trim_ascii())
    {
        None => Ok(None),
        Some(b"?1") => Ok(Some(true)),
        Some(b"?0") => Ok(Some(false)),
        Some(_) => Err(BadHeader("Upload-Complete must be ?0 or ?1".to_owned())),
    }
}

/// The headers describing an upload's state: `Upload-Offset`,
/// `Upload-Complete`, `Upload-Length` (when known), `Upload-Limit`.
pub(crate) fn state_headers(app: &AppState, snap: &Snapshot, version: u8) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(snap.stored));
    h.insert(UPLOAD_COMPLETE, sf_bool(snap.complete));
    if let Some(total) = snap.total {
        h.insert(UPLOAD_LENGTH, HeaderValue::from(total));
    }
    h.insert(UPLOAD_LIMIT, upload_limit(app, Some(snap), version));
    h
}

async fn options(
    State(app): State<AppState>,
    version: Option<axum::Extension<Interop>>,
) -> Response {
    let version = version.map_or(8, |v| v.0.0);
    (
        StatusCode::NO_CONTENT,
        [
            (UPLOAD_LIMIT, upload_limit(&app, None, version)),
            (
                HeaderName::from_static("accept-patch"),
                HeaderValue::from_static(PARTIAL_UPLOAD),
            ),
        ],
    )
        .into_response()
}

async fn status(
    State(app): State<AppState>,
    axum::Extension(Interop(version)): axum::Extension<Interop>,
    Path(id): Path<String>,
) -> Handled {
    let upload = found(&app, &id).await?;
    poll_fault(&app)?;
    let mut h = state_headers(&app, &upload.snapshot(), version);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::NO_CONTENT, h).into_response())
}

async fn delete(State(app): State<AppState>, Path(id): Path<String>) -> Handled {
    remove(&app, &id, true).await?;
    tracing::info!(%id, "IETF upload cancelled");
    Ok(StatusCode::NO_CONTENT.into_response())
}
