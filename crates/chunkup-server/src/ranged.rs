//! The "ranged" resumable protocol (Odnoklassniki/FileAPI style):
//! `POST /ranged` creates, `POST|PUT /ranged/{id}` sends a chunk with
//! `Content-Range`, `GET /ranged/{id}` polls status, `DELETE` removes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, BodyDataStream};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::body;
use crate::faults::ChunkFault;
use crate::serve::KillSwitch;
use crate::store::{NewUpload, Snapshot, Upload, is_valid_id};

/// `X-Last-Known-Byte`: inclusive index of the last contiguous byte held.
pub(crate) const LAST_KNOWN_BYTE: HeaderName = HeaderName::from_static("x-last-known-byte");
const UPLOAD_CONTENT_LENGTH: &str = "x-upload-content-length";
/// Longest filename / content type remembered.
pub(crate) const MAX_META_LEN: usize = 255;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/ranged", post(create)).route(
        "/ranged/{id}",
        get(status).post(chunk).put(chunk).delete(remove),
    )
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
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

fn internal(e: &std::io::Error) -> Response {
    tracing::error!(error = %e, "storage error");
    text(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "no such upload")
}

async fn lookup(app: &AppState, id: &str) -> Result<Arc<Upload>, Response> {
    match app.store.get(id).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(not_found()),
        Err(e) => Err(internal(&e)),
    }
}

/// Parses `bytes S-E/T` (digits only) into `(S, E, T)`.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let num = |s: &str| {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()
    };
    Some((num(start)?, num(end)?, num(total)?))
}

/// The `filename` of a `Content-Disposition` header (`filename*=UTF-8''…`
/// preferred), sanitised: the last path component, no control characters,
/// at most 255 characters. Never used as a path.
pub(crate) fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value) {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename" => plain = Some(unquote(val.trim())),
            "filename*" => {
                let val = val.trim();
                if let Some((charset, rest)) = val.split_once('\'')
                    && charset.eq_ignore_ascii_case("utf-8")
                    && let Some((_lang, enc)) = rest.split_once('\'')
                {
                    extended = percent_decode(enc);
                }
            }
            _ => {}
        }
    }
    sanitize_filename(&extended.or(plain)?)
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn sanitize_filename(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_META_LEN)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        None
    } else {
        Some(cleaned.to_owned())
    }
}

pub(crate) fn header_str(
    headers: &HeaderMap,
    name: impl axum::http::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn create(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(total) = header_str(&headers, UPLOAD_CONTENT_LENGTH).and_then(|v| {
        let v = v.trim();
        v.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u64>().ok())
            .flatten()
    }) else {
        return text(
            StatusCode::BAD_REQUEST,
            "X-Upload-Content-Length header required: the total size in bytes",
        );
    };
    if total > app.store.max_size() {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {} bytes", app.store.max_size()),
        );
    }
    let filename = header_str(&headers, header::CONTENT_DISPOSITION).and_then(disposition_filename);
    let content_type = header_str(&headers, header::CONTENT_TYPE)
        .map(|v| v.trim().chars().take(MAX_META_LEN).collect::<String>())
        .filter(|v| !v.is_empty());
    let new = NewUpload {
        total: Some(total),
        filename,
        content_type,
        ..NewUpload::default()
    };
    match app.store.create(new).await {
        Ok(upload) => {
            let snap = upload.snapshot();
            tracing::info!(id = %snap.id, total, "upload created");
            let location = format!("/ranged/{}", snap.id);
            (
                StatusCode::CREATED,
                [
                    (header::LOCATION, location),
                    (LAST_KNOWN_BYTE, "-1".to_owned()),
                ],
            )
                .into_response()
        }
        Err(e) => crate::limits::create_failed(&e),
    }
}

async fn status(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let upload = match lookup(&app, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if app.faults.decide_status() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "injected status fault");
    }
    let snap = upload.snapshot();
    let total = snap.total.map_or("*".to_owned(), |t| t.to_string());
    let body = if snap.stored > 0 {
        format!("0-{}/{total}", snap.stored - 1)
    } else {
        String::new()
    };
    with_lkb(StatusCode::OK, snap.stored, body)
}

async fn remove(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match app.store.delete(&id).await {
        Ok(true) => {
            tracing::info!(%id, "upload deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => not_found(),
        Err(e) => internal(&e),
    }
}

/// How streaming a chunk into an upload ended.
#[derive(Debug)]
struct Written {
    /// Bytes written (the prefix of the body up to the limit).
    written: u64,
    /// The body had more bytes than the limit.
    too_long: bool,
    /// Reading the body failed (the client's connection broke).
    broken: bool,
    /// The upload after the write.
    snap: Snapshot,
}

/// Streams at most `limit` bytes of the body into `upload` at `start`, frame
/// by frame. With `whole`, `limit` is the full chunk and a longer body is
/// detected. `Err(response)` for 416 (start beyond stored) and storage errors.
async fn write_body(
    app: &AppState,
    upload: &Upload,
    start: u64,
    limit: u64,
    whole: bool,
    frames: &mut BodyDataStream,
) -> Result<Written, Response> {
    let mut writer = match upload.writer(app.store.crashed()).await {
        Ok(w) => w,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(internal(&e)),
    };
    let snap = writer.snapshot();
    if start > snap.stored {
        return Err(with_lkb(
            StatusCode::RANGE_NOT_SATISFIABLE,
            snap.stored,
            "chunk starts beyond the stored bytes",
        ));
    }
    let s = body::stream_into(&mut writer, start, limit, whole, !snap.complete, frames)
        .await
        .map_err(|e| internal(&e))?;
    let snap = writer.finish().await.map_err(|e| internal(&e))?;
    Ok(Written {
        written: s.written,
        too_long: s.too_long,
        broken: s.broken,
        snap,
    })
}

/// Persists `after` body bytes (none with all-or-nothing appends),
/// optionally stalls, then resets the connection. Never returns normally
/// when a kill switch is present.
async fn reset_after(
    app: &AppState,
    upload: &Upload,
    start: u64,
    after: u64,
    stall: Option<std::time::Duration>,
    kill: Option<KillSwitch>,
    frames: &mut BodyDataStream,
) -> Response {
    let stored = upload.snapshot().stored;
    if start <= stored && after > 0 && !app.store.atomic_appends() {
        match write_body(app, upload, start, after, false, frames).await {
            Ok(w) => tracing::info!(
                id = %w.snap.id,
                kept = w.written,
                "fault: bytes kept before the connection drops"
            ),
            Err(r) => return r,
        }
    }
    body::reset_tail(stall, kill, || {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "connection reset (emulated)",
        )
    })
    .await
}

async fn chunk(
    State(app): State<AppState>,
    Path(id): Path<String>,
    kill: Option<axum::Extension<KillSwitch>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_valid_id(&id) {
        return not_found();
    }
    let Some((start, end, total)) =
        header_str(&headers, header::CONTENT_RANGE).and_then(parse_content_range)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "Content-Range: bytes START-END/TOTAL required",
        );
    };
    let upload = match lookup(&app, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let snap = upload.snapshot();
    if end < start || end >= total {
        return text(StatusCode::BAD_REQUEST, "invalid Content-Range");
    }
    if snap.total != Some(total) {
        let known = snap.total.map_or("unknown".to_owned(), |t| t.to_string());
        return text(
            StatusCode::BAD_REQUEST,
            format!("Content-Range total {total} differs from the upload's {known}"),
        );
    }
    let len = end - start + 1;
    let mut frames = body.into_data_stream();
    let kill = kill.map(|axum::Extension(k)| k);
    if let Some(refused) = crate::limits::check_disk(&app).await {
        body::drain(&mut frames, len).await;
        return refused;
    }
    match app.faults.decide_chunk(len) {
        Some(ChunkFault::Error { status }) => {
            body::drain(&mut frames, len).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(status, "injected error");
        }
        Some(ChunkFault::Busy { retry_after }) => {
            body::drain(&mut frames, len).await;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, retry_after.to_string())],
                "server busy, retry later",
            )
                .into_response();
        }
        Some(ChunkFault::Reset { after }) => {
            return reset_after(
                &app,
                &upload,
                start,
                after.min(len),
                None,
                kill,
                &mut frames,
            )
            .await;
        }
        Some(ChunkFault::Stall { after, secs }) => {
            return reset_after(
                &app,
                &upload,
                start,
                after.min(len),
                Some(secs),
                kill,
                &mut frames,
            )
            .await;
        }
        None => {}
    }
    if start > snap.stored {
        return with_lkb(
            StatusCode::RANGE_NOT_SATISFIABLE,
            snap.stored,
            "chunk starts beyond the stored bytes",
        );
    }
    let w = match write_body(&app, &upload, start, len, true, &mut frames).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if w.too_long {
        return with_lkb(
            StatusCode::BAD_REQUEST,
            w.snap.stored,
            "body longer than Content-Range",
        );
    }
    if w.broken || w.written < len {
        return with_lkb(
            StatusCode::BAD_REQUEST,
            w.snap.stored,
            "body shorter than Content-Range",
        );
    }
    with_lkb(StatusCode::OK, w.snap.stored, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(parse_content_range(" bytes  5-5/6 "), Some((5, 5, 6)));
        for bad in [
            "bytes 0-9",
            "0-9/10",
            "bytes */10",
            "bytes +0-9/10",
            "bytes a-9/10",
            "bytes 0-/10",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn filenames() {
        let f = |v: &str| disposition_filename(v);
        assert_eq!(
            f("attachment; filename=\"a b.txt\""),
            Some("a b.txt".into())
        );
        assert_eq!(
            f("attachment; filename=plain.bin"),
            Some("plain.bin".into())
        );
        assert_eq!(
            f("attachment; filename=\"../../etc/passwd\""),
            Some("passwd".into())
        );
        assert_eq!(
            f("attachment; filename=\"C:\\\\x\\\\y.doc\""),
            Some("y.doc".into())
        );
        assert_eq!(f("attachment; filename=\"..\""), None);
        assert_eq!(
            f("attachment; filename=\"semi;colon\""),
            Some("semi;colon".into())
        );
        assert_eq!(
            f("attachment; filename=\"fallback\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"),
            Some("été.txt".into())
        );
        assert_eq!(f("attachment"), None);
        assert_eq!(f("attachment; filename=\"a\u{7}b\""), Some("ab".into()));
    }
}
