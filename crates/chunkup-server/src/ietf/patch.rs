//! `PATCH /ietf/{id}`: appends at `Upload-Offset`; `Upload-Complete: ?1`
//! ends the upload (its length is then the offset after the body).
//! Fault-injected like a ranged chunk.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    Interop, PARTIAL_UPLOAD, UPLOAD_COMPLETE, UPLOAD_LIMIT, UPLOAD_OFFSET, sf_bool, state_headers,
    upload_complete, upload_limit,
};
use crate::append::{self, Decision};
use crate::reply::{bad, content_length, content_type_is, found, opt_u64, text};
use crate::serve::KillSwitch;
use crate::{AppState, body, expiry, limits};

/// 409 carrying the correct `Upload-Offset`.
fn conflict(stored: u64) -> Response {
    (
        StatusCode::CONFLICT,
        [
            (UPLOAD_OFFSET, HeaderValue::from(stored)),
            (UPLOAD_COMPLETE, sf_bool(false)),
        ],
        format!("Upload-Offset does not match the upload's offset {stored}"),
    )
        .into_response()
}

pub(super) async fn append(
    State(app): State<AppState>,
    axum::Extension(Interop(version)): axum::Extension<Interop>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let upload = match found(&app, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !content_type_is(&headers, PARTIAL_UPLOAD) {
        return bad("Content-Type: application/partial-upload required");
    }
    let offset = match opt_u64(&headers, "upload-offset") {
        Ok(Some(o)) => o,
        Ok(None) => return bad("Upload-Offset required"),
        Err(e) => return e.into_response(),
    };
    let complete = match upload_complete(&headers) {
        Ok(Some(c)) => c,
        // -11 requires it on every append; -05 only requires ?0 on a
        // non-final one, read a missing one as ?0.
        Ok(None) if version == 6 => false,
        Ok(None) => return bad("Upload-Complete: ?0 or ?1 required"),
        Err(e) => return e.into_response(),
    };
    let declared = match opt_u64(&headers, "upload-length") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let cl = content_length(&headers);
    let snap = upload.snapshot();
    if snap.complete {
        return if version == 8 && cl == Some(0) {
            text(StatusCode::GONE, "the upload is already complete")
        } else {
            bad("the upload is already complete")
        };
    }
    if offset != snap.stored {
        return conflict(snap.stored);
    }
    let too_large = |msg: &str| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(UPLOAD_LIMIT, upload_limit(&app, Some(&snap), version))],
            msg.to_owned(),
        )
            .into_response()
    };
    let max_append = app.limits.max_append_size;
    if let (Some(limit), Some(c)) = (max_append, cl)
        && c > limit
    {
        return too_large("body larger than max-append-size");
    }
    if let (Some(known), Some(d)) = (snap.total, declared)
        && known != d
    {
        return bad("Upload-Length differs from the upload's length");
    }
    let total = snap.total.or(declared);
    let max = app.store.max_size();
    if total.is_some_and(|t| t < offset) {
        return bad("Upload-Length is below the upload's offset");
    }
    if total.is_some_and(|t| t > max) {
        return too_large("Upload-Length above max-size");
    }
    if let Some(c) = cl {
        let end = offset.saturating_add(c);
        if total.is_some_and(|t| end > t) {
            return bad("body beyond the upload's length");
        }
        if complete && total.is_some_and(|t| end != t) {
            return bad("Upload-Complete: ?1 but the upload would not reach Upload-Length");
        }
        if end > max {
            return too_large("upload larger than max-size");
        }
    }
    let growth = declared.map(|len| len.saturating_sub(offset)).or(cl);
    let quota = match limits::deferred_room(&app, snap.total.is_some(), growth) {
        Ok(q) => q,
        Err(full) => return full.into_response(),
    };
    let room = append::room(total, max, offset)
        .min(max_append.unwrap_or(u64::MAX))
        .min(quota);
    let mut frames = body.into_data_stream();
    let len = cl.unwrap_or(room.min(64 * 1024));
    if let Some(refused) = limits::check_disk(&app).await {
        body::drain(&mut frames, len).await;
        return refused;
    }
    match append::decide(&app, len, &mut frames).await {
        Decision::Proceed => {}
        Decision::Respond(r) => return r,
        Decision::Reset { after, stall } => {
            if let Err(r) =
                append::keep_prefix(&app, &upload, offset, declared, after, true, &mut frames).await
            {
                return r;
            }
            return body::reset_tail(stall, kill.map(|k| k.0), || {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "connection reset (emulated)",
                )
            })
            .await;
        }
    }
    let mut writer = match upload.writer(app.store.crashed()).await {
        Ok(w) => w,
        Err(e) => return expiry::internal(&e),
    };
    let now = writer.snapshot();
    if now.complete {
        return bad("the upload is already complete");
    }
    if now.stored != offset {
        return conflict(now.stored);
    }
    if let Some(d) = declared {
        match now.total {
            None => writer.set_total(d),
            Some(t) if t != d => return bad("Upload-Length differs from the upload's length"),
            Some(_) => {}
        }
    }
    let streamed = match body::stream_into(&mut writer, offset, room, true, true, &mut frames).await
    {
        Ok(s) => s,
        Err(e) => return expiry::internal(&e),
    };
    if let Some(at) = expiry::deadline(app.limits.expire_after) {
        writer.refresh_expiry(at);
    }
    let end = offset + streamed.written;
    let mut inconsistent = false;
    let intact = !streamed.broken && !streamed.too_long;
    // Interop 6 (draft -05): an append that reaches a known Upload-Length
    // completes the upload even with `Upload-Complete: ?0`, as tusd does;
    // clients such as tus-js-client never send `?1` on a chunked upload.
    let reaches_length = version == 6 && intact && total == Some(end);
    let finished = if (complete || reaches_length) && intact {
        match total {
            Some(t) if t != end => {
                inconsistent = true;
                writer.finish().await
            }
            Some(_) => writer.finish_complete().await,
            None => {
                writer.set_total(end);
                writer.finish_complete().await
            }
        }
    } else {
        writer.finish().await
    };
    let snap = match finished {
        Ok(s) => s,
        Err(e) => return expiry::internal(&e),
    };
    let h = state_headers(&app, &snap, version);
    if streamed.too_long {
        let status = if total.is_some() && max_append.is_none_or(|m| room < m) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::PAYLOAD_TOO_LARGE
        };
        return (status, h, "body too long: the excess was dropped").into_response();
    }
    if inconsistent {
        return (
            StatusCode::BAD_REQUEST,
            h,
            "Upload-Complete: ?1 but the upload did not reach Upload-Length",
        )
            .into_response();
    }
    if streamed.broken {
        return (StatusCode::BAD_REQUEST, h, "the body broke off").into_response();
    }
    (StatusCode::NO_CONTENT, h).into_response()
}
