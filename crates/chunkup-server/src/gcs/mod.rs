//! Google-style resumable sessions, as GCS speaks them
//! (cloud.google.com/storage/docs/performing-resumable-uploads; YouTube,
//! Drive and Mux direct uploads work alike): `POST /gcs` initiates a
//! session, `PUT /gcs/{id}` sends a chunk or asks the status
//! ([`chunk`]), `DELETE /gcs/{id}` cancels it.
//!
//! A session persists in [`UNIT`]s: every chunk but the one that ends the
//! upload is a multiple of 256 KiB, what arrived of a chunk that broke off
//! is kept in whole units only, and `Range` reports whole units until the
//! upload is complete.

mod chunk;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::headers::{content_type, opt_u64, sanitize_filename};
use crate::reply::{Handled, Reply, found, location, text};
use crate::store::{NewUpload, Protocol, Snapshot, Upload};
use crate::{AppState, expiry};

/// The granularity of a session: 256 KiB.
pub(crate) const UNIT: u64 = 256 * 1024;
/// GCS's answer to a cancelled session ("Client Closed Request").
const CANCELLED: u16 = 499;
const UPLOAD_CONTENT_LENGTH: &str = "x-upload-content-length";
const UPLOAD_CONTENT_TYPE: &str = "x-upload-content-type";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/gcs", post(initiate))
        .route("/gcs/{id}", axum::routing::put(chunk::put).delete(cancel))
}

/// The query of an initiation: GCS's JSON API names the object with
/// `?name=` (`uploadType=resumable` and other parameters are ignored).
#[derive(Debug, Deserialize)]
struct Initiation {
    name: Option<String>,
}

/// `POST /gcs`: a new session, `200` + `Location: <session URI>`.
async fn initiate(
    State(app): State<AppState>,
    Query(query): Query<Initiation>,
    headers: HeaderMap,
) -> Handled {
    let total = opt_u64(&headers, UPLOAD_CONTENT_LENGTH)?;
    let max = app.store.max_size();
    if total.is_some_and(|t| t > max) {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {max} bytes"),
        ));
    }
    let new = NewUpload {
        total,
        filename: query.name.as_deref().and_then(sanitize_filename),
        content_type: content_type(&headers, UPLOAD_CONTENT_TYPE),
        protocol: Protocol::Gcs,
        expires_at_ms: expiry::deadline(app.limits.expire_after),
        ..NewUpload::default()
    };
    let upload = app.store.create(new).await?;
    let id = upload.id();
    tracing::info!(%id, ?total, "GCS session initiated");
    let session = location(&headers, &format!("/gcs/{id}"));
    Ok((StatusCode::OK, [(header::LOCATION, session)]).into_response())
}

/// `DELETE /gcs/{id}`: `499` as GCS answers; later requests naming the
/// session get `410`.
async fn cancel(State(app): State<AppState>, Path(id): Path<String>) -> Handled {
    found(&app, &id).await?;
    if !app.store.cancel(&id).await? {
        return Err(Reply::not_found());
    }
    tracing::info!(%id, "GCS session cancelled");
    let status = StatusCode::from_u16(CANCELLED).unwrap_or(StatusCode::NO_CONTENT);
    Ok(text(status, "the upload session was cancelled"))
}

/// The bytes a session reports held: whole units while it is unfinished
/// (a failover may have lost a tail that is not), every byte once
/// complete.
fn held(snap: &Snapshot) -> u64 {
    if snap.complete {
        snap.stored
    } else {
        snap.stored / UNIT * UNIT
    }
}

/// A reply carrying `Range: bytes=0-N` for the bytes held (no `Range`
/// when none are).
fn with_range(status: StatusCode, snap: &Snapshot, msg: &str) -> Response {
    let mut h = HeaderMap::new();
    if let Some(last) = held(snap).checked_sub(1)
        && let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{last}"))
    {
        h.insert(HeaderName::from_static("range"), v);
    }
    (status, h, msg.to_owned()).into_response()
}

/// `308 Resume Incomplete` with the bytes held.
fn incomplete(snap: &Snapshot) -> Response {
    with_range(StatusCode::PERMANENT_REDIRECT, snap, "")
}

/// `200` with the object GCS would describe: the session is complete.
async fn finished(upload: &Upload, snap: &Snapshot) -> Handled {
    let object = serde_json::json!({
        "kind": "storage#object",
        "id": snap.id,
        "name": snap.filename.as_deref().unwrap_or(&snap.id),
        "size": snap.stored.to_string(),
        "contentType": snap.content_type.as_deref().unwrap_or("application/octet-stream"),
        "sha256": upload.sha256().await?,
    });
    Ok((StatusCode::OK, Json(object)).into_response())
}
