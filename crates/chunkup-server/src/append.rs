//! What tus and IETF appends (`PATCH`) share: the fault decision, taken
//! exactly as for a ranged chunk request (same injector, same script
//! index), and keeping a body prefix before an injected reset.

use std::time::Duration;

use axum::body::BodyDataStream;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::faults::ChunkFault;
use crate::reply::text;
use crate::store::Upload;
use crate::{AppState, body, expiry};

/// What to do with an append after asking the fault injector.
#[derive(Debug)]
pub(crate) enum Decision {
    /// No fault: handle the request.
    Proceed,
    /// An error or busy fault; the body was drained.
    Respond(Response),
    /// Keep `after` body bytes, optionally stall, then reset.
    Reset { after: u64, stall: Option<Duration> },
}

/// Asks the fault injector about an append whose body is `len` bytes.
pub(crate) async fn decide(app: &AppState, len: u64, frames: &mut BodyDataStream) -> Decision {
    match app.faults.decide_chunk(len.max(1)) {
        None => Decision::Proceed,
        Some(ChunkFault::Error { status }) => {
            body::drain(frames, len).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Decision::Respond(text(status, "injected error"))
        }
        Some(ChunkFault::Busy { retry_after }) => {
            body::drain(frames, len).await;
            Decision::Respond(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, retry_after.to_string())],
                    "server busy, retry later",
                )
                    .into_response(),
            )
        }
        Some(ChunkFault::Reset { after }) => Decision::Reset {
            after: after.min(len),
            stall: None,
        },
        Some(ChunkFault::Stall { after, secs }) => Decision::Reset {
            after: after.min(len),
            stall: Some(secs),
        },
    }
}

/// Before an injected reset: when the upload still holds `offset` bytes,
/// declares a deferred length sent with the request (`declared`), writes
/// up to `after` body bytes at `offset` (read but not written when
/// `store_bytes` is false, e.g. an unverifiable checksummed body, or on a
/// server with all-or-nothing appends) and moves the expiry. Never completes an IETF upload.
pub(crate) async fn keep_prefix(
    app: &AppState,
    upload: &Upload,
    offset: u64,
    declared: Option<u64>,
    after: u64,
    store_bytes: bool,
    frames: &mut BodyDataStream,
) -> Result<(), Response> {
    let mut writer = upload
        .writer(app.store.crashed())
        .await
        .map_err(|e| expiry::internal(&e))?;
    let snap = writer.snapshot();
    if snap.stored != offset {
        return Ok(());
    }
    if let (None, Some(len)) = (snap.total, declared) {
        writer.set_total(len);
    }
    let room = room(snap.total.or(declared), app.store.max_size(), offset);
    let kept = body::stream_into(
        &mut writer,
        offset,
        after.min(room),
        false,
        store_bytes && !snap.complete && !app.store.atomic_appends(),
        frames,
    )
    .await
    .map_err(|e| expiry::internal(&e))?;
    if let Some(at) = expiry::deadline(app.limits.expire_after) {
        writer.refresh_expiry(at);
    }
    writer.finish().await.map_err(|e| expiry::internal(&e))?;
    tracing::info!(
        id = %upload.id(),
        kept = if store_bytes { kept.written } else { 0 },
        "fault: bytes kept before the connection drops"
    );
    Ok(())
}

/// Bytes an upload can still take at `offset`: up to its length, or up to
/// the server's maximum while the length is unknown.
pub(crate) fn room(total: Option<u64>, max_size: u64, offset: u64) -> u64 {
    total.unwrap_or(max_size).saturating_sub(offset)
}
