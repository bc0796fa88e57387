//! The answers to requests past a resource limit, in one place so every
//! protocol answers alike:
//!
//! | limit | answer |
//! | --- | --- |
//! | unfinished uploads ([`crate::ServerConfig::max_unfinished`]) | creation: `503` + `Retry-After` (uploads finish or expire) |
//! | total size ([`crate::ServerConfig::max_total_size`]) | creation, or an append to a deferred-length upload: `507` |
//! | free disk ([`crate::ServerConfig::min_free_disk`]) | creation: `507`; append: `503` + `Retry-After` (the upload stays, resumable) |
//! | `Upload-Metadata` ([`crate::ServerConfig::max_metadata_size`]) | `431` |
//! | request head ([`crate::ServerConfig::max_header_size`]) | `431` |

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::reply::Reply;
use crate::store::{CreateError, Refusal};

/// `Retry-After` seconds of a `503` for a limit: long enough for uploads
/// to finish or disk space to be freed, short enough to notice it soon.
pub(crate) const RETRY_AFTER_SECS: u64 = 10;

/// `503` + `Retry-After`.
fn busy(msg: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS))],
        msg,
    )
        .into_response()
}

fn insufficient(msg: String) -> Response {
    (StatusCode::INSUFFICIENT_STORAGE, msg).into_response()
}

/// The reply to a failed creation.
pub(crate) fn create_failed(e: &CreateError) -> Response {
    let refusal = match e {
        CreateError::Io(e) => return crate::reply::internal(e),
        CreateError::Refused(r) => *r,
    };
    tracing::warn!(?refusal, "upload creation refused by a limit");
    match refusal {
        Refusal::TooManyUnfinished { limit } => busy(format!(
            "too many unfinished uploads (the limit is {limit}); retry later"
        )),
        Refusal::OverTotal {
            limit,
            used,
            wanted,
        } => insufficient(format!(
            "the store is full: it holds {used} of its {limit} bytes and the upload needs {wanted}"
        )),
        Refusal::DiskShort {
            available,
            wanted,
            margin,
        } => insufficient(format!(
            "not enough free disk space: {available} bytes free, the upload needs {wanted} \
             and {margin} must stay free"
        )),
    }
}

/// `None` while the disk keeps its free-space margin; else the `503` +
/// `Retry-After` an append gets (nothing is stored; call before reading
/// the body).
pub(crate) async fn check_disk(app: &AppState) -> Option<Response> {
    if !app.store.disk_short().await {
        return None;
    }
    tracing::warn!("append refused: the disk is below its free-space margin");
    Some(busy(format!(
        "the disk is almost full (less than {} bytes free); retry later",
        app.store.limits().min_free_disk
    )))
}

/// An append to a deferred-length upload that would take the store past
/// its total size: answered `507`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreFull {
    headroom: u64,
    limit: u64,
}

impl From<StoreFull> for Reply {
    fn from(full: StoreFull) -> Self {
        let StoreFull { headroom, limit } = full;
        insufficient(format!(
            "the store is full: {headroom} of its {limit} bytes are left"
        ))
        .into()
    }
}

/// For an append to an upload whose length is still unknown: the most it
/// may add within the store's total size, or [`StoreFull`] when it asks for
/// more (`wanted`: the growth a declared length or `Content-Length`
/// announces). `Ok(u64::MAX)` when the length is known (it was counted
/// whole at creation).
pub(crate) fn deferred_room(
    app: &AppState,
    length_known: bool,
    wanted: Option<u64>,
) -> Result<u64, StoreFull> {
    if length_known {
        return Ok(u64::MAX);
    }
    let headroom = app.store.headroom();
    if headroom == 0 || wanted.is_some_and(|w| w > headroom) {
        return Err(StoreFull {
            headroom,
            limit: app.store.limits().max_total_size,
        });
    }
    Ok(headroom)
}

/// The `431` for an `Upload-Metadata` longer than the limit.
pub(crate) fn check_metadata(app: &AppState, raw: Option<&str>) -> Result<(), Reply> {
    let max = app.limits.max_metadata_size;
    let len = raw.map_or(0, str::len);
    if len > max {
        return Err(Reply::text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("Upload-Metadata is {len} bytes; at most {max} are accepted"),
        ));
    }
    Ok(())
}

/// The `431` for a request whose header names and values add up to more
/// than `max` bytes, if it does.
pub(crate) fn check_head(headers: &HeaderMap, max: usize) -> Option<Response> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (size > max).then(|| {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request headers are {size} bytes; at most {max} are accepted\n"),
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_size() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("12345"));
        assert!(check_head(&h, 8).is_none());
        let refused = check_head(&h, 7).expect("refused");
        assert_eq!(
            refused.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn refusals_map_to_statuses() {
        let status = |r: Refusal| create_failed(&CreateError::Refused(r)).status();
        assert_eq!(
            status(Refusal::TooManyUnfinished { limit: 1 }),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let resp = create_failed(&CreateError::Refused(Refusal::TooManyUnfinished {
            limit: 1,
        }));
        assert_eq!(resp.headers()[header::RETRY_AFTER], "10");
        assert_eq!(
            status(Refusal::OverTotal {
                limit: 1,
                used: 1,
                wanted: 1
            }),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            status(Refusal::DiskShort {
                available: 1,
                wanted: 1,
                margin: 1
            }),
            StatusCode::INSUFFICIENT_STORAGE
        );
    }
}
