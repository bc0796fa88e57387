//! # chunkup-ffi — the chunkup client for Kotlin, Swift and Python (UniFFI)
//!
//! Type mapping only: every decision is made by `chunkup-core`'s session
//! through the `chunkup` client. This crate picks the async runtime in one
//! place ([`runtime`]), runs each upload on the caller's executor
//! ([`polled`]), turns the client's events into [`ProgressListener`] calls,
//! and adapts the app's [`ResumeStore`] and (optional) [`Transport`] to the
//! client's traits.
//!
//! ```text
//! val upload = Upload(path, endpoint, UploadOptions(), listener, store, null)
//! val report = upload.start()      // suspend / async / await
//! upload.pause(); upload.resume(); upload.stop(); upload.terminate()
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
mod types;

pub use error::{StoreError, TransportError, UploadError};
pub use foreign::{BodyRange, HttpRequest, HttpResponse, ProgressListener, ResumeStore, Transport};
pub use types::{
    ChunkSize, EventKind, IetfVersion, KeyValue, Protocol, ResolvedProtocol, ResumeRecord,
    UploadOptions, UploadReport, default_upload_options, parse_resume_record,
};

use foreign::{StoreAdapter, TransportAdapter};
use polled::OnCallerExecutor;

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
        .map_err(|e| UploadError::Internal(e.clone()))
}

/// The library's version.
#[uniffi::export]
pub fn chunkup_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// One file to upload. Start it once; pause, resume, stop and terminate from
/// any thread. A new `Upload` of the same file over the same [`ResumeStore`]
/// continues where the server stands (after a stop, or an app restart).
#[derive(uniffi::Object)]
pub struct Upload {
    path: String,
    endpoint: String,
    options: UploadOptions,
    listener: Option<Arc<dyn ProgressListener>>,
    store: Option<Arc<dyn ResumeStore>>,
    transport: Option<Arc<dyn Transport>>,
    control: UploadControl,
    started: AtomicBool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path)
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("listener", &self.listener.is_some())
            .field("store", &self.store.is_some())
            .field("transport", &self.transport.is_some())
            .finish()
    }
}

#[uniffi::export]
impl Upload {
    /// An upload of the file at `path` to `endpoint` (where uploads are
    /// created). Without a `store` it cannot be continued by a later
    /// `Upload`; without a `transport` chunkup's own HTTP client (reqwest) is
    /// used.
    #[uniffi::constructor(default(listener = None, store = None, transport = None))]
    pub fn new(
        path: String,
        endpoint: String,
        options: UploadOptions,
        listener: Option<Arc<dyn ProgressListener>>,
        store: Option<Arc<dyn ResumeStore>>,
        transport: Option<Arc<dyn Transport>>,
    ) -> Result<Arc<Self>, UploadError> {
        // The foreign transport reads body ranges by path: give it the same
        // canonical path the client fingerprints and reads.
        let path = std::fs::canonicalize(&path)
            .map_err(|e| UploadError::Source(format!("cannot read {path}: {e}")))?
            .to_string_lossy()
            .into_owned();
        Ok(Arc::new(Upload {
            path,
            endpoint,
            options,
            listener,
            store,
            transport,
            control: UploadControl::new(),
            started: AtomicBool::new(false),
        }))
    }

    /// Runs the upload to its end, on the caller's executor: the listener,
    /// the store and the transport are called on the thread that awaits
    /// this. Cancelling the call (the coroutine, the task, an asyncio
    /// timeout) stops the upload before the call returns: it stays on the
    /// server and in the store, and a later `Upload` continues it.
    pub async fn start(self: Arc<Self>) -> Result<UploadReport, UploadError> {
        if self.started.swap(true, Ordering::SeqCst) {
            return Err(UploadError::AlreadyStarted(
                "this upload was already started; create a new Upload to run it again".into(),
            ));
        }
        let this = self.clone();
        OnCallerExecutor::new(runtime()?, async move { this.run().await })
            .await
            .map(Into::into)
            .map_err(Into::into)
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
    /// `UploadError::Stopped`.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Ends the upload and removes it from the server where the protocol
    /// can (tus termination, ranged `DELETE`), and from the store. Before
    /// or during `start()`, it also removes an upload of the same file that
    /// the store remembers. `start()` fails with `UploadError::Terminated`.
    pub fn terminate(&self) {
        self.control.terminate();
    }
}

impl Upload {
    async fn run(&self) -> Result<chunkup::UploadReport, chunkup::Error> {
        let options = self.options.to_native(self.control.clone());
        let listener = self.listener.clone();
        let on_event = move |event: &chunkup::Event| {
            let Some(listener) = &listener else { return };
            match types::describe(event) {
                Ok(progress) => listener.on_progress(
                    progress.acknowledged,
                    progress.total,
                    progress.bytes_per_second,
                ),
                Err((kind, message)) => listener.on_event(kind, message),
            }
        };
        match &self.transport {
            Some(inner) => {
                let transport = TransportAdapter {
                    inner: inner.clone(),
                    path: self.path.clone(),
                };
                self.upload_with(Client::with_transport(transport), options, on_event)
                    .await
            }
            None => self.upload_with(Client::new()?, options, on_event).await,
        }
    }

    async fn upload_with<T: chunkup::Transport>(
        &self,
        client: Client<T>,
        options: chunkup::UploadOptions,
        on_event: impl FnMut(&chunkup::Event) + Send,
    ) -> Result<chunkup::UploadReport, chunkup::Error> {
        let client = match &self.store {
            Some(store) => client.with_resume_store(StoreAdapter(store.clone())),
            None => client,
        };
        client
            .upload_file(Path::new(&self.path), &self.endpoint, options, on_event)
            .await
    }
}
