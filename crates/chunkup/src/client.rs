//! The user-facing native API.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chunkup_core::{
    Capabilities, ChunkSizing, Event, IetfVersion, Input, Protocol, ResumeRecord, RetryPolicy,
    RetryReason, Upload, UploadConfig, fingerprint,
};
use tokio::sync::mpsc;

use crate::source::{FileSource, Source};
use crate::store::ResumeStore;
use crate::transport::{ReqwestTransport, Transport};
use crate::{Error, driver};

/// How often the offset hint in the resume store is refreshed (the upload URL
/// itself is saved at once; the server's answer decides where to continue).
const STORE_REFRESH: Duration = Duration::from_secs(1);

/// Options for one upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The protocol to speak.
    pub protocol: Protocol,
    /// Chunk sizing (adaptive by default).
    pub chunking: ChunkSizing,
    /// Retry, backoff, deadline and stall policy.
    pub retry: RetryPolicy,
    /// Extra headers for every request.
    pub headers: Vec<(String, String)>,
    /// Content type to announce (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Pause, resume or cancel the upload from elsewhere.
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
    /// What the endpoint supports, if already known (skips discovery).
    pub capabilities: Option<Capabilities>,
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
        }
    }
}

/// Pauses, resumes or cancels a running upload. Clone it freely.
#[derive(Debug, Clone)]
pub struct UploadControl {
    tx: mpsc::UnboundedSender<Input>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Input>>>>,
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
        let _ = self.tx.send(Input::Pause);
    }

    /// Continues after a pause (the server is asked for its offset first).
    pub fn resume(&self) {
        let _ = self.tx.send(Input::Resume);
    }

    /// Gives the upload up; it ends with [`Error::Cancelled`].
    pub fn cancel(&self) {
        let _ = self.tx.send(Input::Cancel);
    }

    fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Input>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What a completed upload did.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadReport {
    /// The upload's URL on the server.
    pub upload_url: String,
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

    /// Uploads the file at `path` to `endpoint` (where uploads are created),
    /// continuing an earlier upload of the same file if the resume store
    /// knows one. `on_event` sees every [`Event`].
    pub async fn upload_file(
        &self,
        path: &Path,
        endpoint: &str,
        options: UploadOptions,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<UploadReport, Error> {
        let source = FileSource::open(path)?;
        let key = fingerprint(
            endpoint,
            &source.path().to_string_lossy(),
            source.size(),
            source.modified_ms(),
        );
        let mut options = options;
        if options.parallel > 1 && matches!(options.protocol, Protocol::Tus | Protocol::Auto) {
            let capabilities = match options.capabilities.clone() {
                Some(known) => known,
                None => crate::parallel::discover(&self.transport, endpoint, &options).await?,
            };
            let plan =
                chunkup_core::concat::plan_parts(&capabilities, source.size(), options.parallel);
            if let Some(parts) = plan {
                on_event(&Event::Discovered(capabilities.clone()));
                return crate::parallel::upload_parts(
                    &self.transport,
                    self.store.as_deref(),
                    &key,
                    &source,
                    endpoint,
                    &options,
                    capabilities,
                    parts,
                    &mut on_event,
                )
                .await;
            }
            options.capabilities = Some(capabilities);
        }
        let known = match &self.store {
            Some(store) => load_resumable(store.as_ref(), &key, options.protocol, source.size())?,
            None => None,
        };
        let config = UploadConfig {
            // A resumed upload keeps the protocol it was made with.
            protocol: known.as_ref().map_or(options.protocol, |r| r.protocol),
            upload_url: known.as_ref().map(|r| r.upload_url.clone()),
            ..base_config(endpoint, &source, source.size(), &options)
        };
        let protocol = config.protocol;
        let mut upload = Upload::new(config)?;

        let started = std::time::Instant::now();
        let mut resumed_from = None;
        let mut retries = Vec::new();
        let mut persister = Persister::new(self.store.as_deref(), &key, protocol, source.size());
        persister.resume_from(known);
        let control = options
            .control
            .as_ref()
            .and_then(UploadControl::take_receiver);
        let mut observe = |event: &Event| {
            match event {
                Event::ResumedAt { offset } => resumed_from = Some(*offset),
                Event::Retrying { reason, .. } => retries.push(reason.clone()),
                _ => {}
            }
            persister.observe(event);
            on_event(event);
        };
        let result =
            driver::drive(&mut upload, &self.transport, &source, control, &mut observe).await;
        let upload_url = result?;
        Ok(UploadReport {
            upload_url,
            size: source.size(),
            resumed_from,
            retries,
            elapsed: started.elapsed(),
        })
    }
}

/// The record under `key`, if it can continue an upload of `total` bytes
/// over `protocol` now.
pub(crate) fn load_resumable(
    store: &dyn ResumeStore,
    key: &str,
    protocol: Protocol,
    total: u64,
) -> Result<Option<ResumeRecord>, Error> {
    Ok(store
        .load(key)?
        .filter(|r| r.continues(protocol, total, now_ms())))
}

/// Keeps the resume store in step with the upload. Store failures never fail
/// the upload (it can still complete); they only cost the ability to resume,
/// so they are logged.
pub(crate) struct Persister<'a> {
    store: Option<&'a dyn ResumeStore>,
    key: &'a str,
    protocol: Protocol,
    total: u64,
    upload_url: Option<String>,
    expires_ms: Option<i64>,
    last_saved: Option<std::time::Instant>,
    /// A part of a parallel upload stays remembered after it completes,
    /// until the final upload that joins the parts does.
    pub(crate) keep_when_complete: bool,
}

impl<'a> Persister<'a> {
    pub(crate) fn new(
        store: Option<&'a dyn ResumeStore>,
        key: &'a str,
        protocol: Protocol,
        total: u64,
    ) -> Self {
        Persister {
            store,
            key,
            protocol,
            total,
            upload_url: None,
            expires_ms: None,
            last_saved: None,
            keep_when_complete: false,
        }
    }

    /// Continues the record of an earlier run.
    pub(crate) fn resume_from(&mut self, known: Option<ResumeRecord>) {
        if let Some(record) = known {
            self.expires_ms = record.expires_ms;
            self.upload_url = Some(record.upload_url);
        }
    }

    pub(crate) fn observe(&mut self, event: &Event) {
        let Some(store) = self.store else { return };
        let result = match event {
            Event::Discovered(capabilities) => {
                self.protocol = capabilities.protocol;
                Ok(())
            }
            Event::Expires { at_unix_ms } => {
                self.expires_ms = Some(*at_unix_ms);
                self.save(store, 0)
            }
            Event::Created { upload_url } => {
                self.upload_url = Some(upload_url.clone());
                self.save(store, 0)
            }
            Event::ChunkAcknowledged { offset } => {
                let due = self
                    .last_saved
                    .is_none_or(|at| at.elapsed() >= STORE_REFRESH);
                if due {
                    self.save(store, *offset)
                } else {
                    Ok(())
                }
            }
            Event::Completed { .. } if self.keep_when_complete => self.save(store, self.total),
            Event::Completed { .. } => store.remove(self.key),
            Event::Failed(
                chunkup_core::Error::UploadGone { .. } | chunkup_core::Error::Rejected { .. },
            ) => store.remove(self.key),
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "the resume store failed; this upload cannot be resumed later");
        }
    }

    fn save(&mut self, store: &dyn ResumeStore, offset: u64) -> Result<(), Error> {
        let Some(upload_url) = self.upload_url.clone() else {
            return Ok(());
        };
        self.last_saved = Some(std::time::Instant::now());
        store.save(&ResumeRecord {
            fingerprint: self.key.to_string(),
            upload_url,
            protocol: self.protocol,
            offset,
            total: self.total,
            updated_ms: now_ms(),
            expires_ms: self.expires_ms,
        })
    }
}

/// The engine configuration every upload of `options` shares.
pub(crate) fn base_config(
    endpoint: &str,
    source: &FileSource,
    total: u64,
    options: &UploadOptions,
) -> UploadConfig {
    UploadConfig {
        protocol: options.protocol,
        ietf_version: options.ietf_version,
        capabilities: options.capabilities.clone(),
        metadata: options.metadata.clone(),
        checksum: options.checksum,
        file_name: source.file_name(),
        content_type: options
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
        headers: options.headers.clone(),
        chunking: options.chunking.clone(),
        retry: options.retry.clone(),
        progress_interval: options.progress_interval,
        seed: random_seed(),
        ..UploadConfig::create(endpoint, total)
    }
}

fn now_ms() -> i64 {
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
