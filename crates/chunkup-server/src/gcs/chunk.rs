//! `PUT /gcs/{id}`: a chunk (`Content-Range: bytes S-E/T` or `bytes
//! S-E/*`) or a status query (`bytes */T` or `bytes */*`, no body).
//! Answers `308` + `Range` while the upload is incomplete, `200` + the
//! object once it is. Chunks are fault-injected like every append.
//!
//! - Every chunk that does not end the upload is a multiple of 256 KiB
//!   (`400` otherwise).
//! - A chunk that starts beyond the bytes held is not read: `308` with the
//!   real `Range`.
//! - A chunk that overlaps the bytes held adds only the new bytes (the held
//!   ones are not overwritten).
//! - What arrived of a chunk that broke off is kept in whole 256 KiB units
//!   (all of it when it reaches the upload's length).
//! - A status query never finalizes an upload that lacks bytes; with every
//!   byte held and the length stated (`bytes */T`, `T` = bytes held) it
//!   completes it, as GCS does (a stream that ended on a chunk boundary).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use super::{UNIT, finished, incomplete, with_range};
use crate::append::{self, Placement, Prefix};
use crate::headers::{ContentRange, content_length, header_str};
use crate::reply::{Handled, Reply, found, poll_fault};
use crate::serve::KillSwitch;
use crate::store::{Snapshot, Upload};
use crate::{AppState, body, expiry, limits};

pub(super) async fn put(
    State(app): State<AppState>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    let upload = found(&app, &id).await?;
    let range = header_str(&headers, header::CONTENT_RANGE.as_str())
        .and_then(ContentRange::parse)
        .ok_or_else(|| {
            Reply::bad(
                "Content-Range required: bytes START-END/TOTAL, bytes START-END/* (length \
                 unknown yet), or bytes */TOTAL, bytes */* (status query)",
            )
        })?;
    let cl = content_length(&headers);
    let Some((start, end)) = range.span else {
        return status_query(&app, &upload, range.total, cl).await;
    };
    if end < start {
        return Err(Reply::bad(
            "invalid Content-Range: the last byte is before the first",
        ));
    }
    let len = end - start + 1;
    if let Some(cl) = cl
        && cl != len
    {
        return Err(Reply::bad(format!(
            "Content-Length {cl} differs from the {len} bytes of Content-Range"
        )));
    }
    let snap = upload.snapshot();
    if snap.complete {
        return finished(&upload, &snap).await;
    }
    let total = stated_total(&app, &snap, range.total)?;
    if let Some(total) = total
        && end >= total
    {
        return Err(Reply::bad(format!(
            "Content-Range ends beyond the upload's length {total}"
        )));
    }
    let max = app.store.max_size();
    if end >= max {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {max} bytes"),
        ));
    }
    if total != Some(end + 1) && len % UNIT != 0 {
        return Err(Reply::bad(format!(
            "Invalid request: every chunk but the last must be a multiple of {UNIT} bytes \
             (256 KiB); this one is {len} bytes"
        )));
    }
    let growth = total.unwrap_or(end + 1).saturating_sub(snap.stored);
    limits::deferred_room(&app, snap.total.is_some(), Some(growth))?;
    if start > snap.stored {
        return Ok(incomplete(&snap));
    }
    let declared = total.filter(|_| snap.total.is_none());
    let mut frames = body.into_data_stream();
    let prefix = Prefix {
        upload: &upload,
        at: start,
        declared,
        store: true,
        placement: Placement::SkipHeld,
        unit: UNIT,
    };
    append::admit(&app, &mut frames, len, kill, prefix).await?;
    let mut writer = append::writer(&app, &upload).await?;
    writer.skip_held();
    let now = writer.snapshot();
    if now.complete {
        drop(writer);
        return finished(&upload, &now).await;
    }
    if start > now.stored {
        return Ok(incomplete(&now));
    }
    if let (None, Some(total)) = (now.total, declared) {
        if total < now.stored {
            return Err(Reply::bad(format!(
                "Content-Range total {total} is below the {} bytes held",
                now.stored
            )));
        }
        writer.set_total(total);
    }
    let streamed = body::stream_into(&mut writer, start, len, true, true, &mut frames).await?;
    let short = streamed.broken || streamed.written < len;
    let stored = writer.snapshot().stored;
    if short && Some(stored) != total {
        // GCS persists in whole units: a partial one is dropped.
        writer
            .truncate((stored / UNIT * UNIT).max(now.stored))
            .await?;
    }
    if let Some(at) = expiry::deadline(app.limits.expire_after) {
        writer.refresh_expiry(at);
    }
    let snap = writer.finish().await?;
    if streamed.too_long {
        return Err(with_range(
            StatusCode::BAD_REQUEST,
            &snap,
            "body longer than Content-Range: the excess was dropped",
        )
        .into());
    }
    if short {
        return Err(with_range(
            StatusCode::BAD_REQUEST,
            &snap,
            "body shorter than Content-Range: whole 256 KiB units were kept",
        )
        .into());
    }
    if snap.complete {
        return finished(&upload, &snap).await;
    }
    Ok(incomplete(&snap))
}

/// `PUT` with `Content-Range: bytes */T` or `bytes */*` and no body.
async fn status_query(
    app: &AppState,
    upload: &Upload,
    total: Option<u64>,
    cl: Option<u64>,
) -> Handled {
    if cl.is_some_and(|cl| cl > 0) {
        return Err(Reply::bad(
            "a status query (Content-Range: bytes */...) carries no body",
        ));
    }
    poll_fault(app)?;
    let snap = upload.snapshot();
    if snap.complete {
        return finished(upload, &snap).await;
    }
    let total = stated_total(app, &snap, total)?;
    if total != Some(snap.stored) {
        return Ok(incomplete(&snap));
    }
    // Every byte held and the length stated: finalize.
    let mut writer = append::writer(app, upload).await?;
    let now = writer.snapshot();
    if now.total.is_none() && total == Some(now.stored) {
        writer.set_total(now.stored);
    }
    let snap = writer.finish().await?;
    if snap.complete {
        return finished(upload, &snap).await;
    }
    Ok(incomplete(&snap))
}

/// The upload's length once the request's `Content-Range` total (`None`
/// for `*`) is taken into account: it must agree with a known length, and
/// may not be below the bytes held or above the server's maximum.
fn stated_total(
    app: &AppState,
    snap: &Snapshot,
    stated: Option<u64>,
) -> Result<Option<u64>, Reply> {
    match (stated, snap.total) {
        (Some(stated), Some(known)) if stated != known => Err(Reply::bad(format!(
            "Content-Range total {stated} differs from the upload's length {known}"
        ))),
        (Some(stated), None) if stated < snap.stored => Err(Reply::bad(format!(
            "Content-Range total {stated} is below the {} bytes held",
            snap.stored
        ))),
        (Some(stated), None) if stated > app.store.max_size() => Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {} bytes", app.store.max_size()),
        )),
        _ => Ok(stated.or(snap.total)),
    }
}
