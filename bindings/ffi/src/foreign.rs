//! Traits the app implements (Kotlin, Swift, Python), and their adapters to
//! the client's own traits. The adapters only convert types.

use std::path::PathBuf;
use std::sync::Arc;

use chunkup::BodyStream;
use chunkup::core::{MAX_RESPONSE_BODY, RequestSpec, Response};

use crate::error::{StoreError, TransportError};
use crate::types::{EventKind, KeyValue};

/// Hears how an upload is doing. Called on the thread that awaits
/// `Upload::start()` (the caller's executor), never after `start()` returned
/// or was cancelled. Keep it short; hop to the UI thread yourself.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    /// Bytes the server acknowledged (never decreasing), the total, and the
    /// recent speed. Throttled (`progress_interval_ms`).
    fn on_progress(&self, acknowledged: u64, total: u64, bytes_per_second: f64);
    /// Anything else that happened, with a readable message.
    fn on_event(&self, kind: EventKind, message: String);
}

/// Keeps resume records where the app likes (SharedPreferences,
/// UserDefaults, a database, files): a key-value store of strings. A record
/// is the core's JSON, the same bytes on every platform; the store need not
/// read it (`parse_resume_record` does, to list remembered uploads). Calls
/// are short and synchronous, on the thread that awaits `start()`.
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

/// The part of a file to send as a request body: the transport reads
/// `length` bytes at `offset` of `path` itself (streamed, never whole files
/// across the FFI).
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
    pub body: Option<BodyRange>,
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
/// `path` (the body ranges refer to it).
pub(crate) struct TransportAdapter {
    pub(crate) inner: Arc<dyn Transport>,
    pub(crate) path: String,
}

impl chunkup::Transport for TransportAdapter {
    async fn send(
        &self,
        spec: RequestSpec,
        body: Option<BodyStream>,
    ) -> Result<Response, chunkup::core::TransportError> {
        // The foreign side reads the range itself; the stream is not polled.
        drop(body);
        let request = HttpRequest {
            method: spec.method.as_str().to_string(),
            url: spec.url,
            headers: spec
                .headers
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            body: spec.body.map(|range| BodyRange {
                path: self.path.clone(),
                offset: range.start,
                length: range.len(),
            }),
        };
        let mut response = self
            .inner
            .send(request)
            .await
            .map_err(chunkup::core::TransportError::from)?;
        response.body.truncate(MAX_RESPONSE_BODY);
        Ok(Response {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            body: response.body,
        })
    }
}
