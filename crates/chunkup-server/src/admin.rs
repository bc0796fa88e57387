//! Admin endpoints (never fault-injected): upload inspection and run-time
//! fault control, closed unless [`AdminAccess`] opens them.
//!
//! Every admin request passes [`guard`] first:
//! - a request from a page of another origin (an `Origin` that is neither
//!   the server's own, `http(s)://{Host}`, nor one of
//!   [`AdminAccess::origins`]) is refused, preflight included;
//! - the whole API needs [`AdminAccess::open`] and, when set, the
//!   [`AdminAccess::token`] as `Authorization: Bearer`; the fault switch
//!   (`/_admin/faults`) alone also opens to the
//!   [`AdminAccess::fault_switch_token`], the one the web demo page is
//!   handed;
//! - CORS headers name exactly a listed origin, never `*`.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::AppState;
use crate::faults::{FaultCounts, FaultSpec};
use crate::store::Snapshot;

/// Who may use the admin API (`/_admin/...`: the upload list with file
/// names, metadata and sha256, and the fault switch). The default opens
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminAccess {
    /// Open the whole admin API (`chunkup serve --admin`). Default false:
    /// every admin request is answered 403.
    pub open: bool,
    /// With `open`, also require `Authorization: Bearer <token>`
    /// (`chunkup serve --admin-token`). Default `None`: no token.
    pub token: Option<String>,
    /// A bearer token that opens the fault switch alone (`GET` and `PUT
    /// /_admin/faults`), whatever `open` says: the web demo page's. A
    /// server with [`crate::ServerConfig::web_demo`] makes one up when
    /// this is `None`.
    pub fault_switch_token: Option<String>,
    /// Origins of pages on another port that may call the admin API, e.g.
    /// `http://127.0.0.1:8081` (the web demo page on `--web-demo-addr`).
    /// Their requests get CORS headers naming exactly them. A page on the
    /// server's own origin needs no entry.
    pub origins: Vec<String>,
}

impl AdminAccess {
    /// The whole admin API open without a token, to clients on the server's
    /// own origin or none (what the tests use).
    pub fn open() -> Self {
        AdminAccess {
            open: true,
            ..AdminAccess::default()
        }
    }
}

/// True for `/_admin` and everything below it.
pub(crate) fn is_admin_path(path: &str) -> bool {
    crate::under(path, "/_admin")
}

/// The admin routes behind [`guard`].
pub(crate) fn service(state: AppState) -> Router {
    Router::new()
        .route("/_admin/uploads", get(list))
        .route("/_admin/uploads/{id}", get(one))
        .route("/_admin/faults", get(get_faults).put(put_faults))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// How an admin request's `Origin` relates to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// No `Origin` (not a browser, or a same-origin `GET`) or the server's
    /// own origin.
    SameOrigin,
    /// A listed origin (CORS names it).
    Listed(HeaderValue),
    /// Any other origin, `null` included.
    Foreign,
}

fn caller(access: &AdminAccess, headers: &HeaderMap) -> Caller {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Caller::SameOrigin;
    };
    let text = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let own = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .is_some_and(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host));
    if own {
        Caller::SameOrigin
    } else if access
        .origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(text))
    {
        Caller::Listed(origin.clone())
    } else {
        Caller::Foreign
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, format!("{msg}\n")).into_response()
}

/// Adds the CORS headers naming `origin` (never `*`).
fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// Access control of every admin request (see the module docs).
async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let access = &app.admin;
    let fault_switch = req.uri().path() == "/_admin/faults";
    let switch_token = access
        .fault_switch_token
        .as_deref()
        .filter(|_| fault_switch);
    if !access.open && switch_token.is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            "the admin API is closed: start the server with --admin (or --admin-token)",
        );
    }
    let caller = caller(access, req.headers());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if caller == Caller::Foreign {
        tracing::warn!(
            origin = ?req.headers().get(header::ORIGIN),
            path = req.uri().path(),
            "admin request from another origin refused"
        );
        return refuse(
            StatusCode::FORBIDDEN,
            "admin requests from pages of other origins are refused",
        );
    }
    if preflight {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Caller::Listed(origin) = caller {
            let h = resp.headers_mut();
            allow_origin(h, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, PUT"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(Duration::from_secs(600).as_secs()),
            );
        }
        return resp;
    }
    let given = bearer(req.headers());
    let by_switch = switch_token.is_some_and(|t| given.is_some_and(|g| same_secret(g, t)));
    let by_admin = access.open
        && access
            .token
            .as_deref()
            .is_none_or(|t| given.is_some_and(|g| same_secret(g, t)));
    let mut resp = if by_switch || by_admin {
        next.run(req).await
    } else {
        let mut resp = refuse(
            StatusCode::UNAUTHORIZED,
            "the admin API needs its token: Authorization: Bearer <token>",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"chunkup admin\""),
        );
        resp
    };
    if let Caller::Listed(origin) = caller {
        allow_origin(resp.headers_mut(), origin);
    }
    resp
}

/// One upload as the admin API shows it.
#[derive(Debug, Serialize)]
struct UploadInfo {
    #[serde(flatten)]
    snap: Snapshot,
    /// Hex sha256 of the stored bytes; only on the single-upload endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Debug, Serialize)]
struct FaultsInfo {
    spec: String,
    counts: FaultCounts,
}

fn storage_error(e: &std::io::Error) -> Response {
    tracing::error!(error = %e, "admin: storage error");
    (StatusCode::INTERNAL_SERVER_ERROR, "storage error").into_response()
}

async fn list(State(app): State<AppState>) -> Response {
    match app.store.list().await {
        Ok(snaps) => Json(
            snaps
                .into_iter()
                .map(|snap| UploadInfo { snap, sha256: None })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => storage_error(&e),
    }
}

async fn one(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let upload = match app.store.get(&id).await {
        Ok(Some(u)) => u,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such upload").into_response(),
        Err(e) => return storage_error(&e),
    };
    let snap = upload.snapshot();
    match upload.sha256().await {
        Ok(sha) => Json(UploadInfo {
            snap,
            sha256: Some(sha),
        })
        .into_response(),
        Err(e) => storage_error(&e),
    }
}

fn faults_info(app: &AppState) -> Json<FaultsInfo> {
    Json(FaultsInfo {
        spec: app.faults.spec().to_string(),
        counts: app.faults.counts(),
    })
}

async fn get_faults(State(app): State<AppState>) -> Json<FaultsInfo> {
    faults_info(&app)
}

async fn put_faults(State(app): State<AppState>, body: String) -> Response {
    match body.parse::<FaultSpec>() {
        Ok(spec) => {
            tracing::info!(%spec, "faults replaced");
            app.faults.set(spec);
            faults_info(&app).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn callers_by_origin() {
        let access = AdminAccess {
            origins: vec!["http://127.0.0.1:8081".to_owned()],
            ..AdminAccess::open()
        };
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(caller(&access, &headers(&[host])), Caller::SameOrigin);
        for own in ["http://127.0.0.1:8080", "https://127.0.0.1:8080"] {
            let h = headers(&[host, ("origin", own)]);
            assert_eq!(caller(&access, &h), Caller::SameOrigin, "{own}");
        }
        let h = headers(&[host, ("origin", "http://127.0.0.1:8081")]);
        assert!(matches!(caller(&access, &h), Caller::Listed(_)));
        for foreign in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:8082",
            "http://127.0.0.1:80800",
            "file://",
        ] {
            let h = headers(&[host, ("origin", foreign)]);
            assert_eq!(caller(&access, &h), Caller::Foreign, "{foreign}");
        }
        let h = headers(&[("origin", "http://")]);
        assert_eq!(caller(&access, &h), Caller::Foreign, "no Host to match");
    }

    #[test]
    fn tokens() {
        let h = headers(&[("authorization", "Bearer s3cret")]);
        assert_eq!(bearer(&h), Some("s3cret"));
        let h = headers(&[("authorization", "bearer  s3cret ")]);
        assert_eq!(bearer(&h), Some("s3cret"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic s3cret")])), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cres", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("", "s3cret"));
    }
}
