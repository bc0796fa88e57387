//! `POST /ietf`: upload creation, with or without data. `Upload-Complete:
//! ?1` makes the body the whole upload; `?0` leaves it open for appends.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Interop, UPLOAD_LIMIT, state_headers, upload_complete, upload_limit};
use crate::ranged::{MAX_META_LEN, disposition_filename};
use crate::reply::{bad, content_length, header_str, location, opt_u64};
use crate::store::{NewUpload, Protocol};
use crate::{AppState, body, expiry};

fn too_large(app: &AppState, version: u8, msg: &str) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(UPLOAD_LIMIT, upload_limit(app, None, version))],
        msg.to_owned(),
    )
        .into_response()
}

pub(super) async fn create(
    State(app): State<AppState>,
    axum::Extension(Interop(version)): axum::Extension<Interop>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if headers.contains_key("upload-offset") {
        return bad("a creation request must not carry Upload-Offset");
    }
    let complete = match upload_complete(&headers) {
        Ok(Some(c)) => c,
        Ok(None) => return bad("Upload-Complete: ?0 or ?1 required"),
        Err(e) => return e.into_response(),
    };
    let declared = match opt_u64(&headers, "upload-length") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let cl = content_length(&headers);
    let total = match (complete, declared, cl) {
        (true, Some(d), Some(c)) if d != c => {
            return bad("Upload-Length and the body's length (Upload-Complete: ?1) disagree");
        }
        (true, d, c) => d.or(c),
        (false, d, _) => d,
    };
    if let (Some(t), Some(c)) = (total, cl)
        && c > t
    {
        return bad("body longer than Upload-Length");
    }
    let max = app.store.max_size();
    if total.is_some_and(|t| t > max) || cl.is_some_and(|c| c > max) {
        return too_large(&app, version, "upload larger than max-size");
    }
    let max_append = app.limits.max_append_size;
    if let (Some(limit), Some(c)) = (max_append, cl)
        && c > limit
    {
        return too_large(&app, version, "body larger than max-append-size");
    }
    let filename =
        header_str(&headers, header::CONTENT_DISPOSITION.as_str()).and_then(disposition_filename);
    let content_type = header_str(&headers, header::CONTENT_TYPE.as_str())
        .map(|v| v.trim().chars().take(MAX_META_LEN).collect::<String>())
        .filter(|v| !v.is_empty());
    let new = NewUpload {
        total,
        filename,
        content_type,
        protocol: Protocol::Ietf,
        expires_at_ms: expiry::deadline(app.limits.expire_after),
        ..NewUpload::default()
    };
    let upload = match app.store.create(new).await {
        Ok(u) => u,
        Err(e) => return crate::limits::create_failed(&e),
    };
    let id = upload.id().to_owned();
    tracing::info!(%id, ?total, complete, version, "IETF upload created");
    let mut writer = match upload.writer(app.store.crashed()).await {
        Ok(w) => w,
        Err(e) => return expiry::internal(&e),
    };
    // A deferred length counts what arrives: at most the store's headroom.
    let room = total
        .unwrap_or_else(|| max.min(app.store.headroom()))
        .min(max_append.unwrap_or(u64::MAX));
    let mut frames = body.into_data_stream();
    let streamed = match body::stream_into(&mut writer, 0, room, true, true, &mut frames).await {
        Ok(s) => s,
        Err(e) => return expiry::internal(&e),
    };
    if streamed.too_long {
        drop(writer);
        let _ = app.store.delete(&id).await;
        return if total.is_some() {
            bad("body longer than the upload's length")
        } else {
            too_large(
                &app,
                version,
                "body larger than max-size or max-append-size",
            )
        };
    }
    let finished = if complete && !streamed.broken {
        match total {
            Some(t) if t != streamed.written => {
                drop(writer);
                let _ = app.store.delete(&id).await;
                return bad("Upload-Complete: ?1 but the body is not Upload-Length bytes");
            }
            Some(_) => {}
            None => writer.set_total(streamed.written),
        }
        writer.finish_complete().await
    } else {
        writer.finish().await
    };
    let snap = match finished {
        Ok(s) => s,
        Err(e) => return expiry::internal(&e),
    };
    let mut h = state_headers(&app, &snap, version);
    if let Ok(v) = HeaderValue::from_str(&location(&headers, &format!("/ietf/{id}"))) {
        h.insert(header::LOCATION, v);
    }
    (StatusCode::CREATED, h).into_response()
}
