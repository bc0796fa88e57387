//! `POST /tus`: creation, creation-defer-length, creation-with-upload, and
//! (through [`super::concat`]) the final upload of a concatenation.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{OCTET_STREAM, UPLOAD_OFFSET, add_expires, concat, metadata};
use crate::headers::{content_length, content_type_is, header_str, opt_u64};
use crate::reply::{Handled, Reply, location};
use crate::store::{Concat, NewUpload, Protocol, Snapshot};
use crate::{AppState, append, body, expiry, limits};

/// The `Upload-Concat` of a creation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ConcatRequest {
    Partial,
    /// Ids of the parts, in order.
    Final(Vec<String>),
}

pub(super) async fn create(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Handled {
    let concat = header_str(&headers, "upload-concat")
        .map(concat::parse)
        .transpose()
        .map_err(Reply::bad)?;
    let raw_metadata = header_str(&headers, "upload-metadata").map(str::to_owned);
    limits::check_metadata(&app, raw_metadata.as_deref())?;
    let meta = raw_metadata
        .as_deref()
        .map(metadata::parse)
        .transpose()
        .map_err(Reply::bad)?
        .unwrap_or_default();
    let with_body = content_type_is(&headers, OCTET_STREAM);
    let declared = opt_u64(&headers, "upload-length")?;
    let deferred = match header_str(&headers, "upload-defer-length") {
        None => false,
        Some(v) if v.trim() == "1" => true,
        Some(_) => return Err(Reply::bad("Upload-Defer-Length must be 1")),
    };
    if let Some(ConcatRequest::Final(parts)) = concat {
        if declared.is_some() || deferred {
            return Err(Reply::bad(
                "a final upload takes no Upload-Length: it is the sum of its parts",
            ));
        }
        if with_body && content_length(&headers) != Some(0) {
            return Err(Reply::text(
                StatusCode::FORBIDDEN,
                "a final upload cannot take data",
            ));
        }
        return concat::create_final(&app, &headers, parts, raw_metadata, meta).await;
    }
    let total = match (declared, deferred) {
        (Some(n), false) => Some(n),
        (None, true) => None,
        _ => {
            return Err(Reply::bad(
                "exactly one of Upload-Length and Upload-Defer-Length: 1 is required",
            ));
        }
    };
    let max = app.store.max_size();
    if total.is_some_and(|t| t > max) || (with_body && content_length(&headers) > Some(max)) {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload too large: at most {max} bytes"),
        ));
    }
    if with_body
        && let (Some(t), Some(cl)) = (total, content_length(&headers))
        && cl > t
    {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body longer than Upload-Length",
        ));
    }
    let (filename, content_type) = metadata::file_info(&meta);
    let new = NewUpload {
        total,
        filename,
        content_type,
        protocol: Protocol::Tus,
        metadata: meta,
        raw_metadata,
        concat: concat.map(|_| Concat::Partial),
        expires_at_ms: expiry::deadline(app.limits.expire_after),
    };
    let upload = app.store.create(new).await?;
    let id = upload.id().to_owned();
    tracing::info!(%id, ?total, with_body, "tus upload created");
    let snap = if with_body {
        let mut writer = append::writer(&app, &upload).await?;
        // A deferred length counts what arrives: at most the store's headroom.
        let room = total.unwrap_or_else(|| max.min(app.store.headroom()));
        let mut frames = body.into_data_stream();
        let streamed = body::stream_into(&mut writer, 0, room, true, true, &mut frames).await?;
        let snap = writer.finish().await?;
        if streamed.too_long {
            let _ = app.store.delete(&id).await;
            return Err(Reply::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body longer than the upload",
            ));
        }
        snap
    } else {
        upload.snapshot()
    };
    Ok(created(&headers, &snap))
}

/// 201 + absolute `Location` + `Upload-Offset` (+ `Upload-Expires`).
pub(super) fn created(req: &HeaderMap, snap: &Snapshot) -> Response {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location(req, &format!("/tus/{}", snap.id))) {
        h.insert(header::LOCATION, v);
    }
    h.insert(UPLOAD_OFFSET, HeaderValue::from(snap.stored));
    add_expires(&mut h, snap);
    (StatusCode::CREATED, h).into_response()
}
