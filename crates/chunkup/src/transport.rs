//! How requests reach the server.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chunkup_core::{
    MAX_RESPONSE_BODY, Method, RequestSpec, Response, TransportError, TransportErrorKind,
};

use crate::Error;
use crate::source::BodyStream;

/// Performs one HTTP request. Implementations only do IO: every decision
/// about the outcome is the engine's.
pub trait Transport: Send + Sync {
    /// Sends `spec` with `body` (the bytes of `spec.body`, if any) and returns
    /// the final response, its body read up to [`MAX_RESPONSE_BODY`].
    fn send(
        &self,
        spec: RequestSpec,
        body: Option<BodyStream>,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send;
}

/// The native transport: reqwest over rustls.
///
/// The platform's trusted roots are loaded when the first `https://` request
/// is made, not before: parsing the system CA bundle costs more user-space
/// instructions than a whole 10 MiB upload over `http://`
/// (docs/BENCHMARKS.md), and a machine without a CA bundle can still upload
/// to plain-HTTP endpoints.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    /// Serves `http://` URLs (and every URL for an application's own client).
    plain: Arc<Mutex<reqwest::Client>>,
    /// Serves `https://` URLs once built; `None` when the application's
    /// client serves all.
    tls: Option<Arc<Mutex<Option<reqwest::Client>>>>,
}

/// The settings every client of chunkup's own shares.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("chunkup/", env!("CARGO_PKG_VERSION")))
        // Redirects would re-send bodies to places the engine did not pick.
        .redirect(reqwest::redirect::Policy::none())
}

/// A client for `http://` only: no roots at all, so building it reads no
/// files and it never verifies a certificate.
fn plain_client() -> Result<reqwest::Client, reqwest::Error> {
    builder().tls_certs_only(Vec::new()).build()
}

/// Locks a client slot; a panic elsewhere cannot leave a client half-built.
fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReqwestTransport {
    /// A transport with chunkup's defaults (connect timeout, user agent,
    /// no redirects), trusting the platform's roots for `https://`
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` replace them on Linux).
    pub fn new() -> Result<Self, Error> {
        let plain = plain_client().map_err(|e| Error::Http(e.to_string()))?;
        Ok(ReqwestTransport {
            plain: Arc::new(Mutex::new(plain)),
            tls: Some(Arc::default()),
        })
    }

    /// A transport over a client the application configured (used for
    /// every URL). Requests the engine wants on a new connection still use
    /// its pool.
    pub fn with_client(client: reqwest::Client) -> Self {
        ReqwestTransport {
            plain: Arc::new(Mutex::new(client)),
            tls: None,
        }
    }

    /// The client for `spec`. For a request that must not reuse a
    /// connection (the engine asks after a server answered before reading a
    /// body), a new client replaces the old one, whose pooled connections
    /// close when the requests still using them end.
    async fn client_for(&self, spec: &RequestSpec) -> Result<reqwest::Client, TransportError> {
        let Some(tls) = self.tls.as_deref() else {
            return Ok(lock(&self.plain).clone());
        };
        if !is_https(&spec.url) {
            let mut plain = lock(&self.plain);
            if spec.new_connection
                && let Ok(fresh) = plain_client()
            {
                *plain = fresh;
            }
            return Ok(plain.clone());
        }
        if !spec.new_connection
            && let Some(client) = lock(tls).as_ref()
        {
            return Ok(client.clone());
        }
        // Reading and parsing the CA bundle is blocking file IO.
        let client = tokio::task::spawn_blocking(|| builder().build())
            .await
            .map_err(|e| TransportError::new(TransportErrorKind::Tls, e.to_string()))?
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Tls,
                    format!("cannot set up TLS: {}", innermost(&e)),
                )
            })?;
        *lock(tls) = Some(client.clone());
        Ok(client)
    }
}

/// True for an `https:` URL (schemes are case-insensitive).
fn is_https(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https:"))
}

impl Transport for ReqwestTransport {
    async fn send(
        &self,
        spec: RequestSpec,
        body: Option<BodyStream>,
    ) -> Result<Response, TransportError> {
        let method = match spec.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
        };
        let mut request = self.client_for(&spec).await?.request(method, &spec.url);
        for (name, value) in &spec.headers {
            request = request.header(name, value);
        }
        if let (Some(range), Some(body)) = (spec.body, body) {
            request = request
                .header(reqwest::header::CONTENT_LENGTH, range.len())
                .body(reqwest::Body::wrap_stream(body));
        } else if let Some(payload) = spec.payload {
            request = request.body(payload);
        }
        let mut response = request.send().await.map_err(map_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        while let Some(piece) = response.chunk().await.map_err(map_error)? {
            let room = MAX_RESPONSE_BODY - body.len();
            body.extend_from_slice(&piece[..piece.len().min(room)]);
            if body.len() == MAX_RESPONSE_BODY {
                break;
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn map_error(error: reqwest::Error) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_body() || error.is_request() {
        TransportErrorKind::Reset
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, innermost(&error))
}

/// The innermost cause is the useful part ("connection reset by peer").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_need_the_tls_client() {
        assert!(is_https("https://example.com/files"));
        assert!(is_https("HTTPS://example.com/files"));
        assert!(!is_https("http://127.0.0.1:1080/files"));
        assert!(!is_https("http:"));
        assert!(!is_https(""));
    }
}
