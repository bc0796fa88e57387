//! Request bodies shared by every protocol: streaming a body into an upload
//! frame by frame, reading a bounded body into memory (checksums), draining,
//! and the tail of a reset/stall fault.

use std::time::Duration;

use axum::body::BodyDataStream;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::serve::KillSwitch;
use crate::store::ChunkWriter;

/// How streaming a body into an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streamed {
    /// Bytes taken from the body (the prefix up to the limit).
    pub(crate) written: u64,
    /// The body had more bytes than the limit.
    pub(crate) too_long: bool,
    /// Reading the body failed (the client's connection broke).
    pub(crate) broken: bool,
}

/// Streams at most `limit` body bytes into `writer` at `start`. With
/// `probe`, a body longer than `limit` is detected (one more frame is read
/// after the limit). With `store == false` the bytes are read but not
/// written (a complete upload). When the body breaks off on a server with
/// all-or-nothing appends, nothing of it stays stored (`written` is 0).
pub(crate) async fn stream_into(
    writer: &mut ChunkWriter<'_>,
    start: u64,
    limit: u64,
    probe: bool,
    store: bool,
    frames: &mut BodyDataStream,
) -> std::io::Result<Streamed> {
    let stored_before = writer.snapshot().stored;
    let (mut pos, end) = (start, start.saturating_add(limit));
    let (mut too_long, mut broken) = (false, false);
    while pos < end {
        match frames.next().await {
            Some(Ok(bytes)) => {
                let room = usize::try_from(end - pos).unwrap_or(usize::MAX);
                let take = room.min(bytes.len());
                if store {
                    writer.write_at(pos, &bytes[..take]).await?;
                }
                pos += take as u64;
                if bytes.len() > take {
                    too_long = true;
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::info!(error = %e, at = pos, "request body broke off");
                broken = true;
                break;
            }
            None => break,
        }
    }
    if probe && !too_long && !broken && pos == end {
        // Notice a body longer than the limit without waiting long for it.
        match frames.next().await {
            Some(Ok(bytes)) => too_long = !bytes.is_empty(),
            Some(Err(_)) => broken = true,
            None => {}
        }
    }
    if broken && store && writer.rollback_broken(stored_before).await? {
        pos = start;
    }
    Ok(Streamed {
        written: pos - start,
        too_long,
        broken,
    })
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// More than the allowed bytes.
    TooLong,
    /// The connection broke.
    Broken,
}

/// Reads the whole body into memory, failing past `max` bytes.
pub(crate) async fn read_bounded(
    frames: &mut BodyDataStream,
    max: u64,
) -> Result<Bytes, ReadError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = frames.next().await {
        let bytes = frame.map_err(|_| ReadError::Broken)?;
        if buf.len() as u64 + bytes.len() as u64 > max {
            return Err(ReadError::TooLong);
        }
        buf.extend_from_slice(&bytes);
    }
    Ok(buf.freeze())
}

/// Reads and discards up to `max` body bytes.
pub(crate) async fn drain(frames: &mut BodyDataStream, max: u64) {
    let mut seen = 0u64;
    while seen <= max {
        match frames.next().await {
            Some(Ok(b)) => seen += b.len() as u64,
            _ => break,
        }
    }
}

/// The end of a reset or stall fault, once the kept bytes are written:
/// optionally stall (the connection and the unread rest of the body stay
/// open, unread), then reset the connection. Never returns when there is a
/// kill switch; without one (not served by our accept loop) answers
/// `fallback()`.
pub(crate) async fn reset_tail(
    stall: Option<Duration>,
    kill: Option<KillSwitch>,
    fallback: impl FnOnce() -> Response,
) -> Response {
    if let Some(secs) = stall {
        tokio::time::sleep(secs).await;
    }
    match kill {
        Some(kill) => {
            kill.kill();
            std::future::pending::<Response>().await
        }
        None => fallback(),
    }
}
