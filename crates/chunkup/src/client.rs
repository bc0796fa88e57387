//! The user-facing native API: options (data, declared once in
//! `chunkup-api`) and hooks (code) in, a session of the core run over real
//! IO, typed events on the way, a report out.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chunkup_api::{RememberedUpload, UploadEvent, UploadOptions};
use chunkup_core::session::{Completion, Outcome, SessionConfig, SessionInput, SourceInfo};
use chunkup_core::{Capabilities, Event, RetryReason, Session, UploadSettings};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::Error;
use crate::driver::{self, Io};
use crate::hooks::Hooks;
use crate::source::{FileSource, Source};
use crate::store::ResumeStore;
use crate::stream::StreamSource;
use crate::transport::{ReqwestTransport, Transport};

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
    /// A control to pass to [`UploadRequest::control`].
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

    /// The resume store, if the client has one.
    pub fn resume_store(&self) -> Option<&dyn ResumeStore> {
        self.store.as_deref()
    }

    /// The uploads the resume store remembers, newest first (none without
    /// a store). Continue a chosen one by uploading the same content with
    /// its `upload_url` and `protocol` in the options; forget one with
    /// [`Client::forget`].
    pub fn remembered(&self) -> Result<Vec<RememberedUpload>, Error> {
        match &self.store {
            Some(store) => Ok(RememberedUpload::list(&store.list()?)),
            None => Ok(Vec::new()),
        }
    }

    /// Forgets the remembered upload kept under `key` (and the records of
    /// its parallel parts). The upload stays on the server.
    pub fn forget(&self, key: &str) -> Result<(), Error> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        for record in store.list()? {
            if record.part_of.as_deref() == Some(key) {
                store.remove(&record.fingerprint)?;
            }
        }
        store.remove(key)
    }

    /// An upload with `options`: add an endpoint, hooks, a control and an
    /// event callback, then send a file, a [`Source`] or a stream.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), chunkup::Error> {
    /// use chunkup::{Client, Hooks, UploadControl, UploadOptions};
    ///
    /// let control = UploadControl::new();
    /// let report = Client::new()?
    ///     .upload(UploadOptions { parallel: 4, ..UploadOptions::default() })
    ///     .to("http://127.0.0.1:8080/tus")
    ///     .hooks(Hooks::new().should_retry(|q: chunkup::RetryQuestion| async move { q.attempt < 3 }))
    ///     .control(&control)
    ///     .on_event(|event| println!("{event:?}"))
    ///     .file("video.mp4".as_ref())
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn upload(&self, options: UploadOptions) -> UploadRequest<'_, T> {
        UploadRequest {
            client: self,
            endpoint: None,
            options,
            hooks: Hooks::default(),
            control: None,
            on_event: None,
            tune: None,
            known: None,
            observe: None,
        }
    }

    /// Uploads the file at `path` to `endpoint` (where uploads are created),
    /// continuing an earlier upload of the same file if the resume store
    /// knows one. `on_event` sees every [`UploadEvent`].
    pub async fn upload_file(
        &self,
        path: &Path,
        endpoint: &str,
        options: UploadOptions,
        on_event: impl FnMut(&UploadEvent) + Send,
    ) -> Result<UploadReport, Error> {
        self.upload(options)
            .to(endpoint)
            .on_event(on_event)
            .file(path)
            .await
    }

    /// Uploads any [`Source`] described by `info` (its size and identity:
    /// without a name and modification time, or an application
    /// fingerprint in `options`, it is never matched to another upload),
    /// announcing it as `file_name`.
    pub async fn upload_source<S: Source>(
        &self,
        source: &S,
        info: SourceInfo,
        file_name: &str,
        endpoint: &str,
        options: UploadOptions,
        on_event: impl FnMut(&UploadEvent) + Send,
    ) -> Result<UploadReport, Error> {
        self.upload(options)
            .to(endpoint)
            .on_event(on_event)
            .source(source, info, file_name)
            .await
    }
}

type EventCallback<'a> = Box<dyn FnMut(&UploadEvent) + Send + 'a>;
type EngineObserver<'a> = Box<dyn FnMut(&Event) + Send + 'a>;
type Tuning<'a> = Box<dyn FnOnce(&mut UploadSettings) + Send + 'a>;

/// One upload being set up ([`Client::upload`]); it starts when a source
/// is given ([`UploadRequest::file`], [`UploadRequest::source`],
/// [`UploadRequest::stream`]). Dropping the returned future stops the
/// upload: it stays on the server and in the resume store.
pub struct UploadRequest<'a, T: Transport> {
    client: &'a Client<T>,
    endpoint: Option<String>,
    options: UploadOptions,
    hooks: Hooks,
    control: Option<UploadControl>,
    on_event: Option<EventCallback<'a>>,
    tune: Option<Tuning<'a>>,
    /// What the endpoint speaks, when a batch already knows.
    pub(crate) known: Option<Capabilities>,
    /// Sees the engine's own events (a batch learns its discovery).
    pub(crate) observe: Option<EngineObserver<'a>>,
}

impl<T: Transport> std::fmt::Debug for UploadRequest<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadRequest")
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl<'a, T: Transport> UploadRequest<'a, T> {
    /// Where uploads are created (for S3: the object's URL; for
    /// Google-style sessions: the initiation URL). Not needed when the
    /// options name an `upload_url` to continue.
    pub fn to(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The application's hooks (header provider, retry decision, signer).
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Pause, resume, stop or terminate the upload from elsewhere.
    pub fn control(mut self, control: &UploadControl) -> Self {
        self.control = Some(control.clone());
        self
    }

    /// Sees every event of the upload.
    pub fn on_event(mut self, on_event: impl FnMut(&UploadEvent) + Send + 'a) -> Self {
        self.on_event = Some(Box::new(on_event));
        self
    }

    /// Adjusts the engine's settings beyond what the options say (adaptive
    /// chunk bounds, the backoff ladder, the `Retry-After` clamp, a fixed
    /// jitter seed). Rust only; the options stay the portable surface.
    pub fn tune(mut self, tune: impl FnOnce(&mut UploadSettings) + Send + 'a) -> Self {
        self.tune = Some(Box::new(tune));
        self
    }

    /// Uploads the file at `path`.
    pub async fn file(self, path: &Path) -> Result<UploadReport, Error> {
        let source = FileSource::open(path)?;
        let info = SourceInfo {
            size: Some(source.size()),
            name: Some(source.path().to_string_lossy().into_owned()),
            modified_ms: source.modified_ms(),
            fingerprint: None,
        };
        let file_name = source.file_name();
        self.source(&source, info, &file_name).await
    }

    /// Uploads a stream of unknown length, read once (see
    /// [`StreamSource`]): the protocol must be able to learn the length at
    /// the end (tus creation-defer-length, IETF, Google-style sessions).
    /// A stream is never matched to an earlier upload.
    pub async fn stream<R: AsyncRead + Send + Unpin>(
        self,
        reader: R,
        file_name: &str,
    ) -> Result<UploadReport, Error> {
        let source = StreamSource::new(reader, file_name);
        self.source(&source, SourceInfo::anonymous(None), file_name)
            .await
    }

    /// Uploads any [`Source`] described by `info`, announced as
    /// `file_name`.
    pub async fn source<S: Source>(
        self,
        source: &S,
        mut info: SourceInfo,
        file_name: &str,
    ) -> Result<UploadReport, Error> {
        let UploadRequest {
            client,
            endpoint,
            options,
            hooks,
            control,
            mut on_event,
            tune,
            known,
            mut observe,
        } = self;
        if options.protocol() == chunkup_core::Protocol::S3 && hooks.signer.is_none() {
            return Err(Error::Upload(chunkup_core::Error::InvalidConfig(
                "an S3 upload needs a signer (Hooks::signer, or SigV4Signer with the `sigv4` feature)"
                    .into(),
            )));
        }
        if options.fingerprint.is_some() {
            info.fingerprint = options.fingerprint.clone();
        }
        let mut settings = options.settings(file_name, None, random_seed());
        if let Some(tune) = tune {
            tune(&mut settings);
        }
        // What the hooks can do, the engine must know.
        settings.ask_before_retry = hooks.retry.is_some();
        settings.refresh_credentials = hooks.headers.is_some();
        let config = SessionConfig {
            protocol: options.protocol(),
            endpoint,
            upload_url: options.upload_url.clone(),
            source: info,
            settings,
            known,
            remember: client.store.is_some() && options.resume,
            parallel: usize::try_from(options.parallel.max(1)).unwrap_or(1),
            wall_clock_ms: now_ms(),
        };
        let mut session = Session::new(config)?;
        let started = std::time::Instant::now();
        let mut retries = Vec::new();
        // A stream's length is learned on the way: the session's completion
        // only knows a size given up front.
        let mut acknowledged = 0;
        let mut forward = |event: &Event| {
            match event {
                Event::Retrying { reason, .. } => retries.push(reason.clone()),
                Event::Progress(progress) => acknowledged = progress.acknowledged,
                _ => {}
            }
            if let Some(observe) = observe.as_mut() {
                observe(event);
            }
            if let Some(on_event) = on_event.as_mut() {
                on_event(&UploadEvent::from(event));
            }
        };
        let control = control.as_ref().and_then(UploadControl::take_receiver);
        let io = Io {
            transport: &client.transport,
            source,
            store: client.store.as_deref(),
            hooks: &hooks,
            user_headers: &chunkup_api_pairs(&options),
        };
        let outcome = driver::drive(&mut session, io, control, &mut forward).await?;
        match outcome {
            Outcome::Completed(Completion {
                upload_url,
                size,
                resumed_from,
            }) => Ok(UploadReport {
                upload_url,
                size: size.max(acknowledged),
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

/// The options' headers as pairs.
fn chunkup_api_pairs(options: &UploadOptions) -> Vec<(String, String)> {
    options
        .headers
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
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
