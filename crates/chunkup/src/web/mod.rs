//! The browser driver (feature `web`, `wasm32` only): runs the core's
//! [`Session`] in a page, a worker or Node 20 without an async runtime.
//!
//! Everything is event-driven, as the platform is: an `XMLHttpRequest` or
//! `fetch` outcome, an upload-progress event, a store's answer, a
//! `setTimeout`, a user's pause/resume/stop/terminate or the browser going
//! offline/online becomes a [`SessionInput`]; after each one the session is
//! polled until it waits again. The session decides everything (which upload
//! a file is, whether a record continues it, when records are written and
//! forgotten, the protocol, what an ending means); this module only performs
//! what it asks:
//!
//! - requests through [`TransportChoice`] (`XMLHttpRequest` by default for
//!   byte-level progress, `fetch` where there is no XHR), several at once
//!   for parallel parts; a request the core wants signed (S3) is signed by
//!   the application's [`WebUploadOptions::signer`] first, every time it is
//!   sent (so an expired URL retried by the core is signed again);
//! - bodies as `Blob.slice(start, end)`, handed to the platform unread, so
//!   memory does not depend on the file's size; or, for a `ReadableStream`
//!   of unknown length ([`WebUpload::from_stream`]), read once and kept
//!   only until the server has acknowledged them (the end, found while a
//!   body is prepared, is reported as `SessionInput::SourceEnded`);
//! - `Load`, `Persist` and `Forget` against [`BrowserStore`]
//!   (`localStorage`, IndexedDB as the fallback), one at a time and in order;
//! - `now` from `performance.now()`, timers from `setTimeout`.
//!
//! ```ignore
//! let upload = WebUpload::new(file.into(), WebUploadOptions::new(endpoint), |event| {
//!     web_sys::console::log_1(&format!("{event:?}").into());
//! });
//! upload.start();
//! let completion = upload.finished().await?;
//! ```

mod js;
mod store;
mod stream;
mod transport;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chunkup_core::session::{
    Completion, Outcome, SessionConfig, SessionInput, SessionOutput, SourceInfo,
};
use chunkup_core::{
    ChunkSizing, Event, IetfVersion, Instant, Protocol, RequestId, RequestSpec, ResumeRecord,
    RetryPolicy, RetryReason, Session, TransportError, UploadSettings,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, Blob, ReadableStream};

pub use store::BrowserStore;
pub use transport::TransportChoice;

use crate::Error;
use stream::StreamWindow;
use transport::{InFlight, Stack};

/// Options for one browser upload.
#[derive(Debug, Clone)]
pub struct WebUploadOptions {
    /// Where new uploads are created (ranged `POST` endpoint, tus/IETF
    /// creation URL, Google-style initiation URL; for S3 the object's
    /// unsigned URL). Also part of the resume key.
    pub endpoint: Option<String>,
    /// Continue this upload instead of creating one (for S3
    /// `<object URL>?uploadId=…`; for Google-style the session URI).
    pub upload_url: Option<String>,
    /// The protocol to speak (`Auto` asks the endpoint).
    pub protocol: Protocol,
    /// The IETF draft revision, when the protocol is IETF.
    pub ietf_version: IetfVersion,
    /// Chunk sizing (adaptive by default).
    pub chunking: ChunkSizing,
    /// Retry, backoff, deadline and stall policy.
    pub retry: RetryPolicy,
    /// Extra headers for every request.
    pub headers: Vec<(String, String)>,
    /// Signs the requests the core asks to have signed (S3 through
    /// presigned URLs; the application's backend holds the credentials):
    /// called with `{method, url, action, uploadId, partNumber}` before
    /// each such request is sent, it returns (or resolves to) `{url,
    /// headers?}`. Without one those requests go to their unsigned URL.
    pub signer: Option<js_sys::Function>,
    /// Asked before each retry after a failure, as tus-js-client's
    /// `onShouldRetry`: called with `({kind, message, status}, attempt)`
    /// (`kind` is the retry reason's stable kind, `status` `null` without
    /// an HTTP answer; `attempt` counts failures in a row from 1), it
    /// returns (or resolves to) whether to retry. A falsy answer, a throw
    /// or a rejection ends the upload with `RetryDeclined`. Without one
    /// every retry within the budget goes ahead.
    pub should_retry: Option<js_sys::Function>,
    /// Gives headers (credentials) for each request, called before every
    /// one with `{url, method, refresh}`; returns (or resolves to) an
    /// object of header names and values. A 401/403 is sent again once
    /// with `refresh: true` (a second refusal in a row is final). A
    /// provider that throws or rejects fails that attempt like a broken
    /// connection (retried).
    pub header_provider: Option<js_sys::Function>,
    /// Metadata for the server (tus `Upload-Metadata`).
    pub metadata: Vec<(String, String)>,
    /// Content type to announce; default: the Blob's `type`, else
    /// `application/octet-stream`.
    pub content_type: Option<String>,
    /// File name to announce; default: the File's `name`, else `blob`.
    pub file_name: Option<String>,
    /// Remember the upload in the browser's store and continue a remembered
    /// one (after a reload). Only content with an identity is remembered: a
    /// `File` (name, size, `lastModified`) or anything given a `fingerprint`.
    pub resume: bool,
    /// The application's own identity for the content (a content hash, a
    /// database id): it alone (with the size and endpoint) names the upload,
    /// so an anonymous `Blob` given one can be continued too.
    pub fingerprint: Option<String>,
    /// Connections one file may use: a big file goes as parallel parts where
    /// the server allows it (tus concatenation).
    pub parallel: usize,
    /// Stops the upload (keeping it, as [`WebUpload::stop`]) when aborted.
    pub signal: Option<AbortSignal>,
    /// Which HTTP stack to use.
    pub transport: TransportChoice,
    /// Pause while the browser is offline and resume when it is back.
    pub follow_network: bool,
    /// Minimum time between progress events.
    pub progress_interval: Duration,
}

impl WebUploadOptions {
    /// Defaults for an upload created at `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        WebUploadOptions {
            endpoint: Some(endpoint.into()),
            upload_url: None,
            protocol: Protocol::Auto,
            ietf_version: IetfVersion::default(),
            chunking: ChunkSizing::default(),
            retry: RetryPolicy::default(),
            headers: Vec::new(),
            signer: None,
            should_retry: None,
            header_provider: None,
            metadata: Vec::new(),
            content_type: None,
            file_name: None,
            resume: true,
            fingerprint: None,
            parallel: 1,
            signal: None,
            transport: TransportChoice::Auto,
            follow_network: true,
            progress_interval: Duration::from_millis(100),
        }
    }
}

/// What a browser upload reports, in order; [`WebEvent::Finished`] is last.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebEvent {
    /// The HTTP stack in use (`"xhr"` or `"fetch"`), reported first.
    Transport(&'static str),
    /// Something the session reported (including a resume store that
    /// failed: [`Event::StoreFailed`]).
    Engine(Event),
    /// The browser went offline (the upload pauses) or came back (it resumes).
    Network { online: bool },
    /// The upload is over and its record written or forgotten: what it did,
    /// or why not.
    Finished(Result<Completion, Error>),
}

/// How an upload ended; cloneable, unlike [`Error`].
#[derive(Debug, Clone)]
enum Ending {
    Session(Outcome),
    Environment(String),
    /// A stream source failed to give its bytes.
    Source(String),
    /// The server needs bytes of a stream that were let go.
    StreamRewound {
        needed: u64,
        kept_from: u64,
    },
}

impl From<Error> for Ending {
    fn from(error: Error) -> Self {
        match error {
            Error::StreamRewound { needed, kept_from } => {
                Ending::StreamRewound { needed, kept_from }
            }
            Error::Source { source, .. } => Ending::Source(source.to_string()),
            other => Ending::Environment(other.to_string()),
        }
    }
}

impl Ending {
    fn result(&self) -> Result<Completion, Error> {
        match self {
            Ending::Session(Outcome::Completed(completion)) => Ok(completion.clone()),
            Ending::Session(Outcome::Failed(error)) => Err(Error::Upload(error.clone())),
            Ending::Session(Outcome::Stopped) => Err(Error::Stopped),
            Ending::Session(Outcome::Terminated) => Err(Error::Terminated),
            Ending::Environment(message) => Err(Error::Environment(message.clone())),
            Ending::Source(message) => Err(Error::Source {
                path: "ReadableStream".into(),
                source: std::io::Error::other(message.clone()),
            }),
            &Ending::StreamRewound { needed, kept_from } => {
                Err(Error::StreamRewound { needed, kept_from })
            }
        }
    }
}

/// One upload of a `Blob` (or `File`) from a browser, a worker or Node.
/// Cheap to clone: clones control the same upload. Dropping the last clone
/// abandons the upload, which is a stop: it stays on the server and in the
/// store.
#[derive(Clone)]
pub struct WebUpload {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for WebUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebUpload")
            .field("upload_url", &self.upload_url())
            .finish()
    }
}

struct Shared {
    state: RefCell<State>,
    on_event: Box<dyn Fn(WebEvent)>,
    /// Events wait here until no borrow is held, so a callback may call
    /// back into the upload (pause from a progress handler).
    outbox: RefCell<VecDeque<WebEvent>>,
    emitting: Cell<bool>,
    store: BrowserStore,
    /// Store operations, carried out one at a time in the session's order.
    store_ops: RefCell<VecDeque<StoreOp>>,
    store_busy: Cell<bool>,
}

/// What is uploaded.
#[derive(Clone)]
enum Content {
    /// Sliced as bodies are needed, unread by the driver.
    Blob(Blob),
    /// Read once; its length is learned at its end.
    Stream(Rc<StreamWindow>),
}

impl Content {
    /// The bytes of `range` as a request body.
    fn body(&self, range: chunkup_core::ByteRange) -> Result<Blob, JsValue> {
        match self {
            Content::Blob(blob) => {
                blob.slice_with_f64_and_f64(range.start as f64, range.end as f64)
            }
            Content::Stream(window) => window.body(range),
        }
    }
}

struct State {
    content: Content,
    options: WebUploadOptions,
    started: bool,
    session: Option<Session>,
    /// `performance.now()` at the start: the session's origin.
    origin_ms: f64,
    stack: Option<Stack>,
    /// Requests in flight (a few at most: one per parallel part).
    requests: Vec<InFlight>,
    timer: Option<js::Timer>,
    user_paused: bool,
    offline_paused: bool,
    /// `terminate()` before `start()`: applied when the session starts.
    terminate_asked: bool,
    listeners: Vec<Listener>,
    /// The upload's URL, last seen (kept once the session is over).
    upload_url: Option<String>,
    /// How the session ended; reported once the store has caught up.
    outcome: Option<Ending>,
    reported: bool,
    waiters: Vec<Waker>,
}

enum StoreOp {
    Sweep,
    Load(String),
    Persist(ResumeRecord),
    Forget(String),
}

impl WebUpload {
    /// An upload of `blob`; nothing happens until [`WebUpload::start`].
    /// `on_event` sees every [`WebEvent`]; it may call back into the upload.
    pub fn new(
        blob: Blob,
        options: WebUploadOptions,
        on_event: impl Fn(WebEvent) + 'static,
    ) -> Self {
        WebUpload::with_content(Content::Blob(blob), options, on_event)
    }

    /// An upload of a `ReadableStream` of bytes (`Uint8Array` chunks) whose
    /// length is learned at its end: the server must accept a deferred
    /// length (tus creation-defer-length, IETF, Google-style; ranged and S3
    /// refuse it before anything is sent). The stream is locked to the
    /// upload and read once; only the bytes the server has not acknowledged
    /// are kept (about one chunk), so a server that loses acknowledged bytes
    /// ends the upload with [`Error::StreamRewound`]. A stream is anonymous:
    /// never remembered, `fingerprint` and `resume` are ignored, and it goes
    /// over one connection. A locked stream is an [`Error::Environment`].
    pub fn from_stream(
        stream: &ReadableStream,
        mut options: WebUploadOptions,
        on_event: impl Fn(WebEvent) + 'static,
    ) -> Result<Self, Error> {
        let window = StreamWindow::new(stream)?;
        options.resume = false;
        options.fingerprint = None;
        options.parallel = 1;
        Ok(WebUpload::with_content(
            Content::Stream(Rc::new(window)),
            options,
            on_event,
        ))
    }

    fn with_content(
        content: Content,
        options: WebUploadOptions,
        on_event: impl Fn(WebEvent) + 'static,
    ) -> Self {
        let store = if options.resume {
            BrowserStore::detect()
        } else {
            BrowserStore::none()
        };
        WebUpload {
            shared: Rc::new(Shared {
                state: RefCell::new(State {
                    content,
                    options,
                    started: false,
                    session: None,
                    origin_ms: js::now_ms(),
                    stack: None,
                    requests: Vec::new(),
                    timer: None,
                    user_paused: false,
                    offline_paused: false,
                    terminate_asked: false,
                    listeners: Vec::new(),
                    upload_url: None,
                    outcome: None,
                    reported: false,
                    waiters: Vec::new(),
                }),
                on_event: Box::new(on_event),
                outbox: RefCell::new(VecDeque::new()),
                emitting: Cell::new(false),
                store,
                store_ops: RefCell::new(VecDeque::new()),
                store_busy: Cell::new(false),
            }),
        }
    }

    /// Starts the upload (a second call does nothing): continues a
    /// remembered upload of the same content, or creates one, and runs until
    /// it completes, fails, is stopped or terminated.
    pub fn start(&self) {
        {
            let mut state = self.shared.state.borrow_mut();
            if std::mem::replace(&mut state.started, true) || state.outcome.is_some() {
                return;
            }
        }
        Shared::begin(&self.shared);
    }

    /// Stops sending (the requests in flight are abandoned) until
    /// [`WebUpload::resume`].
    pub fn pause(&self) {
        let paused_now = {
            let mut state = self.shared.state.borrow_mut();
            let was = state.user_paused || state.offline_paused;
            state.user_paused = true;
            !was
        };
        if paused_now {
            Shared::input(&self.shared, SessionInput::Pause);
        }
    }

    /// Continues after [`WebUpload::pause`] (the server is asked for its
    /// offset first). While the browser is offline the upload stays paused
    /// and continues when it is back.
    pub fn resume(&self) {
        let resume_now = {
            let mut state = self.shared.state.borrow_mut();
            let was = state.user_paused;
            state.user_paused = false;
            was && !state.offline_paused
        };
        if resume_now {
            Shared::input(&self.shared, SessionInput::Resume);
        }
    }

    /// Ends the upload, keeping it on the server and in the store: a later
    /// upload of the same content continues it. It finishes with
    /// [`Error::Stopped`].
    pub fn stop(&self) {
        let not_started = self.shared.state.borrow().session.is_none();
        if not_started {
            Shared::ended_early(&self.shared, Outcome::Stopped, Event::Stopped);
        } else {
            Shared::input(&self.shared, SessionInput::Stop);
        }
    }

    /// Ends the upload and removes it: from the server where the protocol
    /// can, and from the store. It finishes with [`Error::Terminated`].
    /// Before [`WebUpload::start`], it is applied at the start (a remembered
    /// upload of the same content is removed).
    pub fn terminate(&self) {
        let not_started = {
            let mut state = self.shared.state.borrow_mut();
            state.terminate_asked = state.session.is_none();
            state.terminate_asked
        };
        if !not_started {
            Shared::input(&self.shared, SessionInput::Terminate);
        }
    }

    /// The upload's URL on the server, once created or found.
    pub fn upload_url(&self) -> Option<String> {
        let state = self.shared.state.borrow();
        state
            .session
            .as_ref()
            .and_then(|s| s.upload_url().map(str::to_string))
            .or_else(|| state.upload_url.clone())
    }

    /// Resolves when the upload is over: what it did, or why not.
    pub fn finished(&self) -> Finished {
        Finished {
            shared: self.shared.clone(),
        }
    }
}

/// The future of [`WebUpload::finished`].
pub struct Finished {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finished")
    }
}

impl Future for Finished {
    type Output = Result<Completion, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.state.borrow_mut();
        match (&state.outcome, state.reported) {
            (Some(ending), true) => Poll::Ready(ending.result()),
            _ => {
                state.waiters.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Shared {
    /// Describes the source to a new session and starts it.
    fn begin(shared: &Rc<Shared>) {
        let (options, content) = {
            let state = shared.state.borrow();
            (state.options.clone(), state.content.clone())
        };
        let Some(stack) = Stack::pick(options.transport) else {
            let message = "neither XMLHttpRequest nor fetch is available";
            return Shared::ended(shared, Ending::Environment(message.into()));
        };
        shared.emit(WebEvent::Transport(stack.name()));
        if options.signal.as_ref().is_some_and(AbortSignal::aborted) {
            return Shared::ended_early(shared, Outcome::Stopped, Event::Stopped);
        }
        let session = match Session::new(session_config(&content, &options, &shared.store)) {
            Ok(session) => session,
            Err(error) => return Shared::ended(shared, Ending::Session(Outcome::Failed(error))),
        };
        if session_remembers(&options, &shared.store) {
            // Stale records go before any is looked up.
            Shared::store(shared, StoreOp::Sweep);
        }
        let mut commands = Vec::new();
        {
            let mut state = shared.state.borrow_mut();
            state.session = Some(session);
            state.stack = Some(stack);
            state.origin_ms = js::now_ms();
            if options.follow_network {
                state.listeners = network_listeners(shared);
            }
            if let Some(signal) = &options.signal {
                state.listeners.extend(abort_listener(shared, signal));
            }
            if state.user_paused || state.offline_paused {
                commands.push(SessionInput::Pause);
            }
            if state.terminate_asked {
                commands.push(SessionInput::Terminate);
            }
        }
        for command in commands {
            Shared::input(shared, command);
        }
        Shared::pump(shared);
    }

    /// Feeds `input` to the session and runs it until it waits.
    fn input(shared: &Rc<Shared>, input: SessionInput) {
        let answered = {
            let Ok(mut state) = shared.state.try_borrow_mut() else {
                // Reported from inside a call the driver is making (a
                // platform that runs a callback synchronously): once that
                // call has returned.
                let shared = shared.clone();
                wasm_bindgen_futures::spawn_local(async move { Shared::input(&shared, input) });
                return;
            };
            let now = state.now();
            let answered = match &input {
                SessionInput::Response { id, .. } | SessionInput::TransportFailed { id, .. } => {
                    state.take_request(*id)
                }
                _ => None,
            };
            if state.outcome.is_some() && !matches!(input, SessionInput::StoreFailed { .. }) {
                return;
            }
            let Some(session) = state.session.as_mut() else {
                return;
            };
            session.handle_input(now, input);
            answered
        };
        drop(answered);
        Shared::pump(shared);
    }

    /// Performs what the session asks until it waits or is done.
    fn pump(shared: &Rc<Shared>) {
        loop {
            let output = {
                let mut guard = shared.state.borrow_mut();
                let state = &mut *guard;
                let now = state.now();
                let Some(session) = state.session.as_mut() else {
                    break;
                };
                let output = session.poll_output(now);
                if let Some(url) = session.upload_url()
                    && state.upload_url.as_deref() != Some(url)
                {
                    state.upload_url = Some(url.to_string());
                }
                output
            };
            match output {
                SessionOutput::Send(spec) => Shared::send(shared, spec),
                SessionOutput::Abort(id) => {
                    let request = shared.state.borrow_mut().take_request(id);
                    drop(request);
                }
                SessionOutput::Load(key) => Shared::store(shared, StoreOp::Load(key)),
                SessionOutput::Persist(record) => Shared::store(shared, StoreOp::Persist(record)),
                SessionOutput::Forget(key) => Shared::store(shared, StoreOp::Forget(key)),
                SessionOutput::Event(event) => shared.queue(WebEvent::Engine(event)),
                SessionOutput::AskRetry {
                    question,
                    attempt,
                    reason,
                } => {
                    let hook = shared.state.borrow().options.should_retry.clone();
                    let Some(hook) = hook else {
                        // Only asked with a hook; without one, go ahead.
                        let mut state = shared.state.borrow_mut();
                        let now = state.now();
                        if let Some(session) = state.session.as_mut() {
                            let answer = SessionInput::RetryAnswer {
                                question,
                                retry: true,
                            };
                            session.handle_input(now, answer);
                        }
                        continue;
                    };
                    let weak = Rc::downgrade(shared);
                    wasm_bindgen_futures::spawn_local(async move {
                        let retry = ask_should_retry(&hook, attempt, &reason).await;
                        if let Some(shared) = weak.upgrade() {
                            Shared::input(&shared, SessionInput::RetryAnswer { question, retry });
                        }
                    });
                }
                SessionOutput::Wait(until) => {
                    let mut state = shared.state.borrow_mut();
                    let now = state.now();
                    state.timer = until.map(|at| {
                        let delay = at.saturating_since(now).as_secs_f64() * 1000.0;
                        let weak: Weak<Shared> = Rc::downgrade(shared);
                        js::Timer::after(delay.ceil(), move || {
                            if let Some(shared) = weak.upgrade() {
                                Shared::pump(&shared);
                            }
                        })
                    });
                    break;
                }
                SessionOutput::Done(outcome) => {
                    Shared::ended(shared, Ending::Session(outcome));
                    break;
                }
            }
        }
        shared.drain();
    }

    /// Starts one request; one that cannot start is reported at once. With
    /// a header provider, or to be signed, it waits for the application
    /// first (while it is in flight for the session, and may be aborted).
    fn send(shared: &Rc<Shared>, spec: RequestSpec) {
        let id = spec.id;
        let (provider, signer, stream) = {
            let state = shared.state.borrow();
            let options = &state.options;
            let signer = spec.signing.as_ref().and(options.signer.clone());
            // A stream's body must be read first (where its end is found).
            let stream = match (&state.content, spec.body) {
                (Content::Stream(window), Some(range)) => Some((window.clone(), range)),
                _ => None,
            };
            (options.header_provider.clone(), signer, stream)
        };
        if provider.is_none() && signer.is_none() && stream.is_none() {
            if let Err(error) = Shared::start(shared, spec) {
                // Inside the pump: the session is polled next anyway.
                let mut state = shared.state.borrow_mut();
                let now = state.now();
                if let Some(session) = state.session.as_mut() {
                    session.handle_input(now, SessionInput::TransportFailed { id, error });
                }
            }
            return;
        }
        shared
            .state
            .borrow_mut()
            .requests
            .push(InFlight::preparing(id));
        let weak = Rc::downgrade(shared);
        wasm_bindgen_futures::spawn_local(async move {
            let filled = match &stream {
                Some((window, range)) => window.fill(*range).await,
                None => Ok(None),
            };
            let prepared = async {
                let mut spec = spec;
                if let Some(provider) = &provider {
                    spec = transport::provide_headers(provider, spec).await?;
                }
                if let Some(signer) = &signer {
                    spec = transport::sign(signer, spec).await?;
                }
                Ok::<_, TransportError>(spec)
            };
            let Some(shared) = weak.upgrade() else { return };
            let wanted = |shared: &Rc<Shared>| {
                (shared.state.borrow().requests.iter()).any(|r| r.id() == id && r.is_preparing())
            };
            if !wanted(&shared) {
                return; // aborted (or the upload ended) meanwhile
            }
            match filled {
                Ok(None) => {}
                Ok(Some(at)) => {
                    // The stream ended before this body: the session now
                    // knows the length and asks again.
                    let placeholder = shared.state.borrow_mut().take_request(id);
                    drop(placeholder);
                    return Shared::input(&shared, SessionInput::SourceEnded { id, at });
                }
                Err(error) => return Shared::ended(&shared, error.into()),
            }
            let prepared = prepared.await;
            if !wanted(&shared) {
                return;
            }
            if let Err(error) = prepared.and_then(|spec| Shared::start(&shared, spec)) {
                Shared::input(&shared, SessionInput::TransportFailed { id, error });
            }
        });
    }

    /// Starts `spec` now, in place of its placeholder if it was signed.
    fn start(shared: &Rc<Shared>, spec: RequestSpec) -> Result<(), TransportError> {
        let weak = Rc::downgrade(shared);
        let deliver: transport::Deliver = Rc::new(move |input| {
            if let Some(shared) = weak.upgrade() {
                Shared::input(&shared, input);
            }
        });
        let mut guard = shared.state.borrow_mut();
        let state = &mut *guard;
        let placeholder = state.take_request(spec.id);
        drop(placeholder);
        let Some(stack) = state.stack else {
            return Ok(());
        };
        let content = &state.content;
        let request = transport::start(stack, &spec, &|range| content.body(range), deliver)?;
        state.requests.push(request);
        Ok(())
    }

    /// Queues a store operation; one task carries them out in order and
    /// answers the session.
    fn store(shared: &Rc<Shared>, op: StoreOp) {
        shared.store_ops.borrow_mut().push_back(op);
        if shared.store_busy.replace(true) {
            return;
        }
        let shared = shared.clone();
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let next = shared.store_ops.borrow_mut().pop_front();
                let Some(op) = next else { break };
                let store = &shared.store;
                let (loaded, result) = match op {
                    StoreOp::Sweep => (None, store.sweep().await.map(drop)),
                    StoreOp::Load(key) => match store.load(&key).await {
                        Ok(record) => (Some((key, record)), Ok(())),
                        Err(message) => (Some((key, None)), Err(message)),
                    },
                    StoreOp::Persist(record) => (None, store.save(&record).await),
                    StoreOp::Forget(key) => (None, store.remove(&key).await),
                };
                // A store that fails costs the resume, never the upload.
                if let Err(message) = result {
                    Shared::input(&shared, SessionInput::StoreFailed { message });
                }
                if let Some((key, record)) = loaded {
                    Shared::input(&shared, SessionInput::Loaded { key, record });
                }
            }
            shared.store_busy.set(false);
            Shared::report(&shared);
        });
    }

    /// Ends before the session ran: `event`, then `outcome`.
    fn ended_early(shared: &Rc<Shared>, outcome: Outcome, event: Event) {
        if shared.state.borrow().outcome.is_none() {
            shared.queue(WebEvent::Engine(event));
        }
        Shared::ended(shared, Ending::Session(outcome));
    }

    /// The upload is over: releases requests, timers and listeners; the
    /// ending is reported once the store has carried out what the session
    /// asked.
    fn ended(shared: &Rc<Shared>, ending: Ending) {
        let released = {
            let mut state = shared.state.borrow_mut();
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(ending);
            state.timer = None;
            if let Content::Stream(window) = &state.content {
                window.cancel(); // nobody reads the rest
            }
            remove_listeners(&mut state.listeners);
            std::mem::take(&mut state.requests)
        };
        drop(released);
        Shared::report(shared);
    }

    /// Reports the ending once: after the last store operation.
    fn report(shared: &Rc<Shared>) {
        if shared.store_busy.get() {
            return;
        }
        let (result, waiters) = {
            let mut guard = shared.state.borrow_mut();
            let state = &mut *guard;
            let Some(ending) = &state.outcome else { return };
            if std::mem::replace(&mut state.reported, true) {
                return;
            }
            (ending.result(), std::mem::take(&mut state.waiters))
        };
        shared.queue(WebEvent::Finished(result));
        shared.drain();
        for waker in waiters {
            waker.wake();
        }
    }

    /// Queues `event` for the callback (see [`Shared::drain`]).
    fn queue(&self, event: WebEvent) {
        self.outbox.borrow_mut().push_back(event);
    }

    fn emit(&self, event: WebEvent) {
        self.queue(event);
        self.drain();
    }

    /// Hands queued events to the callback, in order, holding no borrow.
    fn drain(&self) {
        if self.emitting.replace(true) {
            return; // an outer drain is running and will pick them up
        }
        loop {
            let next = self.outbox.borrow_mut().pop_front();
            match next {
                Some(event) => (self.on_event)(event),
                None => break,
            }
        }
        self.emitting.set(false);
    }

    fn network(shared: &Rc<Shared>, online: bool) {
        let input = {
            let mut state = shared.state.borrow_mut();
            if online {
                let was = std::mem::replace(&mut state.offline_paused, false);
                (was && !state.user_paused).then_some(SessionInput::Resume)
            } else {
                let was = state.user_paused || state.offline_paused;
                state.offline_paused = true;
                (!was).then_some(SessionInput::Pause)
            }
        };
        shared.emit(WebEvent::Network { online });
        if let Some(input) = input {
            Shared::input(shared, input);
        }
    }
}

impl State {
    /// Takes request `id` out of the requests in flight (dropping it aborts
    /// it, if it is still running).
    fn take_request(&mut self, id: RequestId) -> Option<InFlight> {
        let index = self.requests.iter().position(|r| r.id() == id)?;
        Some(self.requests.swap_remove(index))
    }

    /// The session's clock: time since the start, from `performance.now()`.
    fn now(&self) -> Instant {
        let elapsed = (js::now_ms() - self.origin_ms).max(0.0) / 1000.0;
        Instant::from_elapsed(Duration::from_secs_f64(elapsed))
    }
}

/// Whether the session looks up and writes records.
fn session_remembers(options: &WebUploadOptions, store: &BrowserStore) -> bool {
    options.resume && store.is_available()
}

/// The session for `blob`: its identity is a `File`'s name and
/// `lastModified`, or the application's fingerprint; a plain `Blob` has
/// none (it is never matched to another upload, nor remembered).
/// The key under which an upload of `blob` with `options` is remembered
/// (as the session computes it), or `None` when it is not remembered: the
/// content has no identity (an anonymous `Blob`), or `options.resume` is
/// off.
pub fn resume_key(blob: &Blob, options: &WebUploadOptions) -> Option<String> {
    if !options.resume {
        return None;
    }
    let target = (options.endpoint.as_deref())
        .or(options.upload_url.as_deref())
        .unwrap_or_default();
    source_info(blob, options).resume_key(target)
}

/// What the session knows of the content's identity.
fn source_info(blob: &Blob, options: &WebUploadOptions) -> SourceInfo {
    let size = blob.size() as u64;
    let own_name = string_field(blob, "name");
    let modified = js_sys::Reflect::get(blob, &"lastModified".into())
        .ok()
        .and_then(|v| v.as_f64())
        .map(|ms| ms as i64);
    let source = match (&own_name, modified) {
        (Some(name), Some(modified_ms)) => SourceInfo {
            size: Some(size),
            name: Some(name.clone()),
            modified_ms: Some(modified_ms),
            fingerprint: None,
        },
        _ => SourceInfo::anonymous(Some(size)),
    };
    SourceInfo {
        fingerprint: options.fingerprint.clone().filter(|f| !f.is_empty()),
        ..source
    }
}

fn session_config(
    content: &Content,
    options: &WebUploadOptions,
    store: &BrowserStore,
) -> SessionConfig {
    let (source, own_name, own_type) = match content {
        Content::Blob(blob) => (
            source_info(blob, options),
            string_field(blob, "name"),
            Some(blob.type_()).filter(|t| !t.is_empty()),
        ),
        // Of unknown length and no identity.
        Content::Stream(_) => (SourceInfo::anonymous(None), None, None),
    };
    let file_name = options
        .file_name
        .clone()
        .or(own_name)
        .unwrap_or_else(|| "blob".into());
    let content_type = options
        .content_type
        .clone()
        .or(own_type)
        .unwrap_or_else(|| "application/octet-stream".into());
    SessionConfig {
        protocol: options.protocol,
        endpoint: options.endpoint.clone(),
        upload_url: options.upload_url.clone(),
        source,
        settings: UploadSettings {
            file_name,
            content_type,
            headers: options.headers.clone(),
            metadata: options.metadata.clone(),
            chunking: options.chunking.clone(),
            retry: options.retry.clone(),
            progress_interval: options.progress_interval,
            ietf_version: options.ietf_version,
            seed: (js_sys::Math::random() * (u64::MAX as f64)) as u64,
            ask_before_retry: options.should_retry.is_some(),
            refresh_credentials: options.header_provider.is_some(),
            ..UploadSettings::default()
        },
        known: None,
        remember: session_remembers(options, store),
        parallel: options.parallel.max(1),
        wall_clock_ms: js::wall_ms(),
    }
}

/// The application's answer to "retry after `reason`?" (see
/// [`WebUploadOptions::should_retry`]): a falsy value, a throw or a
/// rejection is a no.
async fn ask_should_retry(hook: &js_sys::Function, attempt: u32, reason: &RetryReason) -> bool {
    let cause = js_sys::Object::new();
    let status = reason.status().map_or(JsValue::NULL, JsValue::from);
    for (key, value) in [
        ("kind", JsValue::from_str(reason.kind())),
        ("message", JsValue::from_str(&reason.to_string())),
        ("status", status),
    ] {
        let _ = js_sys::Reflect::set(&cause, &JsValue::from_str(key), &value);
    }
    let Ok(answer) = hook.call2(&JsValue::NULL, &cause, &JsValue::from(attempt)) else {
        return false;
    };
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&answer))
        .await
        .is_ok_and(|value| value.is_truthy())
}

/// An event listener: its target, the event's name and the handler.
type Listener = (web_sys::EventTarget, &'static str, Closure<dyn FnMut()>);

fn listen(
    target: &web_sys::EventTarget,
    name: &'static str,
    handler: impl FnMut() + 'static,
) -> Option<Listener> {
    let handler = Closure::<dyn FnMut()>::new(handler);
    target
        .add_event_listener_with_callback(name, handler.as_ref().unchecked_ref())
        .ok()
        .map(|()| (target.clone(), name, handler))
}

/// Pauses on `offline` and resumes on `online`, when there is a window.
fn network_listeners(shared: &Rc<Shared>) -> Vec<Listener> {
    if js::global("addEventListener").is_none() {
        return Vec::new(); // Node: no network events
    }
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    let mut listeners = Vec::new();
    for (name, online) in [("offline", false), ("online", true)] {
        let weak = Rc::downgrade(shared);
        listeners.extend(listen(&global, name, move || {
            if let Some(shared) = weak.upgrade() {
                Shared::network(&shared, online);
            }
        }));
    }
    listeners
}

/// Stops the upload when `signal` aborts.
fn abort_listener(shared: &Rc<Shared>, signal: &AbortSignal) -> Option<Listener> {
    let weak = Rc::downgrade(shared);
    listen(signal, "abort", move || {
        if let Some(shared) = weak.upgrade() {
            Shared::input(&shared, SessionInput::Stop);
        }
    })
}

fn remove_listeners(listeners: &mut Vec<Listener>) {
    for (target, name, handler) in listeners.drain(..) {
        let _ = target.remove_event_listener_with_callback(name, handler.as_ref().unchecked_ref());
    }
}

/// A string property of a JS object (`File.name`), if it has one.
fn string_field(object: &JsValue, name: &str) -> Option<String> {
    js_sys::Reflect::get(object, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
        .filter(|s| !s.is_empty())
}
