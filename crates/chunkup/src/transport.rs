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
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: Arc<Mutex<reqwest::Client>>,
    /// Builds a client with a connection pool of its own, for a request the
    /// engine wants on a new connection (`None` for an application's own
    /// client, which is kept as it is).
    fresh: Option<fn() -> Result<reqwest::Client, reqwest::Error>>,
}

impl ReqwestTransport {
    /// A transport with chunkup's defaults (connect timeout, user agent).
    pub fn new() -> Result<Self, Error> {
        let client = default_client().map_err(|e| Error::Http(e.to_string()))?;
        Ok(ReqwestTransport {
            client: Arc::new(Mutex::new(client)),
            fresh: Some(default_client),
        })
    }

    /// A transport over a client the application configured. Requests the
    /// engine wants on a new connection still use its pool.
    pub fn with_client(client: reqwest::Client) -> Self {
        ReqwestTransport {
            client: Arc::new(Mutex::new(client)),
            fresh: None,
        }
    }

    /// The client for `spec`: for one that must not reuse a connection, a
    /// new client replaces the old one, whose pooled connections close when
    /// the requests still using them end.
    fn client_for(&self, spec: &RequestSpec) -> reqwest::Client {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if spec.new_connection
            && let Some(Ok(fresh)) = self.fresh.map(|build| build())
        {
            *client = fresh;
        }
        client.clone()
    }
}

fn default_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("chunkup/", env!("CARGO_PKG_VERSION")))
        // Redirects would re-send bodies to places the engine did not pick.
        .redirect(reqwest::redirect::Policy::none())
        .build()
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
        let mut request = self.client_for(&spec).request(method, &spec.url);
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
    // The innermost cause is the useful part ("connection reset by peer").
    let mut innermost: &dyn std::error::Error = &error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    let message = innermost.to_string();
    TransportError::new(kind, message)
}
