//! Records and enums crossing the FFI, and their mapping to chunkup's types.
//! Nothing here decides anything: every field maps to one of the client's.

use std::time::Duration;

/// The upload protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum Protocol {
    /// `Content-Range` chunks with `X-Last-Known-Byte` (the default).
    #[default]
    Ranged,
    /// tus 1.0.0.
    Tus,
    /// The IETF Resumable Uploads for HTTP draft.
    Ietf,
    /// Ask the endpoint (`OPTIONS`) and pick one.
    Auto,
}

impl From<Protocol> for chunkup::Protocol {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Ranged => chunkup::Protocol::Ranged,
            Protocol::Tus => chunkup::Protocol::Tus,
            Protocol::Ietf => chunkup::Protocol::Ietf,
            Protocol::Auto => chunkup::Protocol::Auto,
        }
    }
}

impl From<chunkup::Protocol> for Protocol {
    fn from(protocol: chunkup::Protocol) -> Self {
        match protocol {
            chunkup::Protocol::Ranged => Protocol::Ranged,
            chunkup::Protocol::Tus => Protocol::Tus,
            chunkup::Protocol::Ietf => Protocol::Ietf,
            // `Auto` and protocols added later: resolved again by discovery.
            _ => Protocol::Auto,
        }
    }
}

/// How chunk sizes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum ChunkSize {
    /// Adaptive sizing from throughput, round-trip time and break rate.
    #[default]
    Auto,
    /// Every chunk has this many bytes (a server limit or a 413 may lower it).
    Fixed { bytes: u64 },
}

/// One header or metadata entry (order is kept).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// Options for one upload. Every field but the two enums has a default in
/// the bindings (UniFFI has no enum defaults); `default_upload_options()`
/// gives them all.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct UploadOptions {
    pub protocol: Protocol,
    pub chunk_size: ChunkSize,
    /// Extra headers for every request (credentials only go to the origin the
    /// upload started on).
    #[uniffi(default)]
    pub headers: Vec<KeyValue>,
    /// Metadata for the server (tus `Upload-Metadata`).
    #[uniffi(default)]
    pub metadata: Vec<KeyValue>,
    /// Failed attempts allowed in a row without the server's offset
    /// advancing (the retry budget).
    #[uniffi(default = 10)]
    pub max_attempts: u32,
    /// Milliseconds without progress on a request that count as a break.
    #[uniffi(default = 30000)]
    pub stall_timeout_ms: u64,
    /// Give up when the whole upload takes longer (0 = no deadline).
    #[uniffi(default = 0)]
    pub deadline_ms: u64,
    /// Content type announced (default `application/octet-stream`).
    #[uniffi(default)]
    pub content_type: Option<String>,
    /// Checksum chunks where the server supports it (tus checksum); off by
    /// default, as in the client (hashing a chunk delays its sending).
    #[uniffi(default = false)]
    pub checksum: bool,
    /// Minimum milliseconds between progress reports.
    #[uniffi(default = 100)]
    pub progress_interval_ms: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            protocol: Protocol::default(),
            chunk_size: ChunkSize::default(),
            headers: Vec::new(),
            metadata: Vec::new(),
            max_attempts: 10,
            stall_timeout_ms: 30_000,
            deadline_ms: 0,
            content_type: None,
            checksum: false,
            progress_interval_ms: 100,
        }
    }
}

impl UploadOptions {
    pub(crate) fn to_native(&self, control: chunkup::UploadControl) -> chunkup::UploadOptions {
        let pairs = |list: &[KeyValue]| {
            list.iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect()
        };
        let defaults = chunkup::UploadOptions::default();
        chunkup::UploadOptions {
            protocol: self.protocol.into(),
            chunking: match self.chunk_size {
                ChunkSize::Auto => chunkup::ChunkSizing::default(),
                ChunkSize::Fixed { bytes } => chunkup::ChunkSizing::Fixed(bytes),
            },
            retry: chunkup::RetryPolicy {
                max_attempts: self.max_attempts,
                stall_timeout: Duration::from_millis(self.stall_timeout_ms),
                deadline: (self.deadline_ms > 0).then(|| Duration::from_millis(self.deadline_ms)),
                ..chunkup::RetryPolicy::default()
            },
            headers: pairs(&self.headers),
            metadata: pairs(&self.metadata),
            content_type: self.content_type.clone(),
            checksum: self.checksum,
            progress_interval: Duration::from_millis(self.progress_interval_ms),
            control: Some(control),
            ..defaults
        }
    }
}

/// The default options (for languages without default arguments).
#[uniffi::export]
pub fn default_upload_options() -> UploadOptions {
    UploadOptions::default()
}

/// What a completed upload did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct UploadReport {
    /// The upload's URL on the server.
    pub upload_url: String,
    /// Bytes uploaded in total (the file size).
    pub size: u64,
    /// Where an earlier upload of the same file was continued from, if it was.
    pub resumed_from: Option<u64>,
    /// Every problem survived on the way, as readable text, in order.
    pub retries: Vec<String>,
    /// Wall time of this run in milliseconds.
    pub elapsed_ms: u64,
}

impl From<chunkup::UploadReport> for UploadReport {
    fn from(report: chunkup::UploadReport) -> Self {
        UploadReport {
            upload_url: report.upload_url,
            size: report.size,
            resumed_from: report.resumed_from,
            retries: report.retries.iter().map(ToString::to_string).collect(),
            elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// One entry of a resume store: the same fields as the JSON the native
/// store writes.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ResumeRecord {
    /// The source's fingerprint (endpoint, path, size, modification time).
    pub fingerprint: String,
    /// The upload's URL on the server.
    pub upload_url: String,
    /// The protocol the upload was made with.
    pub protocol: Protocol,
    /// Bytes acknowledged when written (a hint; the server decides).
    pub offset: u64,
    /// The upload's size.
    pub total: u64,
    /// When written, milliseconds since the Unix epoch.
    pub updated_ms: i64,
    /// When the server forgets the upload, if it said.
    pub expires_ms: Option<i64>,
}

impl From<chunkup::ResumeRecord> for ResumeRecord {
    fn from(record: chunkup::ResumeRecord) -> Self {
        ResumeRecord {
            fingerprint: record.fingerprint,
            upload_url: record.upload_url,
            protocol: record.protocol.into(),
            offset: record.offset,
            total: record.total,
            updated_ms: record.updated_ms,
            expires_ms: record.expires_ms,
        }
    }
}

impl From<ResumeRecord> for chunkup::ResumeRecord {
    fn from(record: ResumeRecord) -> Self {
        chunkup::ResumeRecord {
            fingerprint: record.fingerprint,
            upload_url: record.upload_url,
            protocol: record.protocol.into(),
            offset: record.offset,
            total: record.total,
            updated_ms: record.updated_ms,
            expires_ms: record.expires_ms,
        }
    }
}

/// What happened, for `ProgressListener::on_event`. Progress itself goes to
/// `on_progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EventKind {
    /// The endpoint said which protocol it speaks.
    Discovered,
    /// The server said when it forgets the upload.
    Expires,
    /// A new upload exists on the server (message: its URL).
    Created,
    /// An earlier upload was found (message: the server's offset).
    ResumedAt,
    /// The server acknowledged a chunk (message: its offset).
    ChunkAcknowledged,
    /// The server lost acknowledged bytes (a failover); they are resent.
    ServerRewound,
    /// A problem occurred; the upload tries again (message: why and when).
    Retrying,
    /// The upload is paused.
    Paused,
    /// The server holds every byte (message: the upload URL).
    Completed,
    /// The upload cannot complete (message: why).
    Failed,
    /// The upload was cancelled.
    Cancelled,
}

/// Splits a client event into the listener's two callbacks: `Ok` is a
/// progress report, `Err` any other event with a readable message.
pub(crate) fn describe(event: &chunkup::Event) -> Result<chunkup::Progress, (EventKind, String)> {
    use chunkup::Event;
    let described = match event {
        Event::Progress(progress) => return Ok(*progress),
        Event::Discovered(capabilities) => (
            EventKind::Discovered,
            format!("speaking {}", capabilities.protocol),
        ),
        Event::Expires { at_unix_ms } => (EventKind::Expires, at_unix_ms.to_string()),
        Event::Created { upload_url } => (EventKind::Created, upload_url.clone()),
        Event::ResumedAt { offset } => (EventKind::ResumedAt, offset.to_string()),
        Event::ChunkAcknowledged { offset } => (EventKind::ChunkAcknowledged, offset.to_string()),
        Event::ServerRewound { from, to } => (
            EventKind::ServerRewound,
            format!("the server went back from {from} to {to} bytes"),
        ),
        Event::Retrying {
            attempt,
            delay,
            reason,
        } => (
            EventKind::Retrying,
            format!("{reason}; attempt {attempt} in {} ms", delay.as_millis()),
        ),
        Event::Paused => (EventKind::Paused, String::new()),
        Event::Completed { upload_url } => (EventKind::Completed, upload_url.clone()),
        Event::Failed(error) => (EventKind::Failed, error.to_string()),
        Event::Cancelled => (EventKind::Cancelled, String::new()),
    };
    Err(described)
}
