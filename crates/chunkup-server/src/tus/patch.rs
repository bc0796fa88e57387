//! `PATCH /tus/{id}`: appends at `Upload-Offset`, declares a deferred
//! length, verifies `Upload-Checksum`; fault-injected like a ranged chunk.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;

use super::{OCTET_STREAM, UPLOAD_OFFSET, add_expires};
use crate::append::{self, Placement, Prefix, room};
use crate::body::{self, ReadError, Streamed};
use crate::checksum::{self, Expected};
use crate::headers::{content_length, content_type_is, header_str, opt_u64};
use crate::reply::{Handled, Reply, found};
use crate::serve::KillSwitch;
use crate::store::Concat;
use crate::{AppState, expiry, limits};

/// 409 carrying the server's offset.
fn conflict(stored: u64) -> Reply {
    (
        StatusCode::CONFLICT,
        [(UPLOAD_OFFSET, HeaderValue::from(stored))],
        format!("Upload-Offset does not match the upload's offset {stored}"),
    )
        .into_response()
        .into()
}

fn too_large(msg: &str) -> Reply {
    Reply::text(StatusCode::PAYLOAD_TOO_LARGE, msg)
}

pub(crate) async fn patch(
    State(app): State<AppState>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let upload = found(&app, &id).await?;
    if !content_type_is(&headers, OCTET_STREAM) {
        return Err(Reply::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/offset+octet-stream required",
        ));
    }
    let offset =
        opt_u64(&headers, "upload-offset")?.ok_or_else(|| Reply::bad("Upload-Offset required"))?;
    let declared = opt_u64(&headers, "upload-length")?;
    let expected = header_str(&headers, "upload-checksum")
        .map(checksum::parse)
        .transpose()
        .map_err(|e| Reply::bad(e.to_string()))?;
    let snap = upload.snapshot();
    if matches!(snap.concat, Some(Concat::Final { .. })) {
        return Err(Reply::text(
            StatusCode::FORBIDDEN,
            "a final upload cannot be modified",
        ));
    }
    if offset != snap.stored {
        return Err(conflict(snap.stored));
    }
    let max = app.store.max_size();
    if let Some(len) = declared {
        match snap.total {
            Some(total) if total != len => {
                return Err(Reply::bad("Upload-Length cannot change once set"));
            }
            Some(_) => {}
            None if len < offset => {
                return Err(Reply::bad("Upload-Length is below the upload's offset"));
            }
            None if len > max => return Err(too_large("Upload-Length above Tus-Max-Size")),
            None => {}
        }
    }
    let cl = content_length(&headers);
    let growth = declared.map(|len| len.saturating_sub(offset)).or(cl);
    let quota = limits::deferred_room(&app, snap.total.is_some(), growth)?;
    let room = room(snap.total.or(declared), max, offset).min(quota);
    if cl.is_some_and(|cl| cl > room) {
        return Err(too_large("body beyond the upload's length"));
    }
    let max_checksum = app.limits.max_checksum_body;
    if expected.is_some() && cl.is_some_and(|cl| cl > max_checksum) {
        return Err(too_large(
            "a checksummed body may be at most max_checksum_body bytes",
        ));
    }
    let mut frames = body.into_data_stream();
    let len = cl.unwrap_or(room.min(64 * 1024));
    let prefix = Prefix {
        upload: &upload,
        at: offset,
        declared,
        // A checksummed body cannot be verified in part: keep nothing.
        store: expected.is_none(),
        placement: Placement::AtOffset,
        unit: 1,
    };
    append::admit(&app, &mut frames, len, kill, prefix).await?;
    // A checksummed body is read whole and verified before anything is written.
    let verified = match &expected {
        None => None,
        Some(expected) => Some(verify(expected, &mut frames, room.min(max_checksum)).await?),
    };
    let mut writer = append::writer(&app, &upload).await?;
    let snap = writer.snapshot();
    if snap.stored != offset {
        return Err(conflict(snap.stored));
    }
    if let Some(len) = declared {
        match snap.total {
            None => writer.set_total(len),
            Some(total) if total != len => {
                return Err(Reply::bad("Upload-Length cannot change once set"));
            }
            Some(_) => {}
        }
    }
    let room = append::room(snap.total.or(declared), max, offset).min(quota);
    let streamed = match verified {
        Some(data) => {
            writer.write_at(offset, &data).await?;
            Streamed {
                written: data.len() as u64,
                too_long: false,
                broken: false,
            }
        }
        None => {
            body::stream_into(&mut writer, offset, room, true, !snap.complete, &mut frames).await?
        }
    };
    if let Some(at) = expiry::deadline(app.limits.expire_after) {
        writer.refresh_expiry(at);
    }
    let snap = writer.finish().await?;
    let mut h = HeaderMap::new();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(snap.stored));
    add_expires(&mut h, &snap);
    if streamed.too_long {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            h,
            "body beyond the upload's length",
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

/// Reads the body (at most `max` bytes) and checks its digest: 413 when
/// longer, 460 on a mismatch, 400 when it broke off. Nothing is written.
async fn verify(
    expected: &Expected,
    frames: &mut axum::body::BodyDataStream,
    max: u64,
) -> Result<bytes::Bytes, Reply> {
    let data = body::read_bounded(frames, max).await.map_err(|e| match e {
        ReadError::TooLong => too_large("body beyond the upload's length or the checksum limit"),
        ReadError::Broken => Reply::bad("the body broke off; nothing stored"),
    })?;
    if !expected.matches(&data) {
        tracing::info!(algorithm = ?expected.algorithm, len = data.len(), "tus checksum mismatch");
        let status = StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST);
        return Err(Reply::text(status, "checksum mismatch: nothing stored"));
    }
    Ok(data)
}
