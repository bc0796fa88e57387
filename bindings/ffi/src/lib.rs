//! # chunkup-ffi — the chunkup client for Kotlin, Swift and Python (UniFFI)
//!
//! Type mapping only: every decision is made by `chunkup-core`'s session
//! through the `chunkup` client. The public data types — [`UploadOptions`],
//! [`UploadEvent`], [`UploadError`], [`RememberedUpload`] — are
//! `chunkup-api`'s, exported as declared there (once, for every surface).
//! This crate picks the async runtime in one place ([`runtime`]), runs each
//! upload on the caller's executor ([`polled`]), hands every event to the
//! app's [`UploadListener`], and adapts the app's [`ResumeStore`],
//! [`Transport`], [`UploadSource`] and hooks ([`HeaderProvider`],
//! [`RetryDecision`], [`Signer`]) to the client's traits.
//!
//! ```text
//! val upload = Upload(path, endpoint, UploadOptions(), listener, store)
//! val upload = Upload.fromSource(source, endpoint, UploadOptions(), listener, store)
//! val report = upload.start()      // suspend / async / await
//! upload.pause(); upload.resume(); upload.stop(); upload.terminate()
//! remembered(store); forget(store, key)
//! ```
//!
//! *Stop* keeps the upload on the server and its record, so a later
//! `Upload` of the same file continues it; cancelling the call awaiting
//! `start()` is a stop. *Terminate* removes it from the server where the
//! protocol allows, and forgets the record.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use chunkup::{Client, UploadControl};

mod error;
mod foreign;
mod polled;
mod source;
mod types;

pub use chunkup_api::{
    ErrorKind, KeyValue, Progress, Protocol, RememberedUpload, UploadError, UploadEvent,
    UploadOptions,
};
pub use error::{HookError, StoreError, TransportError};
pub use foreign::{
    BodyRange, HeaderProvider, HttpRequest, HttpResponse, ResumeStore, RetryDecision, Signer,
    Transport, UploadListener,
};
pub use source::{SourceDescription, SourceError, UploadSource};
pub use types::{RequestInfo, RetryProblem, S3Operation, SignRequest, SignedRequest, UploadReport};

use error::{internal, upload_error};
use foreign::{StoreAdapter, TransportAdapter};
use polled::OnCallerExecutor;
use source::ForeignSource;

uniffi::setup_scaffolding!();

/// The one async runtime of the bindings. Uploads do not run on it: the
/// caller's executor polls them ([`polled`]), inside this runtime's context.
/// Its threads drive sockets and timers (and reqwest's connection tasks);
/// they never call the app, except to wake the caller (fenced, see
/// [`polled`]).
fn runtime() -> Result<&'static tokio::runtime::Runtime, UploadError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("chunkup")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the upload runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| internal(ErrorKind::Environment, e.clone()))
}

/// The library's version.
#[uniffi::export]
pub fn chunkup_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The default options (for languages without default arguments).
#[uniffi::export]
pub fn default_upload_options() -> UploadOptions {
    UploadOptions::default()
}

/// The uploads `store` remembers, newest first: show them, continue a
/// chosen one (the same file, with its `upload_url` in the options), or
/// [`forget`] it. Unreadable records are left out.
#[uniffi::export]
pub fn remembered(store: Arc<dyn ResumeStore>) -> Result<Vec<RememberedUpload>, UploadError> {
    records_client(store)?
        .remembered()
        .map_err(|e| upload_error(&e))
}

/// Forgets the upload `store` remembers under `key` (and the records of its
/// parallel parts). The upload stays on the server; `Upload::terminate`
/// removes it there too.
#[uniffi::export]
pub fn forget(store: Arc<dyn ResumeStore>, key: String) -> Result<(), UploadError> {
    records_client(store)?
        .forget(&key)
        .map_err(|e| upload_error(&e))
}

/// A client used only for its store's records (it sends nothing).
fn records_client(store: Arc<dyn ResumeStore>) -> Result<Client, UploadError> {
    Ok(Client::new()
        .map_err(|e| upload_error(&e))?
        .with_resume_store(StoreAdapter(store)))
}

/// What an [`Upload`] sends.
enum Input {
    /// The file at this path.
    Path(String),
    /// The app's bytes.
    Source(Arc<dyn UploadSource>),
}

/// One file (or [`UploadSource`]) to upload. Start it once; pause, resume,
/// stop and terminate from any thread. A new `Upload` of the same file over
/// the same [`ResumeStore`] continues where the server stands (after a
/// stop, or an app restart).
#[derive(uniffi::Object)]
pub struct Upload {
    input: Input,
    endpoint: String,
    options: UploadOptions,
    listener: Option<Arc<dyn UploadListener>>,
    store: Option<Arc<dyn ResumeStore>>,
    transport: Option<Arc<dyn Transport>>,
    hooks: chunkup::Hooks,
    control: UploadControl,
    started: AtomicBool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = match &self.input {
            Input::Path(path) => path.as_str(),
            Input::Source(_) => "<upload source>",
        };
        f.debug_struct("Upload")
            .field("input", &input)
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("listener", &self.listener.is_some())
            .field("store", &self.store.is_some())
            .field("transport", &self.transport.is_some())
            .field("hooks", &self.hooks)
            .finish()
    }
}

#[uniffi::export]
impl Upload {
    /// An upload of the file at `path` to `endpoint` (where uploads are
    /// created; for S3 the object's URL; empty when the options' `upload_url`
    /// names the upload to continue). Does no IO: a missing file fails
    /// `start()`. Without a `store` it cannot be continued by a later
    /// `Upload`; without a `transport` chunkup's own HTTP client (reqwest)
    /// is used. The hooks are the app's code: a header provider asked
    /// before every request, a retry decision asked before every retry, a
    /// signer for S3 requests.
    #[uniffi::constructor(default(
        listener = None,
        store = None,
        transport = None,
        header_provider = None,
        retry_decision = None,
        signer = None
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        path: String,
        endpoint: String,
        options: UploadOptions,
        listener: Option<Arc<dyn UploadListener>>,
        store: Option<Arc<dyn ResumeStore>>,
        transport: Option<Arc<dyn Transport>>,
        header_provider: Option<Arc<dyn HeaderProvider>>,
        retry_decision: Option<Arc<dyn RetryDecision>>,
        signer: Option<Arc<dyn Signer>>,
    ) -> Arc<Self> {
        Self::with_input(
            Input::Path(path),
            endpoint,
            options,
            listener,
            store,
            transport,
            foreign::hooks(header_provider, retry_decision, signer),
        )
    }

    /// An upload of the bytes `source` reads (an Android `content://` Uri,
    /// an `InputStream`), otherwise as [`Upload::new`]. The source is asked
    /// to describe itself when `start()` runs, not here. With a foreign
    /// `transport`, each body's bytes reach it as the request's `payload`
    /// (there is no path to read). A source that cannot seek, or whose
    /// length is unknown, is read once and never resumed after a restart
    /// (see [`SourceDescription`]); a failed read ends the upload with
    /// `ErrorKind::Source` (or `SourceChanged`), never a retry.
    #[uniffi::constructor(default(
        listener = None,
        store = None,
        transport = None,
        header_provider = None,
        retry_decision = None,
        signer = None
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn from_source(
        source: Arc<dyn UploadSource>,
        endpoint: String,
        options: UploadOptions,
        listener: Option<Arc<dyn UploadListener>>,
        store: Option<Arc<dyn ResumeStore>>,
        transport: Option<Arc<dyn Transport>>,
        header_provider: Option<Arc<dyn HeaderProvider>>,
        retry_decision: Option<Arc<dyn RetryDecision>>,
        signer: Option<Arc<dyn Signer>>,
    ) -> Arc<Self> {
        Self::with_input(
            Input::Source(source),
            endpoint,
            options,
            listener,
            store,
            transport,
            foreign::hooks(header_provider, retry_decision, signer),
        )
    }

    /// Runs the upload to its end, on the caller's executor: the listener,
    /// the store, the transport and the hooks are called on the thread that
    /// awaits this. Cancelling the call (the coroutine, the task, an
    /// asyncio timeout) stops the upload before the call returns: it stays
    /// on the server and in the store, and a later `Upload` continues it.
    pub async fn start(self: Arc<Self>) -> Result<UploadReport, UploadError> {
        if self.started.swap(true, Ordering::SeqCst) {
            return Err(internal(
                ErrorKind::InvalidConfig,
                "this upload was already started; create a new Upload to run it again",
            ));
        }
        let this = self.clone();
        OnCallerExecutor::new(runtime()?, async move { this.run().await })
            .await
            .map(Into::into)
            .map_err(|e| upload_error(&e))
    }

    /// Stops sending; the request in flight is abandoned.
    pub fn pause(&self) {
        self.control.pause();
    }

    /// Continues after a pause (the server is asked for its offset first).
    pub fn resume(&self) {
        self.control.resume();
    }

    /// Ends the upload, keeping it on the server and in the store: a later
    /// `Upload` of the same file continues it. `start()` fails with
    /// `ErrorKind::Stopped`.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Ends the upload and removes it from the server where the protocol
    /// can (tus termination, ranged `DELETE`, S3 abort), and from the
    /// store. Before or during `start()`, it also removes an upload of the
    /// same file that the store remembers. `start()` fails with
    /// `ErrorKind::Terminated`.
    pub fn terminate(&self) {
        self.control.terminate();
    }
}

/// What an upload sends, once opened.
enum Opened<'a> {
    File(&'a Path),
    Source(&'a ForeignSource),
}

impl Upload {
    fn with_input(
        input: Input,
        endpoint: String,
        options: UploadOptions,
        listener: Option<Arc<dyn UploadListener>>,
        store: Option<Arc<dyn ResumeStore>>,
        transport: Option<Arc<dyn Transport>>,
        hooks: chunkup::Hooks,
    ) -> Arc<Self> {
        Arc::new(Upload {
            input,
            endpoint,
            options,
            listener,
            store,
            transport,
            hooks,
            control: UploadControl::new(),
            started: AtomicBool::new(false),
        })
    }

    async fn run(&self) -> Result<chunkup::UploadReport, chunkup::Error> {
        match &self.input {
            Input::Path(path) => {
                // The foreign transport reads body ranges by path: give it
                // the same canonical path the client fingerprints and reads.
                let path =
                    std::fs::canonicalize(path).map_err(|source| chunkup::Error::Source {
                        path: path.into(),
                        source,
                    })?;
                let shown = path.to_string_lossy().into_owned();
                self.send(Opened::File(&path), Some(shown)).await
            }
            Input::Source(source) => {
                let source = ForeignSource::describe(source.clone(), self.options.parallel)?;
                if self.options.fingerprint.is_some() && !source.resumable() {
                    return Err(chunkup::Error::Upload(chunkup::core::Error::InvalidConfig(
                        "a fingerprint names a source to resume, and only a seekable source of known length can be resumed: leave the fingerprint out".into(),
                    )));
                }
                self.send(Opened::Source(&source), None).await
            }
        }
    }

    /// Sends `what` over the app's transport (whose bodies are read from
    /// `path`, or handed over as bytes) or chunkup's own.
    async fn send(
        &self,
        what: Opened<'_>,
        path: Option<String>,
    ) -> Result<chunkup::UploadReport, chunkup::Error> {
        match &self.transport {
            Some(inner) => {
                let transport = TransportAdapter {
                    inner: inner.clone(),
                    path,
                };
                self.upload_with(Client::with_transport(transport), what)
                    .await
            }
            None => self.upload_with(Client::new()?, what).await,
        }
    }

    async fn upload_with<T: chunkup::Transport>(
        &self,
        client: Client<T>,
        what: Opened<'_>,
    ) -> Result<chunkup::UploadReport, chunkup::Error> {
        let client = match &self.store {
            Some(store) => client.with_resume_store(StoreAdapter(store.clone())),
            None => client,
        };
        let listener = self.listener.clone();
        let mut request = client
            .upload(self.options.clone())
            .hooks(self.hooks.clone())
            .control(&self.control)
            .on_event(move |event: &UploadEvent| {
                if let Some(listener) = &listener {
                    listener.on_event(event.clone());
                }
            });
        // An empty endpoint: the options name the upload to continue.
        if !self.endpoint.is_empty() {
            request = request.to(self.endpoint.clone());
        }
        match what {
            Opened::File(path) => request.file(path).await,
            Opened::Source(source) => {
                request
                    .source(source, source.info.clone(), &source.file_name)
                    .await
            }
        }
    }
}
