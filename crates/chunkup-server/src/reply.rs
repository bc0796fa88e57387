//! What every protocol's handlers share to answer: [`Reply`], the early
//! answer that makes a bad header, a missing upload or a storage error a
//! `?`; plain-text replies; absolute `Location`s; upload lookup and
//! removal; the status-poll fault.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::expiry::{self, Lookup};
use crate::headers::header_str;
use crate::store::{CreateError, Gone, Upload};

/// What a handler returns: the answer to a request that went through, or
/// the [`Reply`] that stopped it early.
pub(crate) type Handled = Result<Response, Reply>;

/// A response that ends a handler early (a refusal, an injected fault, a
/// storage error). It is itself a response, so `Err(reply)` and `?` answer
/// the request. Boxed: a `Response` is large and this travels in every
/// handler's `Result`.
#[derive(Debug)]
pub(crate) struct Reply(Box<Response>);

impl Reply {
    /// A plain-text reply.
    pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Reply {
        text(status, msg).into()
    }

    /// 400 with a message.
    pub(crate) fn bad(msg: impl Into<String>) -> Reply {
        Reply::text(StatusCode::BAD_REQUEST, msg)
    }

    /// 404: no such upload.
    pub(crate) fn not_found() -> Reply {
        Reply::text(StatusCode::NOT_FOUND, "no such upload")
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Reply(Box::new(r))
    }
}

/// A storage error: 500 (logged).
impl From<std::io::Error> for Reply {
    fn from(e: std::io::Error) -> Self {
        internal(&e).into()
    }
}

/// A creation refused by a limit, or failed in the store.
impl From<CreateError> for Reply {
    fn from(e: CreateError) -> Self {
        crate::limits::create_failed(&e).into()
    }
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

/// 500 for a storage error (logged).
pub(crate) fn internal(e: &std::io::Error) -> Response {
    tracing::error!(error = %e, "storage error");
    text(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
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

/// The live upload `id`, or the reply for a missing (404) or an expired or
/// cancelled (410) one (tus, IETF, GCS).
pub(crate) async fn found(app: &AppState, id: &str) -> Result<Arc<Upload>, Reply> {
    match expiry::lookup(app, id).await {
        Lookup::Found(u) => Ok(u),
        Lookup::Missing => Err(Reply::not_found()),
        Lookup::Gone(Gone::Expired) => Err(Reply::text(StatusCode::GONE, "the upload expired")),
        Lookup::Gone(Gone::Cancelled) => Err(Reply::text(
            StatusCode::GONE,
            "the upload session was cancelled",
        )),
        Lookup::Failed(e) => Err(e.into()),
    }
}

/// The upload `id` whether or not it expired (ranged routes expire
/// nothing), or 404.
pub(crate) async fn existing(app: &AppState, id: &str) -> Result<Arc<Upload>, Reply> {
    app.store.get(id).await?.ok_or_else(Reply::not_found)
}

/// Removes the upload `id` (404 when there is none; with `expiring`, 410
/// when it expired, as [`found`]).
pub(crate) async fn remove(app: &AppState, id: &str, expiring: bool) -> Result<(), Reply> {
    if expiring {
        found(app, id).await?;
    }
    if app.store.delete(id).await? {
        Ok(())
    } else {
        Err(Reply::not_found())
    }
}

/// A status poll (ranged `GET`, tus/IETF `HEAD`, GCS status query): 503
/// when the fault injector says so.
pub(crate) fn poll_fault(app: &AppState) -> Result<(), Reply> {
    if app.faults.decide_status() {
        return Err(Reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected status fault",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn locations() {
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
