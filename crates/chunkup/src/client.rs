//! The user-facing native API: options in, a session of the core run over
//! real IO, a report out.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chunkup_core::session::{Completion, Outcome, SessionConfig, SessionInput, SourceInfo};
use chunkup_core::{
    Capabilities, ChunkSizing, Event, IetfVersion, Protocol, RetryPolicy, RetryReason, Session,
    UploadSettings,
};
use tokio::sync::mpsc;

use crate::source::{FileSource, Source};
use crate::store::ResumeStore;
use crate::transport::{ReqwestTransport, Transport};
use crate::{Error, driver};

/// Options for one upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The protocol to speak (`Auto` asks the endpoint).
    pub protocol: Protocol,
    /// Chunk sizing (adaptive by default).
    pub chunking: ChunkSizing,
    /// Retry, backoff, deadline and stall policy.
    pub retry: RetryPolicy,
    /// Extra headers for every request.
    pub headers: Vec<(String, String)>,
    /// Content type to announce (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Pause, resume, stop or terminate the upload from elsewhere.
    pub control: Option<UploadControl>,
    /// Minimum time between progress events.
    pub progress_interval: Duration,
    /// The IETF draft revision, when the protocol is IETF.
    pub ietf_version: IetfVersion,
    /// Metadata for the server (tus `Upload-Metadata`).
    pub metadata: Vec<(String, String)>,
    /// Checksum chunks when the server supports it (tus checksum). Off by
    /// default: a checksummed chunk is read and hashed before it is sent.
    pub checksum: bool,
    /// Connections one file may use: big files go as parallel parts where
    /// the server allows it (tus concatenation). With a resume store, a
    /// later run with the same split continues each part.
    pub parallel: usize,
    /// What the endpoint supports, if already known (skips discovery when
    /// it agrees with `protocol`).
    pub capabilities: Option<Capabilities>,
    /// The application's own identity for the content (a content hash, a
    /// database id): with a resume store, it alone names the upload.
    pub fingerprint: Option<String>,
    /// An upload the application knows, to continue (the server is asked
    /// how much it holds first).
    pub upload_url: Option<String>,
    /// Send a small file's bytes in its creation request where the server
    /// allows it (on by default).
    pub creation_with_upload: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            protocol: Protocol::default(),
            chunking: ChunkSizing::default(),
            retry: RetryPolicy::default(),
            headers: Vec::new(),
            content_type: None,
            control: None,
            progress_interval: Duration::from_millis(100),
            ietf_version: IetfVersion::default(),
            metadata: Vec::new(),
            checksum: false,
            parallel: 1,
            capabilities: None,
            fingerprint: None,
            upload_url: None,
            creation_with_upload: true,
        }
    }
}

/// Pauses, resumes, stops or terminates a running upload. Clone it freely.
#[derive(Debug, Clone)]
pub struct UploadControl {
    tx: mpsc::UnboundedSender<SessionInput>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<SessionInput>>>>,
}

impl Default for UploadControl {
    fn default() -> Self {
        Self::new()
    }
}

impl UploadControl {
    /// A control to pass in [`UploadOptions::control`].
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        UploadControl {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// Stops sending; the request in flight is abandoned.
    pub fn pause(&self) {
        let _ = self.tx.send(SessionInput::Pause);
    }

    /// Continues after a pause (the server is asked for its offset first).
    pub fn resume(&self) {
        let _ = self.tx.send(SessionInput::Resume);
    }

    /// Ends the upload now, keeping it on the server and in the resume
    /// store: a later upload of the same file continues it. The upload
    /// ends with [`Error::Stopped`]. (Dropping the upload's future is a
    /// stop too.)
    pub fn stop(&self) {
        let _ = self.tx.send(SessionInput::Stop);
    }

    /// Ends the upload and removes it from the server where the protocol
    /// can, and from the resume store. It ends with [`Error::Terminated`].
    pub fn terminate(&self) {
        let _ = self.tx.send(SessionInput::Terminate);
    }

    pub(crate) fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<SessionInput>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What a completed upload did.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadReport {
    /// The upload's URL on the server (`None` when the server completed it
    /// in its creation request without naming it).
    pub upload_url: Option<String>,
    /// Bytes uploaded in total (the file size).
    pub size: u64,
    /// Where an earlier upload of the same file was continued from, if it was.
    pub resumed_from: Option<u64>,
    /// Every problem survived on the way, in order.
    pub retries: Vec<RetryReason>,
    /// Wall time of this run.
    pub elapsed: Duration,
}

/// Uploads files. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Client<T: Transport = ReqwestTransport> {
    transport: T,
    store: Option<Arc<dyn ResumeStore>>,
}

impl<T: Transport + std::fmt::Debug> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.transport)
            .field("resume_store", &self.store.is_some())
            .finish()
    }
}

impl Client<ReqwestTransport> {
    /// A client over reqwest (rustls), without a resume store.
    pub fn new() -> Result<Self, Error> {
        Ok(Client::with_transport(ReqwestTransport::new()?))
    }
}

impl<T: Transport> Client<T> {
    /// A client over any [`Transport`].
    pub fn with_transport(transport: T) -> Self {
        Client {
            transport,
            store: None,
        }
    }

    /// Remembers uploads in `store` so they can be resumed.
    pub fn with_resume_store(mut self, store: impl ResumeStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The resume store, if the client has one (to list or forget
    /// remembered uploads).
    pub fn resume_store(&self) -> Option<&dyn ResumeStore> {
        self.store.as_deref()
    }

    /// Uploads the file at `path` to `endpoint` (where uploads are created),
    /// continuing an earlier upload of the same file if the resume store
    /// knows one. `on_event` sees every [`Event`].
    pub async fn upload_file(
        &self,
        path: &Path,
        endpoint: &str,
        options: UploadOptions,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<UploadReport, Error> {
        let source = FileSource::open(path)?;
        let info = SourceInfo {
            size: Some(source.size()),
            name: Some(source.path().to_string_lossy().into_owned()),
            modified_ms: source.modified_ms(),
            fingerprint: None,
        };
        let file_name = source.file_name();
        self.upload_source(&source, info, &file_name, endpoint, options, on_event)
            .await
    }

    /// Uploads any [`Source`] described by `info` (its size and identity:
    /// without a name and modification time, or an application
    /// fingerprint in `options`, it is never matched to another upload),
    /// announcing it as `file_name`.
    pub async fn upload_source<S: Source>(
        &self,
        source: &S,
        mut info: SourceInfo,
        file_name: &str,
        endpoint: &str,
        options: UploadOptions,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<UploadReport, Error> {
        if options.fingerprint.is_some() {
            info.fingerprint = options.fingerprint.clone();
        }
        let size = info.size.unwrap_or_default();
        let config = session_config(endpoint, info, file_name, &options, self.store.is_some());
        let mut session = Session::new(config)?;
        let started = std::time::Instant::now();
        let mut retries = Vec::new();
        let mut observe = |event: &Event| {
            if let Event::Retrying { reason, .. } = event {
                retries.push(reason.clone());
            }
            on_event(event);
        };
        let control = options
            .control
            .as_ref()
            .and_then(UploadControl::take_receiver);
        let outcome = driver::drive(
            &mut session,
            &self.transport,
            source,
            self.store.as_deref(),
            control,
            &mut observe,
        )
        .await?;
        match outcome {
            Outcome::Completed(Completion {
                upload_url,
                resumed_from,
                ..
            }) => Ok(UploadReport {
                upload_url,
                size,
                resumed_from,
                retries,
                elapsed: started.elapsed(),
            }),
            Outcome::Failed(error) => Err(Error::Upload(error)),
            Outcome::Stopped => Err(Error::Stopped),
            Outcome::Terminated => Err(Error::Terminated),
        }
    }
}

/// The session configuration for `options`.
fn session_config(
    endpoint: &str,
    source: SourceInfo,
    file_name: &str,
    options: &UploadOptions,
    remember: bool,
) -> SessionConfig {
    SessionConfig {
        protocol: options.protocol,
        endpoint: Some(endpoint.to_string()),
        upload_url: options.upload_url.clone(),
        source,
        settings: UploadSettings {
            file_name: file_name.to_string(),
            content_type: options
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            headers: options.headers.clone(),
            metadata: options.metadata.clone(),
            chunking: options.chunking.clone(),
            retry: options.retry.clone(),
            progress_interval: options.progress_interval,
            ietf_version: options.ietf_version,
            checksum: options.checksum,
            creation_with_upload: options.creation_with_upload,
            seed: random_seed(),
            ..UploadSettings::default()
        },
        known: options.capabilities.clone(),
        remember,
        parallel: options.parallel,
        wall_clock_ms: now_ms(),
    }
}

/// The wall clock, milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// Jitter only needs to differ between clients, not to be secret.
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(now_ms())
}
