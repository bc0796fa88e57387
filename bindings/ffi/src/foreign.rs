//! Traits the app implements (Kotlin, Swift, Python), and their adapters to
//! the client's own traits. The adapters only convert types.

use std::path::PathBuf;
use std::sync::Arc;

use chunkup::BodyStream;
use chunkup::core::{MAX_RESPONSE_BODY, RequestSpec, Response};
use chunkup_api::{KeyValue, UploadEvent};

use crate::error::{HookError, StoreError, TransportError};
use crate::types::{RequestInfo, RetryProblem, S3Operation, SignRequest, SignedRequest};

/// Hears how an upload is doing: every [`UploadEvent`], typed (progress,
/// created, acknowledged offsets, retries, the end). Called on the thread
/// that awaits `Upload::start()` (the caller's executor), never after
/// `start()` returned or was cancelled. Keep it short; hop to the UI thread
/// yourself.
#[uniffi::export(with_foreign)]
pub trait UploadListener: Send + Sync {
    /// Something happened.
    fn on_event(&self, event: UploadEvent);
}

/// Keeps resume records where the app likes (SharedPreferences,
/// UserDefaults, a database, files): a key-value store of strings. A record
/// is the core's JSON, the same bytes on every platform; the store need not
/// read it (`remembered_uploads` does). Calls are short and synchronous, on
/// the thread that awaits `start()`.
#[uniffi::export(with_foreign)]
pub trait ResumeStore: Send + Sync {
    /// The record kept under `key`, if any.
    fn load(&self, key: String) -> Result<Option<String>, StoreError>;
    /// Keeps `record` under `key`, replacing any.
    fn save(&self, key: String, record: String) -> Result<(), StoreError>;
    /// Forgets the record under `key` (an absent one is fine).
    fn remove(&self, key: String) -> Result<(), StoreError>;
    /// Every record kept.
    fn list(&self) -> Result<Vec<String>, StoreError>;
}

/// Headers for each request, asked right before it is sent (short-lived
/// tokens; tus-js-client's `onBeforeRequest`, TUSKit's `generateHeaders`).
/// With a provider, a 401 or 403 is answered by asking it once more with
/// `refresh = true` and sending the request again; a second refusal in a
/// row ends the upload. Its headers replace the options' headers of the
/// same name; the protocol's own headers are never replaced. A thrown
/// [`HookError`] fails the request as a broken connection would (retried
/// under the retry budget).
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait HeaderProvider: Send + Sync {
    /// The headers for `request`.
    async fn headers(&self, request: RequestInfo) -> Result<Vec<KeyValue>, HookError>;
}

/// Decides whether to retry after a failure (tus-js-client's
/// `onShouldRetry`): asked before each retry while the retry budget lasts,
/// with the problem and the attempt (1 for the first failure in a row).
/// `false` ends the upload with `ErrorKind::RetryDeclined`; `true` retries
/// after the delay the engine chose (`retry_delays_ms` or its backoff).
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait RetryDecision: Send + Sync {
    /// Whether to retry (a thrown [`HookError`] counts as `false`).
    async fn should_retry(&self, problem: RetryProblem, attempt: u32) -> Result<bool, HookError>;
}

/// Signs S3 requests (Uppy's `signPart`): the app's backend presigns each
/// URL, so no credential lives on the device. Asked right before every S3
/// request is sent, so a retry after an expired signature gets a fresh
/// one. A thrown [`HookError`] fails the request (retried under the retry
/// budget).
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait Signer: Send + Sync {
    /// Signs `request`.
    async fn sign(&self, request: SignRequest) -> Result<SignedRequest, HookError>;
}

/// The part of a file to send as a request body: the transport reads
/// `length` bytes at `offset` of `path` itself (streamed, never whole files
/// across the FFI). An upload from an [`crate::UploadSource`] has no path:
/// its bodies come as the request's `payload`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BodyRange {
    pub path: String,
    pub offset: u64,
    pub length: u64,
}

/// A request the engine decided on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`.
    pub method: String,
    pub url: String,
    /// Send these headers as they are, in order (add `Content-Length` =
    /// `body.length` when there is a body).
    pub headers: Vec<KeyValue>,
    /// Bytes of the file to send, if any.
    pub body: Option<BodyRange>,
    /// The body's bytes themselves, when there is no file to read them
    /// from: a chunk of an [`crate::UploadSource`] (up to a chunk's size),
    /// or a small body of the engine's own (the XML completing an S3
    /// multipart upload). Send them as they are; a request has `body` or
    /// `payload`, not both.
    #[uniffi(default)]
    pub payload: Option<Vec<u8>>,
}

/// The final response (no 1xx). Only the first 64 KiB of the body are used.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<KeyValue>,
    pub body: Vec<u8>,
}

/// Sends requests for the engine (OkHttp, URLSession, ...). Implementations
/// only do IO: no redirects, no retries — every decision is the engine's.
///
/// `send` is async in every language (a Kotlin `suspend fun`, a Swift
/// `async` function, a Python coroutine), started from the thread that
/// awaits `start()` and run by the app's executor: move blocking IO off it
/// yourself (`Dispatchers.IO`, `asyncio.to_thread`). When the upload ends
/// first (stopped, cancelled), the call is cancelled and its answer, if any
/// comes, is ignored. No thread of the bindings ever runs it.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// [`ResumeStore`] as the client's store.
pub(crate) struct StoreAdapter(pub(crate) Arc<dyn ResumeStore>);

fn store_error(error: StoreError) -> chunkup::Error {
    chunkup::Error::Store {
        path: PathBuf::from("<app resume store>"),
        source: std::io::Error::other(error.to_string()),
    }
}

impl chunkup::ResumeStore for StoreAdapter {
    fn load(&self, fingerprint: &str) -> Result<Option<chunkup::ResumeRecord>, chunkup::Error> {
        let Some(json) = self.0.load(fingerprint.to_string()).map_err(store_error)? else {
            return Ok(None);
        };
        // A damaged record costs the resume (reported), never the upload.
        serde_json::from_str(&json).map(Some).map_err(|e| {
            store_error(StoreError::Failed {
                detail: format!("the record under {fingerprint} is not readable: {e}"),
            })
        })
    }

    fn save(&self, record: &chunkup::ResumeRecord) -> Result<(), chunkup::Error> {
        let json = serde_json::to_string(record).map_err(|e| {
            store_error(StoreError::Failed {
                detail: e.to_string(),
            })
        })?;
        self.0
            .save(record.fingerprint.clone(), json)
            .map_err(store_error)
    }

    fn remove(&self, fingerprint: &str) -> Result<(), chunkup::Error> {
        self.0.remove(fingerprint.to_string()).map_err(store_error)
    }

    fn list(&self) -> Result<Vec<chunkup::ResumeRecord>, chunkup::Error> {
        let records = self.0.list().map_err(store_error)?;
        // Unreadable entries are skipped, as a missing one would be.
        Ok(records
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }
}

/// [`Transport`] as the client's transport, for uploads of the file at
/// `path` (the body ranges refer to it), or of an [`crate::UploadSource`]
/// (`path` is `None`: the body's bytes go as the payload).
pub(crate) struct TransportAdapter {
    pub(crate) inner: Arc<dyn Transport>,
    pub(crate) path: Option<String>,
}

impl chunkup::Transport for TransportAdapter {
    async fn send(
        &self,
        spec: RequestSpec,
        body: Option<BodyStream>,
    ) -> Result<Response, chunkup::core::TransportError> {
        let (body, payload) = match (&self.path, spec.body, body) {
            // The foreign side reads the file's range itself; the stream is
            // not polled.
            (Some(path), Some(range), _) => (
                Some(BodyRange {
                    path: path.clone(),
                    offset: range.start,
                    length: range.len(),
                }),
                spec.payload,
            ),
            // The source's bytes were read before sending (kept in memory):
            // collecting them reads nothing more from the app.
            (None, Some(_), Some(stream)) => (None, Some(collect(stream).await?)),
            _ => (None, spec.payload),
        };
        let request = HttpRequest {
            method: spec.method.as_str().to_string(),
            url: spec.url,
            headers: key_values(spec.headers),
            body,
            payload,
        };
        let mut response = self
            .inner
            .send(request)
            .await
            .map_err(chunkup::core::TransportError::from)?;
        response.body.truncate(MAX_RESPONSE_BODY);
        Ok(Response {
            status: response.status,
            headers: pairs(response.headers),
            body: response.body,
        })
    }
}

/// A body's bytes, in one buffer.
async fn collect(mut stream: BodyStream) -> Result<Vec<u8>, chunkup::core::TransportError> {
    use futures_util::TryStreamExt;
    let mut bytes = Vec::new();
    while let Some(piece) = stream.try_next().await.map_err(|e| {
        chunkup::core::TransportError::new(chunkup::core::TransportErrorKind::Body, e.to_string())
    })? {
        bytes.extend_from_slice(&piece);
    }
    Ok(bytes)
}

/// The app's hooks as the client's [`chunkup::Hooks`].
pub(crate) fn hooks(
    headers: Option<Arc<dyn HeaderProvider>>,
    retry: Option<Arc<dyn RetryDecision>>,
    signer: Option<Arc<dyn Signer>>,
) -> chunkup::Hooks {
    let mut hooks = chunkup::Hooks::new();
    if let Some(provider) = headers {
        hooks = hooks.header_provider(move |request: chunkup::RequestInfo| {
            let provider = provider.clone();
            async move {
                let headers = provider
                    .headers(RequestInfo {
                        method: request.method,
                        url: request.url,
                        refresh: request.refresh,
                    })
                    .await?;
                Ok(pairs(headers))
            }
        });
    }
    if let Some(decision) = retry {
        hooks = hooks.should_retry(move |question: chunkup::RetryQuestion| {
            let decision = decision.clone();
            async move {
                let problem = RetryProblem {
                    reason: question.reason,
                    status: question.status,
                    message: question.message,
                };
                match decision.should_retry(problem, question.attempt).await {
                    Ok(retry) => retry,
                    Err(error) => {
                        tracing::warn!(%error, "the retry decision failed: not retrying");
                        false
                    }
                }
            }
        });
    }
    if let Some(signer) = signer {
        hooks = hooks.signer(move |input: chunkup::SignInput| {
            let signer = signer.clone();
            async move {
                let signed = signer
                    .sign(SignRequest {
                        method: input.method,
                        url: input.url,
                        headers: key_values(input.headers),
                        operation: S3Operation::from(input.action),
                        upload_id: input.upload_id,
                        part_number: input.part_number,
                    })
                    .await?;
                Ok(chunkup::Signed {
                    url: signed.url,
                    headers: pairs(signed.headers),
                })
            }
        });
    }
    hooks
}

fn key_values(pairs: Vec<(String, String)>) -> Vec<KeyValue> {
    pairs
        .into_iter()
        .map(|(key, value)| KeyValue { key, value })
        .collect()
}

fn pairs(list: Vec<KeyValue>) -> Vec<(String, String)> {
    list.into_iter().map(|kv| (kv.key, kv.value)).collect()
}
