//! `POST /ietf`: upload creation, with or without data. `Upload-Complete:
//! ?1` makes the body the whole upload; `?0` leaves it open for appends.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

use super::{Interop, UPLOAD_LIMIT, state_headers, upload_complete, upload_limit};
use crate::headers::{content_length, content_type, filename, opt_u64};
use crate::reply::{Handled, Reply, location};
use crate::store::{NewUpload, Protocol};
use crate::{AppState, append, body, expiry};

fn too_large(app: &AppState, version: u8, msg: &str) -> Reply {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(UPLOAD_LIMIT, upload_limit(app, None, version))],
        msg.to_owned(),
    )
        .into_response()
        .into()
}

pub(super) async fn create(
    State(app): State<AppState>,
    axum::Extension(Interop(version)): axum::Extension<Interop>,
    headers: HeaderMap,
    body: Body,
) -> Handled {
    if headers.contains_key("upload-offset") {
        return Err(Reply::bad(
            "a creation request must not carry Upload-Offset",
        ));
    }
    let complete = upload_complete(&headers)?
        .ok_or_else(|| Reply::bad("Upload-Complete: ?0 or ?1 required"))?;
    let declared = opt_u64(&headers, "upload-length")?;
    let cl = content_length(&headers);
    let total = match (complete, declared, cl) {
        (true, Some(d), Some(c)) if d != c => {
            return Err(Reply::bad(
                "Upload-Length and the body's length (Upload-Complete: ?1) disagree",
            ));
        }
        (true, d, c) => d.or(c),
        (false, d, _) => d,
    };
    if let (Some(t), Some(c)) = (total, cl)
        && c > t
    {
        return Err(Reply::bad("body longer than Upload-Length"));
    }
    let max = app.store.max_size();
    if total.is_some_and(|t| t > max) || cl.is_some_and(|c| c > max) {
        return Err(too_large(&app, version, "upload larger than max-size"));
    }
    let max_append = app.limits.max_append_size;
    if let (Some(limit), Some(c)) = (max_append, cl)
        && c > limit
    {
        return Err(too_large(&app, version, "body larger than max-append-size"));
    }
    let new = NewUpload {
        total,
        filename: filename(&headers),
        content_type: content_type(&headers, header::CONTENT_TYPE.as_str()),
        protocol: Protocol::Ietf,
        expires_at_ms: expiry::deadline(app.limits.expire_after),
        ..NewUpload::default()
    };
    let upload = app.store.create(new).await?;
    let id = upload.id().to_owned();
    tracing::info!(%id, ?total, complete, version, "IETF upload created");
    let mut writer = append::writer(&app, &upload).await?;
    // A deferred length counts what arrives: at most the store's headroom.
    let room = total
        .unwrap_or_else(|| max.min(app.store.headroom()))
        .min(max_append.unwrap_or(u64::MAX));
    let mut frames = body.into_data_stream();
    let streamed = body::stream_into(&mut writer, 0, room, true, true, &mut frames).await?;
    if streamed.too_long {
        drop(writer);
        let _ = app.store.delete(&id).await;
        return Err(if total.is_some() {
            Reply::bad("body longer than the upload's length")
        } else {
            too_large(
                &app,
                version,
                "body larger than max-size or max-append-size",
            )
        });
    }
    let snap = if complete && !streamed.broken {
        match total {
            Some(t) if t != streamed.written => {
                drop(writer);
                let _ = app.store.delete(&id).await;
                return Err(Reply::bad(
                    "Upload-Complete: ?1 but the body is not Upload-Length bytes",
                ));
            }
            Some(_) => {}
            None => writer.set_total(streamed.written),
        }
        writer.finish_complete().await?
    } else {
        writer.finish().await?
    };
    let mut h = state_headers(&app, &snap, version);
    if let Ok(v) = HeaderValue::from_str(&location(&headers, &format!("/ietf/{id}"))) {
        h.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, h).into_response())
}
