//! What every append (a ranged chunk, a tus or IETF `PATCH`, a GCS chunk)
//! goes through before its body is read: the free-disk check, then the
//! fault decision — one injector and one script index for all protocols —
//! carried out, including keeping a body prefix before an injected reset.

use std::time::Duration;

use axum::body::BodyDataStream;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::faults::ChunkFault;
use crate::reply::{Reply, text};
use crate::serve::KillSwitch;
use crate::store::{ChunkWriter, Upload};
use crate::{AppState, body, expiry, limits};

/// Where an append's bytes may land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Exactly at the upload's offset (tus, IETF): a request that finds the
    /// offset moved keeps nothing.
    AtOffset,
    /// At or below the offset; bytes held are overwritten (ranged).
    Overwrite,
    /// At or below the offset; bytes held stay and the body's copy of them
    /// is dropped (GCS).
    SkipHeld,
}

/// How to keep the prefix of an append's body that arrived before an
/// injected reset or stall.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefix<'a> {
    pub(crate) upload: &'a Upload,
    /// Where the body's first byte goes.
    pub(crate) at: u64,
    /// A length the request declares for an upload whose length is unknown.
    pub(crate) declared: Option<u64>,
    /// False: the bytes are read but not stored (a checksummed tus body
    /// cannot be verified in part).
    pub(crate) store: bool,
    pub(crate) placement: Placement,
    /// Only whole units of this many bytes are kept (GCS persists in
    /// 256 KiB units), unless the prefix reaches the upload's length; 1
    /// for byte granularity.
    pub(crate) unit: u64,
}

/// What to do with an append after asking the fault injector.
#[derive(Debug)]
enum Decision {
    /// No fault: handle the request.
    Proceed,
    /// An error or busy fault; the body was drained.
    Respond(Reply),
    /// Keep `after` body bytes, optionally stall, then reset.
    Reset { after: u64, stall: Option<Duration> },
}

/// Asks the fault injector about an append whose body is `len` bytes.
async fn decide(app: &AppState, len: u64, frames: &mut BodyDataStream) -> Decision {
    match app.faults.decide_chunk(len.max(1)) {
        None => Decision::Proceed,
        Some(ChunkFault::Error { status }) => {
            body::drain(frames, len).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Decision::Respond(Reply::text(status, "injected error"))
        }
        Some(ChunkFault::Busy { retry_after }) => {
            body::drain(frames, len).await;
            Decision::Respond(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, retry_after.to_string())],
                    "server busy, retry later",
                )
                    .into_response()
                    .into(),
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

/// Admits an append whose body is `len` bytes (an estimate for a body
/// without `Content-Length`): `Ok` to go on and read the body; `Err` with
/// the answer when the disk is short (503, body drained) or an error or
/// busy fault hits it (body drained). A reset or stall fault keeps the
/// `prefix` that arrived, then resets the connection: with a kill switch
/// it never returns.
pub(crate) async fn admit(
    app: &AppState,
    frames: &mut BodyDataStream,
    len: u64,
    kill: Option<axum::Extension<KillSwitch>>,
    prefix: Prefix<'_>,
) -> Result<(), Reply> {
    if let Some(refused) = limits::check_disk(app).await {
        body::drain(frames, len).await;
        return Err(refused.into());
    }
    match decide(app, len, frames).await {
        Decision::Proceed => Ok(()),
        Decision::Respond(reply) => Err(reply),
        Decision::Reset { after, stall } => {
            keep_prefix(app, prefix, after, frames).await?;
            let reset = body::reset_tail(stall, kill.map(|k| k.0), || {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "connection reset (emulated)",
                )
            });
            Err(reset.await.into())
        }
    }
}

/// The writer of `upload` (404 when its file went away meanwhile).
pub(crate) async fn writer<'a>(
    app: &'a AppState,
    upload: &'a Upload,
) -> Result<ChunkWriter<'a>, Reply> {
    match upload.writer(app.store.crashed()).await {
        Ok(w) => Ok(w),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Reply::not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Before an injected reset: when the body may still land where the prefix
/// says, declares a deferred length sent with the request, writes up to
/// `after` body bytes (whole units only; read but not written when the
/// prefix is not stored, on a server with all-or-nothing appends, or to a
/// complete upload) and moves the expiry. Never completes an IETF upload.
async fn keep_prefix(
    app: &AppState,
    prefix: Prefix<'_>,
    after: u64,
    frames: &mut BodyDataStream,
) -> Result<(), Reply> {
    let Prefix {
        upload,
        at,
        declared,
        store,
        placement,
        unit,
    } = prefix;
    let mut writer = writer(app, upload).await?;
    let snap = writer.snapshot();
    let lands = match placement {
        Placement::AtOffset => snap.stored == at,
        Placement::Overwrite | Placement::SkipHeld => at <= snap.stored,
    };
    if !lands {
        return Ok(());
    }
    if placement == Placement::SkipHeld {
        writer.skip_held();
    }
    if let (None, Some(len)) = (snap.total, declared) {
        writer.set_total(len);
    }
    let total = snap.total.or(declared);
    let end = at + after.min(room(total, app.store.max_size(), at));
    let end = if Some(end) == total {
        end
    } else {
        end / unit.max(1) * unit.max(1)
    };
    let kept = body::stream_into(
        &mut writer,
        at,
        end.saturating_sub(at),
        false,
        store && !snap.complete && !app.store.atomic_appends(),
        frames,
    )
    .await?;
    if let Some(at) = expiry::deadline(app.limits.expire_after) {
        writer.refresh_expiry(at);
    }
    writer.finish().await?;
    tracing::info!(
        id = %upload.id(),
        kept = if store { kept.written } else { 0 },
        "fault: bytes kept before the connection drops"
    );
    Ok(())
}

/// Bytes an upload can still take at `offset`: up to its length, or up to
/// the server's maximum while the length is unknown.
pub(crate) fn room(total: Option<u64>, max_size: u64, offset: u64) -> u64 {
    total.unwrap_or(max_size).saturating_sub(offset)
}
