//! `PATCH /tus/{id}`: appends at `Upload-Offset`, declares a deferred
//! length, verifies `Upload-Checksum`; fault-injected like a ranged chunk.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{OCTET_STREAM, UPLOAD_OFFSET, add_expires};
use crate::append::{self, Decision, room};
use crate::body::{self, ReadError, Streamed};
use crate::checksum::{self, Expected};
use crate::reply::{bad, content_length, content_type_is, found, header_str, opt_u64, text};
use crate::serve::KillSwitch;
use crate::store::Concat;
use crate::{AppState, expiry, limits};

/// 409 carrying the server's offset.
fn conflict(stored: u64) -> Response {
    (
        StatusCode::CONFLICT,
        [(UPLOAD_OFFSET, HeaderValue::from(stored))],
        format!("Upload-Offset does not match the upload's offset {stored}"),
    )
        .into_response()
}

fn too_large(msg: &str) -> Response {
    text(StatusCode::PAYLOAD_TOO_LARGE, msg)
}

pub(crate) async fn patch(
    State(app): State<AppState>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let upload = match found(&app, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !content_type_is(&headers, OCTET_STREAM) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/offset+octet-stream required",
        );
    }
    let offset = match opt_u64(&headers, "upload-offset") {
        Ok(Some(o)) => o,
        Ok(None) => return bad("Upload-Offset required"),
        Err(e) => return e.into_response(),
    };
    let declared = match opt_u64(&headers, "upload-length") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let expected = match header_str(&headers, "upload-checksum").map(checksum::parse) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => return bad(e.to_string()),
    };
    let snap = upload.snapshot();
    if matches!(snap.concat, Some(Concat::Final { .. })) {
        return text(StatusCode::FORBIDDEN, "a final upload cannot be modified");
    }
    if offset != snap.stored {
        return conflict(snap.stored);
    }
    let max = app.store.max_size();
    if let Some(len) = declared {
        match snap.total {
            Some(total) if total != len => return bad("Upload-Length cannot change once set"),
            Some(_) => {}
            None if len < offset => return bad("Upload-Length is below the upload's offset"),
            None if len > max => return too_large("Upload-Length above Tus-Max-Size"),
            None => {}
        }
    }
    let cl = content_length(&headers);
    let growth = declared.map(|len| len.saturating_sub(offset)).or(cl);
    let quota = match limits::deferred_room(&app, snap.total.is_some(), growth) {
        Ok(q) => q,
        Err(full) => return full.into_response(),
    };
    let room = room(snap.total.or(declared), max, offset).min(quota);
    if cl.is_some_and(|cl| cl > room) {
        return too_large("body beyond the upload's length");
    }
    let max_checksum = app.limits.max_checksum_body;
    if expected.is_some() && cl.is_some_and(|cl| cl > max_checksum) {
        return too_large("a checksummed body may be at most max_checksum_body bytes");
    }
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
            // A checksummed body cannot be verified in part: keep nothing.
            let store = expected.is_none();
            if let Err(r) =
                append::keep_prefix(&app, &upload, offset, declared, after, store, &mut frames)
                    .await
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
    // A checksummed body is read whole and verified before anything is written.
    let verified = match &expected {
        None => None,
        Some(expected) => match verify(expected, &mut frames, room.min(max_checksum)).await {
            Ok(data) => Some(data),
            Err(r) => return r,
        },
    };
    let mut writer = match upload.writer(app.store.crashed()).await {
        Ok(w) => w,
        Err(e) => return expiry::internal(&e),
    };
    let snap = writer.snapshot();
    if snap.stored != offset {
        return conflict(snap.stored);
    }
    if let Some(len) = declared {
        match snap.total {
            None => writer.set_total(len),
            Some(total) if total != len => return bad("Upload-Length cannot change once set"),
            Some(_) => {}
        }
    }
    let room = append::room(snap.total.or(declared), max, offset).min(quota);
    let streamed = match verified {
        Some(data) => match writer.write_at(offset, &data).await {
            Ok(()) => Ok(Streamed {
                written: data.len() as u64,
                too_long: false,
                broken: false,
            }),
            Err(e) => Err(e),
        },
        None => {
            body::stream_into(&mut writer, offset, room, true, !snap.complete, &mut frames).await
        }
    };
    let streamed = match streamed {
        Ok(s) => s,
        Err(e) => return expiry::internal(&e),
    };
    if let Some(at) = expiry::deadline(app.limits.expire_after) {
        writer.refresh_expiry(at);
    }
    let snap = match writer.finish().await {
        Ok(s) => s,
        Err(e) => return expiry::internal(&e),
    };
    let mut h = HeaderMap::new();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(snap.stored));
    add_expires(&mut h, &snap);
    if streamed.too_long {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            h,
            "body beyond the upload's length",
        )
            .into_response();
    }
    if streamed.broken {
        return (StatusCode::BAD_REQUEST, h, "the body broke off").into_response();
    }
    (StatusCode::NO_CONTENT, h).into_response()
}

/// Reads the body (at most `max` bytes) and checks its digest: 413 when
/// longer, 460 on a mismatch, 400 when it broke off. Nothing is written.
async fn verify(
    expected: &Expected,
    frames: &mut axum::body::BodyDataStream,
    max: u64,
) -> Result<bytes::Bytes, Response> {
    let data = match body::read_bounded(frames, max).await {
        Ok(d) => d,
        Err(ReadError::TooLong) => {
            return Err(too_large(
                "body beyond the upload's length or the checksum limit",
            ));
        }
        Err(ReadError::Broken) => return Err(bad("the body broke off; nothing stored")),
    };
    if !expected.matches(&data) {
        tracing::info!(algorithm = ?expected.algorithm, len = data.len(), "tus checksum mismatch");
        let status = StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST);
        return Err(text(status, "checksum mismatch: nothing stored"));
    }
    Ok(data)
}
