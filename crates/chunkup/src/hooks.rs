//! The application's code that an upload calls: a header provider before
//! every request, a retry decision before every retry, and a signer for
//! requests that must be signed (S3). Options are data
//! ([`crate::UploadOptions`]); these are the parts that are code.
//!
//! Each hook is a trait with a blanket implementation for async closures,
//! so the common case is a closure:
//!
//! ```no_run
//! use chunkup::{Hooks, RequestInfo};
//!
//! let hooks = Hooks::new()
//!     .header_provider(|request: RequestInfo| async move {
//!         let token = if request.refresh { "fresh" } else { "cached" };
//!         Ok(vec![("Authorization".to_string(), format!("Bearer {token}"))])
//!     })
//!     .should_retry(|question: chunkup::RetryQuestion| async move { question.attempt < 5 });
//! ```
//!
//! A hook that fails (a token service that is down) fails the request it
//! was called for, as a broken connection would: the engine retries it
//! under the upload's retry budget.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chunkup_core::{RequestSpec, RetryReason, S3Action, TransportError, TransportErrorKind};

/// What a hook may fail with.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as hooks return them.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request about to be sent, as a [`HeaderProvider`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The method (`PATCH`, `POST`, …).
    pub method: String,
    /// The URL the request goes to.
    pub url: String,
    /// The server refused the last credentials (401 or 403): return fresh
    /// ones. The request is sent once more with them; a second refusal in
    /// a row ends the upload.
    pub refresh: bool,
}

/// Headers for each request, asked right before it is sent (short-lived
/// tokens). The provider sees the URL: it decides which credentials go
/// where. Its headers replace the options' headers of the same name; the
/// protocol's own headers are never replaced.
pub trait HeaderProvider: Send + Sync {
    /// The headers for `request`.
    fn headers(
        &self,
        request: RequestInfo,
    ) -> HookFuture<'_, Result<Vec<(String, String)>, HookError>>;
}

impl<F, Fut> HeaderProvider for F
where
    F: Fn(RequestInfo) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Vec<(String, String)>, HookError>> + Send + 'static,
{
    fn headers(
        &self,
        request: RequestInfo,
    ) -> HookFuture<'_, Result<Vec<(String, String)>, HookError>> {
        Box::pin(self(request))
    }
}

/// Why the engine is about to retry: the same fields as
/// [`crate::UploadEvent::Retrying`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQuestion {
    /// Failures in a row since the server's offset last advanced (1 for
    /// the first).
    pub attempt: u32,
    /// The reason's kind (`status`, `transport`, `stalled`, …).
    pub reason: String,
    /// The HTTP status, when the reason was an answer.
    pub status: Option<u16>,
    /// The reason, for people.
    pub message: String,
}

impl From<(u32, &RetryReason)> for RetryQuestion {
    fn from((attempt, reason): (u32, &RetryReason)) -> Self {
        RetryQuestion {
            attempt,
            reason: reason.kind().to_string(),
            status: reason.status(),
            message: reason.to_string(),
        }
    }
}

/// Decides whether to retry after a failure (tus-js-client's
/// `onShouldRetry`). `false` ends the upload with
/// [`crate::ErrorKind::RetryDeclined`]; `true` retries after the delay the
/// engine chose (`retry_delays_ms`, or its backoff). It is asked only
/// while the retry budget lasts.
pub trait RetryDecision: Send + Sync {
    /// Whether to retry.
    fn should_retry(&self, question: RetryQuestion) -> HookFuture<'_, bool>;
}

impl<F, Fut> RetryDecision for F
where
    F: Fn(RetryQuestion) -> Fut + Send + Sync,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn should_retry(&self, question: RetryQuestion) -> HookFuture<'_, bool> {
        Box::pin(self(question))
    }
}

/// An S3 request to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInput {
    /// The method.
    pub method: String,
    /// The unsigned URL (the object's, with the action's query).
    pub url: String,
    /// The headers the request will carry.
    pub headers: Vec<(String, String)>,
    /// The S3 operation.
    pub action: S3Action,
    /// The multipart upload, once created.
    pub upload_id: Option<String>,
    /// The part, for [`S3Action::UploadPart`].
    pub part_number: Option<u32>,
}

/// A signed request: where to send it and the headers to add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signed {
    /// The signed URL (a presigned URL carries its signature in the query).
    pub url: String,
    /// Headers to add (or replace), for signatures carried in headers.
    pub headers: Vec<(String, String)>,
}

/// Signs S3 requests (Uppy's `signPart`): the application's backend
/// presigns, so no credential lives in the client; or
/// [`crate::SigV4Signer`] signs with AWS credentials (feature `sigv4`).
/// Every request is signed right before it is sent, so a retry after an
/// expired signature gets a fresh one.
pub trait Signer: Send + Sync {
    /// Signs `request`.
    fn sign(&self, request: SignInput) -> HookFuture<'_, Result<Signed, HookError>>;
}

impl<F, Fut> Signer for F
where
    F: Fn(SignInput) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Signed, HookError>> + Send + 'static,
{
    fn sign(&self, request: SignInput) -> HookFuture<'_, Result<Signed, HookError>> {
        Box::pin(self(request))
    }
}

/// The hooks of an upload. Cheap to clone: one set may serve many uploads.
#[derive(Clone, Default)]
pub struct Hooks {
    pub(crate) headers: Option<Arc<dyn HeaderProvider>>,
    pub(crate) retry: Option<Arc<dyn RetryDecision>>,
    pub(crate) signer: Option<Arc<dyn Signer>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("header_provider", &self.headers.is_some())
            .field("should_retry", &self.retry.is_some())
            .field("signer", &self.signer.is_some())
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks `provider` for headers before every request; with it, a 401 or
    /// 403 leads to one refresh ([`RequestInfo::refresh`]) and a retry.
    pub fn header_provider(mut self, provider: impl HeaderProvider + 'static) -> Self {
        self.headers = Some(Arc::new(provider));
        self
    }

    /// Asks `decision` before every retry.
    pub fn should_retry(mut self, decision: impl RetryDecision + 'static) -> Self {
        self.retry = Some(Arc::new(decision));
        self
    }

    /// Signs S3 requests with `signer`.
    pub fn signer(mut self, signer: impl Signer + 'static) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// The same signer, shared.
    pub fn shared_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Applies the header provider and the signer to `spec`, right before
    /// it is sent. `user_headers` are the options' headers (the provider's
    /// may replace them; the protocol's are kept).
    pub(crate) async fn prepare(
        &self,
        mut spec: RequestSpec,
        user_headers: &[(String, String)],
    ) -> Result<RequestSpec, TransportError> {
        if let Some(provider) = &self.headers {
            let request = RequestInfo {
                method: spec.method.as_str().to_string(),
                url: spec.url.clone(),
                refresh: spec.refresh_credentials,
            };
            let headers = provider
                .headers(request)
                .await
                .map_err(|e| hook_failed("the header provider", &e))?;
            for (name, value) in headers {
                let protocol_owned = spec
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(&name))
                    && !user_headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(&name));
                if !protocol_owned {
                    set_header(&mut spec.headers, name, value);
                }
            }
        }
        if let Some(signing) = spec.signing.clone() {
            let Some(signer) = &self.signer else {
                return Err(TransportError::new(
                    TransportErrorKind::Other,
                    "this request must be signed and no signer was given",
                ));
            };
            let signed = signer
                .sign(SignInput {
                    method: spec.method.as_str().to_string(),
                    url: spec.url.clone(),
                    headers: spec.headers.clone(),
                    action: signing.action,
                    upload_id: signing.upload_id,
                    part_number: signing.part_number,
                })
                .await
                .map_err(|e| hook_failed("the signer", &e))?;
            spec.url = signed.url;
            for (name, value) in signed.headers {
                set_header(&mut spec.headers, name, value);
            }
        }
        Ok(spec)
    }
}

/// Replaces every header named `name` (case-insensitive) with one value.
fn set_header(headers: &mut Vec<(String, String)>, name: String, value: String) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
    headers.push((name, value));
}

fn hook_failed(which: &str, error: &HookError) -> TransportError {
    TransportError::new(
        TransportErrorKind::Other,
        format!("{which} failed: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chunkup_core::{Method, RequestId, RequestKind, SignRequest};

    fn spec(headers: &[(&str, &str)]) -> RequestSpec {
        RequestSpec {
            id: RequestId(1),
            kind: RequestKind::Chunk,
            method: Method::Patch,
            url: "http://127.0.0.1:1/up/1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: None,
            checksum: None,
            new_connection: false,
            refresh_credentials: true,
            payload: None,
            signing: None,
        }
    }

    #[tokio::test]
    async fn provider_headers_replace_the_users_but_never_the_protocols() {
        let hooks = Hooks::new().header_provider(|request: RequestInfo| async move {
            assert!(request.refresh);
            assert_eq!(request.method, "PATCH");
            Ok(vec![
                ("authorization".to_string(), "Bearer new".to_string()),
                ("Upload-Offset".to_string(), "999".to_string()),
                ("X-Trace".to_string(), "t".to_string()),
            ])
        });
        let user = vec![("Authorization".to_string(), "Bearer old".to_string())];
        let prepared = hooks
            .prepare(
                spec(&[("Authorization", "Bearer old"), ("Upload-Offset", "5")]),
                &user,
            )
            .await
            .expect("prepared");
        assert_eq!(prepared.header("Authorization"), Some("Bearer new"));
        assert_eq!(prepared.header("Upload-Offset"), Some("5"));
        assert_eq!(prepared.header("X-Trace"), Some("t"));
        let count = prepared
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .count();
        assert_eq!(count, 1);
    }

    #[tokio::test]
    async fn a_failing_hook_fails_the_request_and_an_unsigned_s3_request_is_refused() {
        let hooks = Hooks::new().header_provider(|_: RequestInfo| async move {
            Err::<Vec<(String, String)>, HookError>("token service down".into())
        });
        let error = hooks.prepare(spec(&[]), &[]).await.expect_err("fails");
        assert!(error.message.contains("token service down"), "{error}");

        let mut s3 = spec(&[]);
        s3.signing = Some(SignRequest {
            action: S3Action::UploadPart,
            upload_id: Some("u".into()),
            part_number: Some(3),
        });
        let error = Hooks::new()
            .prepare(s3.clone(), &[])
            .await
            .expect_err("no signer");
        assert!(error.message.contains("signer"), "{error}");
        let signing = Hooks::new().signer(|input: SignInput| async move {
            assert_eq!(input.part_number, Some(3));
            Ok(Signed {
                url: format!("{}?sig=1", input.url),
                headers: vec![("x-amz-date".into(), "now".into())],
            })
        });
        let signed = signing.prepare(s3, &[]).await.expect("signed");
        assert_eq!(signed.url, "http://127.0.0.1:1/up/1?sig=1");
        assert_eq!(signed.header("x-amz-date"), Some("now"));
    }
}
