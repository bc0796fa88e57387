//! `PATCH /ietf/{id}`: appends at `Upload-Offset`; `Upload-Complete: ?1`
//! ends the upload (its length is then the offset after the body).
//! Fault-injected like a ranged chunk.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;

use super::{
    Interop, PARTIAL_UPLOAD, UPLOAD_COMPLETE, UPLOAD_LIMIT, UPLOAD_OFFSET, sf_bool, state_headers,
    upload_complete, upload_limit,
};
use crate::append::{self, Placement, Prefix};
use crate::headers::{content_length, content_type_is, opt_u64};
use crate::reply::{Handled, Reply, found};
use crate::serve::KillSwitch;
use crate::{AppState, body, expiry, limits};

/// 409 carrying the correct `Upload-Offset`.
fn conflict(stored: u64) -> Reply {
    (
        StatusCode::CONFLICT,
        [
            (UPLOAD_OFFSET, HeaderValue::from(stored)),
            (UPLOAD_COMPLETE, sf_bool(false)),
        ],
        format!("Upload-Offset does not match the upload's offset {stored}"),
    )
        .into_response()
        .into()
}

const ALREADY_COMPLETE: &str = "the upload is already complete";
const LENGTH_DIFFERS: &str = "Upload-Length differs from the upload's length";

pub(super) async fn append(
    State(app): State<AppState>,
    axum::Extension(Interop(version)): axum::Extension<Interop>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let upload = found(&app, &id).await?;
    if !content_type_is(&headers, PARTIAL_UPLOAD) {
        return Err(Reply::bad(
            "Content-Type: application/partial-upload required",
        ));
    }
    let offset =
        opt_u64(&headers, "upload-offset")?.ok_or_else(|| Reply::bad("Upload-Offset required"))?;
    let complete = match upload_complete(&headers)? {
        Some(c) => c,
        // -11 requires it on every append; -05 only requires ?0 on a
        // non-final one, read a missing one as ?0.
        None if version == 6 => false,
        None => return Err(Reply::bad("Upload-Complete: ?0 or ?1 required")),
    };
    let declared = opt_u64(&headers, "upload-length")?;
    let cl = content_length(&headers);
    let snap = upload.snapshot();
    if snap.complete {
        return Err(if version == 8 && cl == Some(0) {
            Reply::text(StatusCode::GONE, ALREADY_COMPLETE)
        } else {
            Reply::bad(ALREADY_COMPLETE)
        });
    }
    if offset != snap.stored {
        return Err(conflict(snap.stored));
    }
    let too_large = |msg: &str| -> Reply {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(UPLOAD_LIMIT, upload_limit(&app, Some(&snap), version))],
            msg.to_owned(),
        )
            .into_response()
            .into()
    };
    let max_append = app.limits.max_append_size;
    if let (Some(limit), Some(c)) = (max_append, cl)
        && c > limit
    {
        return Err(too_large("body larger than max-append-size"));
    }
    if let (Some(known), Some(d)) = (snap.total, declared)
        && known != d
    {
        return Err(Reply::bad(LENGTH_DIFFERS));
    }
    let total = snap.total.or(declared);
    let max = app.store.max_size();
    if total.is_some_and(|t| t < offset) {
        return Err(Reply::bad("Upload-Length is below the upload's offset"));
    }
    if total.is_some_and(|t| t > max) {
        return Err(too_large("Upload-Length above max-size"));
    }
    if let Some(c) = cl {
        let end = offset.saturating_add(c);
        if total.is_some_and(|t| end > t) {
            return Err(Reply::bad("body beyond the upload's length"));
        }
        if complete && total.is_some_and(|t| end != t) {
            return Err(Reply::bad(
                "Upload-Complete: ?1 but the upload would not reach Upload-Length",
            ));
        }
        if end > max {
            return Err(too_large("upload larger than max-size"));
        }
    }
    let growth = declared.map(|len| len.saturating_sub(offset)).or(cl);
    let quota = limits::deferred_room(&app, snap.total.is_some(), growth)?;
    let room = append::room(total, max, offset)
        .min(max_append.unwrap_or(u64::MAX))
        .min(quota);
    let mut frames = body.into_data_stream();
    let len = cl.unwrap_or(room.min(64 * 1024));
    let prefix = Prefix {
        upload: &upload,
        at: offset,
        declared,
        store: true,
        placement: Placement::AtOffset,
        unit: 1,
    };
    append::admit(&app, &mut frames, len, kill, prefix).await?;
    let mut writer = append::writer(&app, &upload).await?;
    let now = writer.snapshot();
    if now.complete {
        return Err(Reply::bad(ALREADY_COMPLETE));
    }
    if now.stored != offset {
        return Err(conflict(now.stored));
    }
    if let Some(d) = declared {
        match now.total {
            None => writer.set_total(d),
            Some(t) if t != d => return Err(Reply::bad(LENGTH_DIFFERS)),
            Some(_) => {}
        }
    }
    let streamed = body::stream_into(&mut writer, offset, room, true, true, &mut frames).await?;
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
    let snap = if (complete || reaches_length) && intact {
        match total {
            Some(t) if t != end => {
                inconsistent = true;
                writer.finish().await?
            }
            Some(_) => writer.finish_complete().await?,
            None => {
                writer.set_total(end);
                writer.finish_complete().await?
            }
        }
    } else {
        writer.finish().await?
    };
    let h = state_headers(&app, &snap, version);
    if streamed.too_long {
        let status = if total.is_some() && max_append.is_none_or(|m| room < m) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::PAYLOAD_TOO_LARGE
        };
        return Err((status, h, "body too long: the excess was dropped")
            .into_response()
            .into());
    }
    if inconsistent {
        return Err((
            StatusCode::BAD_REQUEST,
            h,
            "Upload-Complete: ?1 but the upload did not reach Upload-Length",
        )
            .into_response()
            .into());
    }
    if streamed.broken {
        return Err((StatusCode::BAD_REQUEST, h, "the body broke off")
            .into_response()
            .into());
    }
    Ok((StatusCode::NO_CONTENT, h).into_response())
}
