//! tus `concatenation`: `Upload-Concat: partial` marks a part;
//! `Upload-Concat: final;<url> <url> ...` builds a new upload from the
//! bytes of complete parts, synchronously, inside the POST.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};

use super::create::{ConcatRequest, created};
use super::metadata;
use crate::AppState;
use crate::expiry::{self, Lookup};
use crate::reply::{Handled, Reply};
use crate::store::{Concat, NewUpload, Protocol, is_valid_id};

/// Parses `Upload-Concat` (`partial` or `final;<urls>`).
pub(super) fn parse(value: &str) -> Result<ConcatRequest, String> {
    let value = value.trim();
    if value == "partial" {
        return Ok(ConcatRequest::Partial);
    }
    let Some(urls) = value.strip_prefix("final;") else {
        return Err("Upload-Concat must be `partial` or `final;<url> ...`".to_owned());
    };
    let ids = urls
        .split_whitespace()
        .map(|url| part_id(url).ok_or_else(|| format!("`{url}` is not a /tus/{{id}} upload URL")))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err("Upload-Concat: final; lists no uploads".to_owned());
    }
    Ok(ConcatRequest::Final(ids))
}

/// The id in an absolute or relative URL whose path ends in `/tus/{id}`.
fn part_id(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    };
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let id = segments.next()?;
    (segments.next()? == "tus" && is_valid_id(id)).then(|| id.to_owned())
}

/// Creates the final upload from `parts` (all complete partial uploads).
pub(super) async fn create_final(
    app: &AppState,
    req: &HeaderMap,
    parts: Vec<String>,
    raw_metadata: Option<String>,
    meta: BTreeMap<String, String>,
) -> Handled {
    let mut uploads = Vec::with_capacity(parts.len());
    let mut total = 0u64;
    for id in &parts {
        let upload = match expiry::lookup(app, id).await {
            Lookup::Found(u) => u,
            Lookup::Missing | Lookup::Gone(_) => {
                return Err(Reply::bad(format!("no partial upload {id}")));
            }
            Lookup::Failed(e) => return Err(e.into()),
        };
        let snap = upload.snapshot();
        if snap.concat != Some(Concat::Partial) {
            return Err(Reply::bad(format!("upload {id} is not a partial upload")));
        }
        let Some(len) = snap.total.filter(|_| snap.complete) else {
            return Err(Reply::bad(format!("partial upload {id} is not finished")));
        };
        total = total.saturating_add(len);
        uploads.push(upload);
    }
    if total > app.store.max_size() {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the parts add up to {total} bytes, more than {}",
                app.store.max_size()
            ),
        ));
    }
    let (filename, content_type) = metadata::file_info(&meta);
    let new = NewUpload {
        total: Some(total),
        filename,
        content_type,
        protocol: Protocol::Tus,
        metadata: meta,
        raw_metadata,
        concat: Some(Concat::Final { parts }),
        expires_at_ms: None,
    };
    let upload = app.store.create(new).await?;
    let id = upload.id().to_owned();
    let assembled = async {
        let mut writer = upload.writer(app.store.crashed()).await?;
        let mut pos = 0;
        for part in &uploads {
            pos += part.copy_into(&mut writer, pos).await?;
        }
        writer.finish().await
    }
    .await;
    match assembled {
        Ok(snap) => {
            tracing::info!(%id, total, parts = uploads.len(), "tus final upload assembled");
            Ok(created(req, &snap))
        }
        Err(e) => {
            let _ = app.store.delete(&id).await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_headers() {
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        assert_eq!(parse("partial"), Ok(ConcatRequest::Partial));
        assert_eq!(
            parse(&format!("final;/tus/{a} http://h:1/x/tus/{b}?q  /tus/{a}/")),
            Ok(ConcatRequest::Final(vec![a.into(), b.into(), a.into()]))
        );
        assert!(parse("final;").is_err());
        assert!(parse(&format!("final;/ranged/{a}")).is_err());
        assert!(parse("final;/tus/../etc").is_err());
        assert!(parse("whole").is_err());
    }
}
