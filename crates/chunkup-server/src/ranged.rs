//! The "ranged" resumable protocol (Odnoklassniki/FileAPI style):
//! `POST /ranged` creates, `POST|PUT /ranged/{id}` sends a chunk with
//! `Content-Range`, `GET /ranged/{id}` polls status, `DELETE` removes.
//! Ranged routes expire nothing.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::append::{self, Placement, Prefix};
use crate::headers::{ContentRange, content_type, filename, header_str, parse_u64};
use crate::reply::{Handled, Reply, existing, poll_fault, remove};
use crate::serve::KillSwitch;
use crate::store::{NewUpload, is_valid_id};
use crate::{AppState, body};

/// `X-Last-Known-Byte`: inclusive index of the last contiguous byte held.
pub(crate) const LAST_KNOWN_BYTE: HeaderName = HeaderName::from_static("x-last-known-byte");
const UPLOAD_CONTENT_LENGTH: &str = "x-upload-content-length";

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/ranged", post(create)).route(
        "/ranged/{id}",
        get(status).post(chunk).put(chunk).delete(delete),
    )
}

fn lkb(stored: u64) -> HeaderValue {
    match stored.checked_sub(1) {
        Some(n) => HeaderValue::from(n),
        None => HeaderValue::from_static("-1"),
    }
}

/// A reply carrying `X-Last-Known-Byte` for `stored` contiguous bytes.
fn with_lkb(status: StatusCode, stored: u64, body: impl Into<String>) -> Response {
    (status, [(LAST_KNOWN_BYTE, lkb(stored))], body.into()).into_response()
}

/// 416 + LKB: the chunk starts beyond the bytes held (a hole).
fn hole(stored: u64) -> Reply {
    with_lkb(
        StatusCode::RANGE_NOT_SATISFIABLE,
        stored,
        "chunk starts beyond the stored bytes",
    )
    .into()
}

async fn create(State(app): State<AppState>, headers: HeaderMap) -> Handled {
    let total = header_str(&headers, UPLOAD_CONTENT_LENGTH)
        .and_then(parse_u64)
        .ok_or_else(|| {
            Reply::bad("X-Upload-Content-Length header required: the total size in bytes")
        })?;
    if total > app.store.max_size() {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {} bytes", app.store.max_size()),
        ));
    }
    let new = NewUpload {
        total: Some(total),
        filename: filename(&headers),
        content_type: content_type(&headers, header::CONTENT_TYPE.as_str()),
        ..NewUpload::default()
    };
    let snap = app.store.create(new).await?.snapshot();
    tracing::info!(id = %snap.id, total, "upload created");
    let location = format!("/ranged/{}", snap.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (LAST_KNOWN_BYTE, "-1".to_owned()),
        ],
    )
        .into_response())
}

async fn status(State(app): State<AppState>, Path(id): Path<String>) -> Handled {
    let upload = existing(&app, &id).await?;
    poll_fault(&app)?;
    let snap = upload.snapshot();
    let total = snap.total.map_or("*".to_owned(), |t| t.to_string());
    let body = if snap.stored > 0 {
        format!("0-{}/{total}", snap.stored - 1)
    } else {
        String::new()
    };
    Ok(with_lkb(StatusCode::OK, snap.stored, body))
}

async fn delete(State(app): State<AppState>, Path(id): Path<String>) -> Handled {
    remove(&app, &id, false).await?;
    tracing::info!(%id, "upload deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn chunk(
    State(app): State<AppState>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    if !is_valid_id(&id) {
        return Err(Reply::not_found());
    }
    let (start, end, total) = header_str(&headers, header::CONTENT_RANGE.as_str())
        .and_then(ContentRange::parse)
        .and_then(ContentRange::whole)
        .ok_or_else(|| Reply::bad("Content-Range: bytes START-END/TOTAL required"))?;
    let upload = existing(&app, &id).await?;
    let snap = upload.snapshot();
    if end < start || end >= total {
        return Err(Reply::bad("invalid Content-Range"));
    }
    if snap.total != Some(total) {
        let known = snap.total.map_or("unknown".to_owned(), |t| t.to_string());
        return Err(Reply::bad(format!(
            "Content-Range total {total} differs from the upload's {known}"
        )));
    }
    let len = end - start + 1;
    let mut frames = body.into_data_stream();
    let prefix = Prefix {
        upload: &upload,
        at: start,
        declared: None,
        store: true,
        placement: Placement::Overwrite,
        unit: 1,
    };
    append::admit(&app, &mut frames, len, kill, prefix).await?;
    if start > snap.stored {
        return Err(hole(snap.stored));
    }
    let mut writer = append::writer(&app, &upload).await?;
    let now = writer.snapshot();
    if start > now.stored {
        return Err(hole(now.stored));
    }
    let s = body::stream_into(&mut writer, start, len, true, !now.complete, &mut frames).await?;
    let snap = writer.finish().await?;
    if s.too_long {
        return Err(with_lkb(
            StatusCode::BAD_REQUEST,
            snap.stored,
            "body longer than Content-Range",
        )
        .into());
    }
    if s.broken || s.written < len {
        return Err(with_lkb(
            StatusCode::BAD_REQUEST,
            snap.stored,
            "body shorter than Content-Range",
        )
        .into());
    }
    Ok(with_lkb(StatusCode::OK, snap.stored, ""))
}
