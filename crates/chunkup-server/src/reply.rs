//! Small helpers shared by the tus and IETF handlers: plain-text replies,
//! strict header parsing, absolute `Location`s and upload lookup.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::expiry::{self, Lookup};
use crate::store::Upload;

/// A plain-text reply.
pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

/// 400 with a message.
pub(crate) fn bad(msg: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, msg)
}

/// A header as text (`None` when missing or not visible ASCII).
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A non-negative integer of at most 19 digits (digits only, surrounding
/// whitespace allowed).
pub(crate) fn parse_u64(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A malformed request header: answered 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadHeader(pub(crate) String);

impl IntoResponse for BadHeader {
    fn into_response(self) -> Response {
        bad(self.0)
    }
}

/// An optional numeric header: `Ok(None)` when missing, `Err` when present
/// but not a non-negative integer.
pub(crate) fn opt_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, BadHeader> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_u64)
            .map(Some)
            .ok_or_else(|| BadHeader(format!("{name} must be a non-negative integer"))),
    }
}

/// The request's `Content-Length`, when it has one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(parse_u64)
}

/// True when `Content-Type` is `media` (parameters and case ignored).
pub(crate) fn content_type_is(headers: &HeaderMap, media: &str) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str()).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
    })
}

/// An absolute URL for `path` on the host the client asked (`Host`), so a
/// client behind the failover proxy gets the proxy's address; the relative
/// `path` when the request has no usable `Host`.
pub(crate) fn location(headers: &HeaderMap, path: &str) -> String {
    let host = header_str(headers, header::HOST.as_str()).filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    });
    let https = header_str(headers, "x-forwarded-proto")
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    match host {
        Some(host) => format!("{}://{host}{path}", if https { "https" } else { "http" }),
        None => path.to_owned(),
    }
}

/// The live upload `id`, or the reply for a missing (404) or expired (410)
/// one.
pub(crate) async fn found(app: &AppState, id: &str) -> Result<Arc<Upload>, Response> {
    match expiry::lookup(app, id).await {
        Lookup::Found(u) => Ok(u),
        Lookup::Missing => Err(text(StatusCode::NOT_FOUND, "no such upload")),
        Lookup::Gone => Err(text(StatusCode::GONE, "the upload expired")),
        Lookup::Failed(r) => Err(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn numbers_and_locations() {
        assert_eq!(parse_u64(" 42 "), Some(42));
        for bad in ["", "-1", "+1", "1.0", "0x10", "99999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
        let mut h = HeaderMap::new();
        assert_eq!(location(&h, "/tus/x"), "/tus/x");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(location(&h, "/tus/x"), "http://127.0.0.1:8080/tus/x");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(location(&h, "/tus/x"), "https://127.0.0.1:8080/tus/x");
        h.insert(header::HOST, HeaderValue::from_static("a/b"));
        assert_eq!(location(&h, "/tus/x"), "/tus/x");
    }
}
