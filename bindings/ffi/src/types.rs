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

/// A protocol an upload was made in (a remembered upload never says `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ResolvedProtocol {
    Ranged,
    Tus,
    Ietf,
}

impl ResolvedProtocol {
    /// The bindings' name for a protocol of the core; `None` for one this
    /// version does not know.
    fn from_native(protocol: chunkup::ResolvedProtocol) -> Option<Self> {
        match protocol {
            chunkup::ResolvedProtocol::Ranged => Some(ResolvedProtocol::Ranged),
            chunkup::ResolvedProtocol::Tus => Some(ResolvedProtocol::Tus),
            chunkup::ResolvedProtocol::Ietf => Some(ResolvedProtocol::Ietf),
            _ => None,
        }
    }
}

/// The IETF draft revision spoken, by interop version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum IetfVersion {
    /// draft-ietf-httpbis-resumable-upload-05 (tusd).
    Interop6,
    /// draft-ietf-httpbis-resumable-upload-11.
    Interop8,
}

impl From<IetfVersion> for chunkup::core::IetfVersion {
    fn from(version: IetfVersion) -> Self {
        match version {
            IetfVersion::Interop6 => chunkup::core::IetfVersion::Interop6,
            IetfVersion::Interop8 => chunkup::core::IetfVersion::Interop8,
        }
    }
}

impl From<chunkup::core::IetfVersion> for IetfVersion {
    fn from(version: chunkup::core::IetfVersion) -> Self {
        match version {
            chunkup::core::IetfVersion::Interop6 => IetfVersion::Interop6,
            chunkup::core::IetfVersion::Interop8 => IetfVersion::Interop8,
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
    /// The application's own identity for the content (a content hash, a
    /// database id): with a store, it alone names the upload, so a renamed
    /// or copied file continues the same upload.
    #[uniffi(default)]
    pub fingerprint: Option<String>,
    /// An upload the application knows, to continue (the server is asked
    /// how much it holds first).
    #[uniffi(default)]
    pub upload_url: Option<String>,
    /// Send a small file's bytes in its creation request where the server
    /// allows it.
    #[uniffi(default = true)]
    pub creation_with_upload: bool,
    /// The IETF draft revision, when the protocol is IETF (`None`: the
    /// newest, interop 8).
    #[uniffi(default)]
    pub ietf_version: Option<IetfVersion>,
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
            fingerprint: None,
            upload_url: None,
            creation_with_upload: true,
            ietf_version: None,
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
            fingerprint: self.fingerprint.clone(),
            upload_url: self.upload_url.clone(),
            creation_with_upload: self.creation_with_upload,
            ietf_version: self.ietf_version.map(Into::into).unwrap_or_default(),
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
    /// The upload's URL on the server (`None` when the server completed it
    /// in its creation request without naming it).
    pub upload_url: Option<String>,
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

/// A remembered upload, as an application may list it (to show it, or to
/// continue a chosen one through `UploadOptions::upload_url`). Stores keep
/// records as the JSON the core writes ([`crate::ResumeStore`]);
/// [`parse_resume_record`] reads one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ResumeRecord {
    /// The key the record is kept under.
    pub fingerprint: String,
    /// The upload's URL on the server.
    pub upload_url: String,
    /// The protocol the upload was made with.
    pub protocol: ResolvedProtocol,
    /// The IETF draft revision spoken, for an IETF upload.
    pub ietf_version: Option<IetfVersion>,
    /// Bytes acknowledged when written (a hint; the server decides).
    pub offset: u64,
    /// The upload's size.
    pub total: u64,
    /// When the upload was created, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When written, milliseconds since the Unix epoch.
    pub updated_ms: i64,
    /// When the server forgets the upload, if it said.
    pub expires_ms: Option<i64>,
    /// The file name announced to the server.
    pub file_name: Option<String>,
    /// Where uploads were created.
    pub endpoint: Option<String>,
    /// The metadata sent with the upload.
    pub metadata: Vec<KeyValue>,
    /// For one part of a file sent as parallel parts: the file's key (such
    /// records belong to their file's upload).
    pub part_of: Option<String>,
}

/// Reads a record a [`crate::ResumeStore`] keeps (the core's JSON).
#[uniffi::export]
pub fn parse_resume_record(json: String) -> Result<ResumeRecord, crate::StoreError> {
    let native: chunkup::ResumeRecord =
        serde_json::from_str(&json).map_err(|e| crate::StoreError::Failed {
            detail: format!("not a resume record: {e}"),
        })?;
    let protocol = ResolvedProtocol::from_native(native.protocol).ok_or_else(|| {
        crate::StoreError::Failed {
            detail: format!("a protocol this version does not know: {}", native.protocol),
        }
    })?;
    Ok(ResumeRecord {
        fingerprint: native.fingerprint,
        upload_url: native.upload_url,
        protocol,
        ietf_version: native.ietf_version.map(Into::into),
        offset: native.offset,
        total: native.total,
        created_ms: native.created_ms,
        updated_ms: native.updated_ms,
        expires_ms: native.expires_ms,
        file_name: native.file_name,
        endpoint: native.endpoint,
        metadata: native
            .metadata
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
        part_of: native.part_of,
    })
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
    /// The resume store failed; the upload goes on but may not be
    /// resumable later (message: why).
    StoreFailed,
    /// The server holds every byte (message: the upload URL, empty when the
    /// server did not name it).
    Completed,
    /// The upload cannot complete (message: why).
    Failed,
    /// The upload was stopped and kept: a later upload continues it.
    Stopped,
    /// The upload was ended and removed from the server and the store.
    Terminated,
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
        Event::StoreFailed { message } => (EventKind::StoreFailed, message.clone()),
        Event::Completed { upload_url } => {
            (EventKind::Completed, upload_url.clone().unwrap_or_default())
        }
        Event::Failed(error) => (EventKind::Failed, error.to_string()),
        Event::Stopped => (EventKind::Stopped, String::new()),
        Event::Terminated => (EventKind::Terminated, String::new()),
    };
    Err(described)
}
