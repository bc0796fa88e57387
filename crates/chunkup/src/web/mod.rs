//! The browser driver (feature `web`, `wasm32` only): runs the engine in a
//! page, a worker or Node 20 without an async runtime.
//!
//! Everything is event-driven, as the platform is: an `XMLHttpRequest` or
//! `fetch` outcome, an upload-progress event, a `setTimeout`, a user's
//! pause/resume/cancel or the browser going offline/online becomes an
//! [`Input`]; after each one the engine is polled until it waits again. The
//! engine decides everything; this module only performs what it asks:
//!
//! - requests through [`TransportChoice`] (`XMLHttpRequest` by default for
//!   byte-level progress, `fetch` where there is no XHR);
//! - bodies as `Blob.slice(start, end)`, handed to the platform unread, so
//!   memory does not depend on the file's size;
//! - resume records in [`BrowserStore`] (`localStorage`, IndexedDB as the
//!   fallback), keyed by the core's fingerprint of endpoint, file name, size
//!   and `lastModified`;
//! - `now` from `performance.now()`, timers from `setTimeout`.
//!
//! ```ignore
//! let upload = WebUpload::new(file.into(), WebUploadOptions::new(endpoint), |event| {
//!     web_sys::console::log_1(&format!("{event:?}").into());
//! });
//! upload.start();
//! let url = upload.finished().await?;
//! ```

mod js;
mod store;
mod transport;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chunkup_core::{
    ChunkSizing, Event, IetfVersion, Input, Instant, Output, Protocol, ResumeRecord, RetryPolicy,
    Upload, UploadConfig, fingerprint,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::Blob;

pub use store::BrowserStore;
pub use transport::TransportChoice;

use crate::Error;
use transport::{InFlight, Stack};

/// How often the offset hint of a resume record is refreshed (the upload URL
/// is saved at once; the server's answer decides where to continue).
const STORE_REFRESH_MS: f64 = 1000.0;

/// Options for one browser upload.
#[derive(Debug, Clone)]
pub struct WebUploadOptions {
    /// Where new uploads are created (ranged `POST` endpoint, tus/IETF
    /// creation URL). Also part of the resume fingerprint.
    pub endpoint: Option<String>,
    /// Continue this upload instead of creating one.
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
    /// Metadata for the server (tus `Upload-Metadata`).
    pub metadata: Vec<(String, String)>,
    /// Content type to announce; default: the Blob's `type`, else
    /// `application/octet-stream`.
    pub content_type: Option<String>,
    /// File name to announce; default: the File's `name`, else `blob`.
    pub file_name: Option<String>,
    /// Remember the upload in the browser's store and continue a remembered
    /// one (after a reload).
    pub resume: bool,
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
            metadata: Vec::new(),
            content_type: None,
            file_name: None,
            resume: true,
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
    /// Something the engine reported.
    Engine(Event),
    /// The resume store could not be used; the upload goes on but cannot be
    /// resumed after a reload.
    StoreFailed(String),
    /// The browser went offline (the upload pauses) or came back (it resumes).
    Network { online: bool },
    /// The upload is over: its URL, or why not.
    Finished(Result<String, Error>),
}

/// How an upload ended; cloneable, unlike [`Error`].
#[derive(Debug, Clone)]
enum Ending {
    Completed(String),
    Failed(chunkup_core::Error),
    Cancelled,
    Environment(String),
}

impl Ending {
    fn result(&self) -> Result<String, Error> {
        match self {
            Ending::Completed(url) => Ok(url.clone()),
            Ending::Failed(error) => Err(Error::Upload(error.clone())),
            Ending::Cancelled => Err(Error::Cancelled),
            Ending::Environment(message) => Err(Error::Environment(message.clone())),
        }
    }
}

/// One upload of a `Blob` (or `File`) from a browser, a worker or Node.
/// Cheap to clone: clones control the same upload.
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
}

struct State {
    blob: Blob,
    options: WebUploadOptions,
    phase: Phase,
    /// `performance.now()` at the start: the engine's origin.
    origin_ms: f64,
    stack: Option<Stack>,
    in_flight: Option<InFlight>,
    timer: Option<js::Timer>,
    user_paused: bool,
    offline_paused: bool,
    listeners: Vec<Listener>,
    persist: Persist,
    /// The outcome the engine reported; final once it says `Done`.
    outcome: Option<Ending>,
    ending: Option<Ending>,
    waiters: Vec<Waker>,
}

enum Phase {
    Idle,
    Starting,
    Running(Box<Upload>),
    Finished,
}

/// What the resume store knows of this upload.
struct Persist {
    store: BrowserStore,
    key: Option<String>,
    protocol: Protocol,
    total: u64,
    upload_url: Option<String>,
    expires_ms: Option<i64>,
    last_saved_ms: Option<f64>,
    /// Where store failures are reported.
    owner: Weak<Shared>,
}

impl WebUpload {
    /// An upload of `blob`; nothing happens until [`WebUpload::start`].
    /// `on_event` sees every [`WebEvent`]; it may call back into the upload.
    pub fn new(
        blob: Blob,
        options: WebUploadOptions,
        on_event: impl Fn(WebEvent) + 'static,
    ) -> Self {
        let store = if options.resume {
            BrowserStore::detect()
        } else {
            BrowserStore::none()
        };
        WebUpload {
            shared: Rc::new_cyclic(|owner| Shared {
                state: RefCell::new(State {
                    blob,
                    options,
                    phase: Phase::Idle,
                    origin_ms: js::now_ms(),
                    stack: None,
                    in_flight: None,
                    timer: None,
                    user_paused: false,
                    offline_paused: false,
                    listeners: Vec::new(),
                    persist: Persist {
                        store,
                        key: None,
                        protocol: Protocol::Auto,
                        total: 0,
                        upload_url: None,
                        expires_ms: None,
                        last_saved_ms: None,
                        owner: owner.clone(),
                    },
                    outcome: None,
                    ending: None,
                    waiters: Vec::new(),
                }),
                on_event: Box::new(on_event),
                outbox: RefCell::new(VecDeque::new()),
                emitting: Cell::new(false),
            }),
        }
    }

    /// Starts the upload (a second call does nothing): looks for a
    /// remembered upload of the same file, then runs until it completes,
    /// fails or is cancelled.
    pub fn start(&self) {
        {
            let mut state = self.shared.state.borrow_mut();
            if !matches!(state.phase, Phase::Idle) {
                return;
            }
            state.phase = Phase::Starting;
        }
        let shared = self.shared.clone();
        wasm_bindgen_futures::spawn_local(async move { Shared::begin(&shared).await });
    }

    /// Stops sending (the request in flight is abandoned) until
    /// [`WebUpload::resume`].
    pub fn pause(&self) {
        let paused_now = {
            let mut state = self.shared.state.borrow_mut();
            let was = state.user_paused || state.offline_paused;
            state.user_paused = true;
            !was
        };
        if paused_now {
            Shared::input(&self.shared, Input::Pause);
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
            Shared::input(&self.shared, Input::Resume);
        }
    }

    /// Gives the upload up; it finishes with [`Error::Cancelled`] (after
    /// removing the upload on the server where the protocol can).
    pub fn cancel(&self) {
        let not_started = {
            let mut state = self.shared.state.borrow_mut();
            match state.phase {
                Phase::Idle | Phase::Starting => {
                    state.phase = Phase::Finished;
                    true
                }
                _ => false,
            }
        };
        if not_started {
            Shared::finish(&self.shared, Ending::Cancelled);
        } else {
            Shared::input(&self.shared, Input::Cancel);
        }
    }

    /// The upload's URL on the server, once created or found.
    pub fn upload_url(&self) -> Option<String> {
        match &self.shared.state.borrow().phase {
            Phase::Running(upload) => upload.upload_url().map(str::to_string),
            _ => None,
        }
        .or_else(|| self.shared.state.borrow().persist.upload_url.clone())
    }

    /// Resolves when the upload is over: its URL, or why not.
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
    type Output = Result<String, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.state.borrow_mut();
        match &state.ending {
            Some(ending) => Poll::Ready(ending.result()),
            None => {
                state.waiters.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Shared {
    /// Looks for a remembered upload, builds the engine and starts it.
    async fn begin(shared: &Rc<Shared>) {
        let (options, blob) = {
            let state = shared.state.borrow();
            (state.options.clone(), state.blob.clone())
        };
        let Some(stack) = Stack::pick(options.transport) else {
            Shared::finish(
                shared,
                Ending::Environment("neither XMLHttpRequest nor fetch is available".into()),
            );
            return;
        };
        shared.emit(WebEvent::Transport(stack.name()));
        let size = blob.size() as u64;
        let name = options
            .file_name
            .clone()
            .or_else(|| string_field(&blob, "name"))
            .unwrap_or_else(|| "blob".into());
        let content_type = options
            .content_type
            .clone()
            .or_else(|| Some(blob.type_()).filter(|t| !t.is_empty()))
            .unwrap_or_else(|| "application/octet-stream".into());
        let modified = js_sys::Reflect::get(&blob, &"lastModified".into())
            .ok()
            .and_then(|v| v.as_f64())
            .map(|ms| ms as i64);
        let store = shared.state.borrow().persist.store.clone();
        let key = options
            .endpoint
            .as_deref()
            .filter(|_| store.is_available())
            .map(|endpoint| fingerprint(endpoint, &name, size, modified));
        let mut known = None;
        if let (Some(key), None) = (&key, &options.upload_url) {
            match store.load(key).await {
                Ok(record) => {
                    known = record.filter(|r| r.continues(options.protocol, size, js::wall_ms()));
                }
                Err(message) => shared.emit(WebEvent::StoreFailed(message)),
            }
            let sweeper = store.clone();
            let weak = Rc::downgrade(shared);
            wasm_bindgen_futures::spawn_local(async move {
                if let (Err(message), Some(shared)) = (sweeper.sweep().await, weak.upgrade()) {
                    shared.emit(WebEvent::StoreFailed(message));
                }
            });
        }
        let protocol = known.as_ref().map_or(options.protocol, |r| r.protocol);
        let config = UploadConfig {
            protocol,
            endpoint: options.endpoint.clone(),
            upload_url: known
                .as_ref()
                .map(|r| r.upload_url.clone())
                .or_else(|| options.upload_url.clone()),
            total_size: Some(size),
            file_name: name,
            content_type,
            headers: options.headers.clone(),
            chunking: options.chunking.clone(),
            retry: options.retry.clone(),
            progress_interval: options.progress_interval,
            ietf_version: options.ietf_version,
            metadata: options.metadata.clone(),
            seed: (js_sys::Math::random() * (u64::MAX as f64)) as u64,
            ..UploadConfig::create(String::new(), size)
        };
        let upload = match Upload::new(config) {
            Ok(upload) => upload,
            Err(error) => {
                Shared::finish(shared, Ending::Failed(error));
                return;
            }
        };
        {
            let mut state = shared.state.borrow_mut();
            if !matches!(state.phase, Phase::Starting) {
                return; // cancelled while looking in the store
            }
            state.phase = Phase::Running(Box::new(upload));
            state.stack = Some(stack);
            state.origin_ms = js::now_ms();
            state.persist.key = key;
            state.persist.protocol = protocol;
            state.persist.total = size;
            state.persist.expires_ms = known.as_ref().and_then(|r| r.expires_ms);
            state.persist.upload_url = known.map(|r| r.upload_url);
            if options.follow_network {
                state.listeners = network_listeners(shared);
            }
        }
        let paused = {
            let state = shared.state.borrow();
            state.user_paused || state.offline_paused
        };
        if paused {
            Shared::input(shared, Input::Pause);
        } else {
            Shared::pump(shared);
        }
    }

    /// Feeds `input` to the engine and runs it until it waits.
    fn input(shared: &Rc<Shared>, input: Input) {
        {
            let Ok(mut state) = shared.state.try_borrow_mut() else {
                // Reported from inside a call the driver is making (a
                // platform that runs a callback synchronously): once that
                // call has returned.
                let shared = shared.clone();
                wasm_bindgen_futures::spawn_local(async move { Shared::input(&shared, input) });
                return;
            };
            let now = state.now();
            if let Input::Response { id, .. } | Input::TransportFailed { id, .. } = &input {
                if state.in_flight.as_ref().is_some_and(|f| f.id == *id) {
                    state.in_flight = None;
                }
            }
            if let Phase::Running(upload) = &mut state.phase {
                upload.handle_input(now, input);
            } else {
                return;
            }
        }
        Shared::pump(shared);
    }

    /// Performs what the engine asks until it waits or is done.
    fn pump(shared: &Rc<Shared>) {
        let done = {
            let mut guard = shared.state.borrow_mut();
            let state = &mut *guard;
            loop {
                let now = state.now();
                let Phase::Running(upload) = &mut state.phase else {
                    break false;
                };
                match upload.poll_output(now) {
                    Output::Send(spec) => {
                        state.in_flight = None;
                        let Some(stack) = state.stack else {
                            break false;
                        };
                        let weak = Rc::downgrade(shared);
                        let deliver: transport::Deliver = Rc::new(move |input| {
                            if let Some(shared) = weak.upgrade() {
                                Shared::input(&shared, input);
                            }
                        });
                        match transport::start(stack, &spec, &state.blob, deliver) {
                            Ok(request) => state.in_flight = Some(request),
                            Err(error) => upload
                                .handle_input(now, Input::TransportFailed { id: spec.id, error }),
                        }
                    }
                    Output::Abort(id) => {
                        if state.in_flight.as_ref().is_some_and(|f| f.id == id) {
                            state.in_flight = None;
                        }
                    }
                    Output::Event(event) => {
                        let at = js::now_ms();
                        state.persist.observe(&event, at);
                        match &event {
                            Event::Completed { upload_url } => {
                                state.outcome = Some(Ending::Completed(upload_url.clone()));
                            }
                            Event::Failed(error) => {
                                state.outcome = Some(Ending::Failed(error.clone()));
                            }
                            Event::Cancelled => state.outcome = Some(Ending::Cancelled),
                            _ => {}
                        }
                        shared
                            .outbox
                            .borrow_mut()
                            .push_back(WebEvent::Engine(event));
                    }
                    Output::Wait(until) => {
                        state.timer = until.map(|at| {
                            let delay = at.saturating_since(now).as_secs_f64() * 1000.0;
                            let weak: Weak<Shared> = Rc::downgrade(shared);
                            js::Timer::after(delay.ceil(), move || {
                                if let Some(shared) = weak.upgrade() {
                                    Shared::pump(&shared);
                                }
                            })
                        });
                        break false;
                    }
                    Output::Done => break true,
                }
            }
        };
        if done {
            let outcome = shared.state.borrow_mut().outcome.take();
            let ending = outcome.unwrap_or_else(|| {
                Ending::Failed(chunkup_core::Error::InvalidConfig(
                    "the upload ended without an outcome".into(),
                ))
            });
            Shared::finish(shared, ending);
        } else {
            shared.drain();
        }
    }

    /// Ends the upload: releases requests, timers and listeners, then
    /// reports the outcome once.
    fn finish(shared: &Rc<Shared>, ending: Ending) {
        let (waiters, store_task) = {
            let mut state = shared.state.borrow_mut();
            if state.ending.is_some() {
                return;
            }
            state.phase = Phase::Finished;
            state.in_flight = None;
            state.timer = None;
            remove_listeners(&mut state.listeners);
            state.ending = Some(ending.clone());
            let forget = matches!(
                ending,
                Ending::Completed(_)
                    | Ending::Cancelled
                    | Ending::Failed(
                        chunkup_core::Error::UploadGone { .. }
                            | chunkup_core::Error::Rejected { .. }
                    )
            );
            let task = state
                .persist
                .key
                .clone()
                .filter(|_| forget)
                .map(|key| (state.persist.store.clone(), key));
            (std::mem::take(&mut state.waiters), task)
        };
        if let Some((store, key)) = store_task {
            let weak = Rc::downgrade(shared);
            wasm_bindgen_futures::spawn_local(async move {
                if let (Err(message), Some(shared)) = (store.remove(&key).await, weak.upgrade()) {
                    shared.emit(WebEvent::StoreFailed(message));
                }
            });
        }
        shared
            .outbox
            .borrow_mut()
            .push_back(WebEvent::Finished(ending.result()));
        shared.drain();
        for waker in waiters {
            waker.wake();
        }
    }

    fn emit(&self, event: WebEvent) {
        self.outbox.borrow_mut().push_back(event);
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
}

impl State {
    /// The engine's clock: milliseconds since the start, from
    /// `performance.now()`.
    fn now(&self) -> Instant {
        let elapsed = (js::now_ms() - self.origin_ms).max(0.0) / 1000.0;
        Instant::from_elapsed(Duration::from_secs_f64(elapsed))
    }
}

impl Persist {
    /// Keeps the store in step with `event` (writes complete in the
    /// background; a failure is reported as [`WebEvent::StoreFailed`]).
    fn observe(&mut self, event: &Event, now_ms: f64) {
        let Some(key) = self.key.clone() else { return };
        match event {
            Event::Discovered(capabilities) => self.protocol = capabilities.protocol,
            Event::Expires { at_unix_ms } => {
                self.expires_ms = Some(*at_unix_ms);
                self.save(key, 0, now_ms)
            }
            Event::Created { upload_url } => {
                self.upload_url = Some(upload_url.clone());
                self.save(key, 0, now_ms)
            }
            Event::ChunkAcknowledged { offset } => {
                let due = self
                    .last_saved_ms
                    .is_none_or(|at| now_ms - at >= STORE_REFRESH_MS);
                if due {
                    self.save(key, *offset, now_ms);
                }
            }
            _ => {}
        }
    }

    fn save(&mut self, key: String, offset: u64, now_ms: f64) {
        let Some(upload_url) = self.upload_url.clone() else {
            return;
        };
        self.last_saved_ms = Some(now_ms);
        let record = ResumeRecord {
            fingerprint: key,
            upload_url,
            protocol: self.protocol,
            offset,
            total: self.total,
            updated_ms: js::wall_ms(),
            expires_ms: self.expires_ms,
        };
        let store = self.store.clone();
        let owner = self.owner.clone();
        // A refusal (a full quota) is only reported: it costs the resume
        // after a reload, never the upload.
        wasm_bindgen_futures::spawn_local(async move {
            if let (Err(message), Some(shared)) = (store.save(&record).await, owner.upgrade()) {
                shared.emit(WebEvent::StoreFailed(message));
            }
        });
    }
}

/// An event listener on `globalThis`: the event's name and the handler.
type Listener = (&'static str, Closure<dyn FnMut()>);

/// Pauses on `offline` and resumes on `online`, when there is a window.
fn network_listeners(shared: &Rc<Shared>) -> Vec<Listener> {
    if js::global("addEventListener").is_none() {
        return Vec::new(); // Node: no network events
    }
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    let mut listeners = Vec::new();
    for (name, online) in [("offline", false), ("online", true)] {
        let weak = Rc::downgrade(shared);
        let handler = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = weak.upgrade() {
                Shared::network(&shared, online);
            }
        });
        if global
            .add_event_listener_with_callback(name, handler.as_ref().unchecked_ref())
            .is_ok()
        {
            listeners.push((name, handler));
        }
    }
    listeners
}

fn remove_listeners(listeners: &mut Vec<Listener>) {
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    for (name, handler) in listeners.drain(..) {
        let _ = global.remove_event_listener_with_callback(name, handler.as_ref().unchecked_ref());
    }
}

impl Shared {
    fn network(shared: &Rc<Shared>, online: bool) {
        let input = {
            let mut state = shared.state.borrow_mut();
            if online {
                let was = std::mem::replace(&mut state.offline_paused, false);
                (was && !state.user_paused).then_some(Input::Resume)
            } else {
                let was = state.user_paused || state.offline_paused;
                state.offline_paused = true;
                (!was).then_some(Input::Pause)
            }
        };
        shared.emit(WebEvent::Network { online });
        if let Some(input) = input {
            Shared::input(shared, input);
        }
    }
}

/// A string property of a JS object (`File.name`), if it has one.
fn string_field(object: &JsValue, name: &str) -> Option<String> {
    js_sys::Reflect::get(object, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
        .filter(|s| !s.is_empty())
}
