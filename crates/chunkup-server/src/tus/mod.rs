//! tus 1.0.0 (tus.io/protocols/resumable-upload) with the creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! concatenation and expiration extensions:
//! `POST /tus` creates, `HEAD|PATCH|DELETE /tus/{id}`, `OPTIONS /tus[/{id}]`.
//! Every response carries `Tus-Resumable: 1.0.0`.

mod concat;
mod create;
mod metadata;
mod patch;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};

use crate::headers::header_str;
use crate::reply::{Handled, Reply, found, poll_fault, remove};
use crate::serve::KillSwitch;
use crate::store::{Concat, Snapshot};
use crate::{AppState, checksum};

/// The only protocol version spoken.
pub(crate) const TUS_VERSION: &str = "1.0.0";
/// Everything announced in `Tus-Extension`.
pub(crate) const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,checksum,concatenation,expiration";
/// The media type of tus data bodies.
pub(crate) const OCTET_STREAM: &str = "application/offset+octet-stream";

pub(crate) const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
pub(crate) const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub(crate) const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub(crate) const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/tus", post(create::create).options(options))
        .route(
            "/tus/{id}",
            head(status)
                .patch(patch::patch)
                .delete(delete)
                .options(options)
                .post(overridden),
        )
        .route_layer(middleware::from_fn(versioned))
}

/// Puts `Tus-Resumable` on every response and answers 412 (+ `Tus-Version`)
/// to a POST, PATCH or DELETE without `Tus-Resumable: 1.0.0`, unprocessed.
async fn versioned(req: Request, next: Next) -> Response {
    let checked = matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE);
    let ok = req
        .headers()
        .get(&TUS_RESUMABLE)
        .is_some_and(|v| v.as_bytes().trim_ascii() == TUS_VERSION.as_bytes());
    let mut resp = if checked && !ok {
        (
            StatusCode::PRECONDITION_FAILED,
            [("tus-version", TUS_VERSION)],
            "Tus-Resumable: 1.0.0 required",
        )
            .into_response()
    } else {
        next.run(req).await
    };
    resp.headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    resp
}

async fn options(State(app): State<AppState>) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            ("tus-version", TUS_VERSION.to_owned()),
            ("tus-extension", EXTENSIONS.to_owned()),
            ("tus-max-size", app.store.max_size().to_string()),
            ("tus-checksum-algorithm", checksum::ALGORITHMS.to_owned()),
        ],
    )
        .into_response()
}

/// `Upload-Concat` as HEAD echoes it (parts as relative URLs).
fn concat_value(concat: &Concat) -> String {
    match concat {
        Concat::Partial => "partial".to_owned(),
        Concat::Final { parts } => {
            let urls: Vec<String> = parts.iter().map(|id| format!("/tus/{id}")).collect();
            format!("final;{}", urls.join(" "))
        }
    }
}

/// Adds `Upload-Expires` while the upload can still expire.
pub(crate) fn add_expires(headers: &mut HeaderMap, snap: &Snapshot) {
    if let Some(date) = snap.live_expiry_ms().map(crate::expiry::http_date)
        && let Ok(v) = HeaderValue::from_str(&date)
    {
        headers.insert(UPLOAD_EXPIRES, v);
    }
}

async fn status(State(app): State<AppState>, Path(id): Path<String>) -> Handled {
    let upload = found(&app, &id).await?;
    poll_fault(&app)?;
    let snap = upload.snapshot();
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let assembling = matches!(snap.concat, Some(Concat::Final { .. })) && !snap.complete;
    if !assembling {
        h.insert(UPLOAD_OFFSET, HeaderValue::from(snap.stored));
    }
    match snap.total {
        Some(total) => h.insert(UPLOAD_LENGTH, HeaderValue::from(total)),
        None => h.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if let Some(v) = snap
        .raw_metadata
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        h.insert("upload-metadata", v);
    }
    if let Some(v) = snap
        .concat
        .as_ref()
        .and_then(|c| HeaderValue::from_str(&concat_value(c)).ok())
    {
        h.insert("upload-concat", v);
    }
    add_expires(&mut h, &snap);
    Ok((StatusCode::OK, h).into_response())
}

async fn delete(State(app): State<AppState>, Path(id): Path<String>) -> Handled {
    remove(&app, &id, true).await?;
    tracing::info!(%id, "tus upload terminated");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /tus/{id}` with `X-HTTP-Method-Override: PATCH | DELETE | HEAD`.
async fn overridden(
    State(app): State<AppState>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let method = header_str(&headers, "x-http-method-override")
        .map(|m| m.trim().to_ascii_uppercase())
        .unwrap_or_default();
    match method.as_str() {
        "PATCH" => patch::patch(State(app), Path(id), kill, headers, body).await,
        "DELETE" => delete(State(app), Path(id)).await,
        "HEAD" => {
            let mut resp = status(State(app), Path(id)).await.into_response();
            *resp.body_mut() = Body::empty();
            Ok(resp)
        }
        _ => Err(Reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST on an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD",
        )),
    }
}
