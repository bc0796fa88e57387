//! The session: everything between one file and the [`Upload`]s that send
//! it, decided once for every platform.
//!
//! A driver (native client, browser, batch, FFI) runs the same loop as for
//! an upload — `poll_output(now)`, perform, `handle_input(now, ..)` — and
//! carries out a few more outputs against its resume store:
//! [`SessionOutput::Load`], [`SessionOutput::Persist`] and
//! [`SessionOutput::Forget`]. The session owns:
//!
//! - **identity**: which upload a source is ([`SourceInfo::resume_key`]);
//!   content without an identity that cannot collide is never remembered;
//! - **continuation**: whether a remembered record may continue the upload
//!   (same size, same protocol unless `auto`, not expired);
//! - **persistence**: when records are written (at once when a URL is known,
//!   then at most once a second) and forgotten (completed, terminated,
//!   refused);
//! - **discovery**: one `OPTIONS`, whose result is a settled protocol; a
//!   protocol the user named is never replaced by a guess
//!   ([`discovery`](self::discovery));
//! - **parallel parts** of a big file (tus concatenation), each remembered
//!   under its own key until the final upload joins them;
//! - **outcomes and controls**: *stop* keeps the upload on the server and the
//!   record, *terminate* removes both; a driver whose caller went away (a
//!   cancelled coroutine, a dropped future) simply stops calling — that is a
//!   stop, never a removal.

mod discovery;
mod identity;
mod records;
mod s3;

use std::collections::VecDeque;

pub use identity::{SourceInfo, part_key};

use crate::progress::ProgressTracker;
use crate::protocol::PartWindow;
use crate::{
    ByteRange, Capabilities, Concat, Error, Event, Input, Instant, Output, Protocol, RequestId,
    RequestSpec, ResolvedProtocol, Response, ResumeRecord, TransportError, TransportErrorKind,
    Upload, UploadConfig, UploadSettings,
};
use discovery::{Discovery, Settled};
use records::{RecordContext, Remembered};

/// Everything a session needs to know up front.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The protocol asked for; [`Protocol::Auto`] asks the server.
    pub protocol: Protocol,
    /// Where uploads are created. Needed unless `upload_url` is given.
    pub endpoint: Option<String>,
    /// An upload the application knows, to continue (the server is asked
    /// how much it holds).
    pub upload_url: Option<String>,
    /// What is uploaded: its size and identity.
    pub source: SourceInfo,
    /// How each upload behaves.
    pub settings: UploadSettings,
    /// What an earlier discovery of this endpoint learned (a batch shares
    /// one); used when it agrees with `protocol`.
    pub known: Option<Capabilities>,
    /// Whether the driver keeps a resume store: remembered uploads are looked
    /// up, written and forgotten through `Load`, `Persist` and `Forget`.
    pub remember: bool,
    /// Connections one file may use: a big file goes as parallel parts where
    /// the server allows it (tus concatenation).
    pub parallel: usize,
    /// The wall clock (milliseconds since the Unix epoch) at the first
    /// `now` the session sees: records carry wall-clock times and the
    /// session reads no clock.
    pub wall_clock_ms: i64,
}

impl SessionConfig {
    /// A session uploading `source` to `endpoint` in `protocol`, remembered
    /// when the driver has a store.
    pub fn new(endpoint: impl Into<String>, protocol: Protocol, source: SourceInfo) -> Self {
        SessionConfig {
            protocol,
            endpoint: Some(endpoint.into()),
            upload_url: None,
            source,
            settings: UploadSettings::default(),
            known: None,
            remember: true,
            parallel: 1,
            wall_clock_ms: 0,
        }
    }
}

/// What a session wants its driver to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutput {
    /// Perform this request (its body range is in the source's coordinates)
    /// and report its outcome.
    Send(RequestSpec),
    /// Drop this request.
    Abort(RequestId),
    /// Read the record kept under this key; answer with
    /// [`SessionInput::Loaded`] (with `None` when there is none or the store
    /// failed — then also [`SessionInput::StoreFailed`]).
    Load(String),
    /// Write this record (replacing the one with the same fingerprint).
    Persist(ResumeRecord),
    /// Remove the record with this key.
    Forget(String),
    /// Report this to the user.
    Event(Event),
    /// Ask the application whether to retry after this failure (only with
    /// `settings.ask_before_retry`); answer with
    /// [`SessionInput::RetryAnswer`] naming the same `question`.
    AskRetry {
        question: u64,
        attempt: u32,
        reason: crate::RetryReason,
    },
    /// Nothing to do until an input arrives, or until this instant.
    Wait(Option<Instant>),
    /// The session is over.
    Done(Outcome),
}

/// Something that happened to the driver, the store or the user.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionInput {
    /// The final response to request `id`.
    Response { id: RequestId, response: Response },
    /// Request `id` failed below HTTP.
    TransportFailed {
        id: RequestId,
        error: TransportError,
    },
    /// `bytes` of request `id`'s body were handed to the network so far.
    BodySent { id: RequestId, bytes: u64 },
    /// Preparing request `id`'s body, the driver found the source (a
    /// stream) ends at byte `at` of the source; the request was not sent.
    SourceEnded { id: RequestId, at: u64 },
    /// The store's answer to [`SessionOutput::Load`].
    Loaded {
        key: String,
        record: Option<ResumeRecord>,
    },
    /// The store failed; the upload goes on but may not be resumable.
    StoreFailed { message: String },
    /// Stop sending until `Resume`.
    Pause,
    /// Continue after `Pause` (the server is asked for its offset first).
    Resume,
    /// The application's answer to [`SessionOutput::AskRetry`].
    RetryAnswer { question: u64, retry: bool },
    /// End now, keeping the upload on the server and its record: a later
    /// session continues it.
    Stop,
    /// End now, removing the upload from the server where the protocol can,
    /// and forgetting its record.
    Terminate,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server holds every byte.
    Completed(Completion),
    /// The upload cannot complete.
    Failed(Error),
    /// Stopped; the upload is kept and can be continued.
    Stopped,
    /// Ended and removed.
    Terminated,
}

/// What a completed session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The upload's URL (`None` when the server completed it in the
    /// creation request without naming it).
    pub upload_url: Option<String>,
    /// Bytes uploaded in total.
    pub size: u64,
    /// Bytes an earlier upload of the same content already held, when one
    /// was continued.
    pub resumed_from: Option<u64>,
}

/// One file's upload session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    key: Option<String>,
    stage: Stage,
    queue: VecDeque<SessionOutput>,
    next_id: u64,
    origin: Option<Instant>,
    paused: bool,
    /// Stop or terminate asked for before any upload existed.
    pending: Option<SessionInput>,
    capabilities: Option<Capabilities>,
    /// `auto` guessed the ranged protocol; a refusal naming another
    /// protocol may still correct it (once).
    guessed: bool,
    resumed_from: Option<u64>,
    /// Aggregated progress of parallel parts.
    progress: ProgressTracker,
    /// The latest `now` seen.
    now: Instant,
    /// An S3 multipart upload's object-wide state.
    s3: Option<S3State>,
}

/// What an S3 session knows of the object and its multipart upload.
#[derive(Debug)]
struct S3State {
    object_url: String,
    upload_url: Option<String>,
    remembered: Option<Remembered>,
    /// The multipart upload came from a record or the application: if it
    /// vanished (aborted, expired), a new one is created — once.
    may_recreate: bool,
}

#[derive(Debug)]
enum Stage {
    Start,
    AwaitRecord,
    Discover(Box<Discovering>),
    AwaitParts(PartsLookup),
    Running(Vec<Slot>),
    /// An S3 request for the whole object: create, complete or abort.
    S3(Box<s3::Exchange>),
    Finished(Outcome),
}

#[derive(Debug)]
struct Discovering {
    discovery: Discovery,
    /// A record whose upload is continued once the protocol is settled.
    record: Option<ResumeRecord>,
    in_flight: Option<(RequestId, Instant)>,
    ask_at: Option<Instant>,
}

#[derive(Debug)]
struct PartsLookup {
    parts: Vec<ByteRange>,
    records: Vec<Option<ResumeRecord>>,
    waiting: usize,
}

/// One upload the session runs: the whole file, one part, or the final
/// upload joining the parts.
#[derive(Debug)]
struct Slot {
    upload: Upload,
    role: Role,
    /// The bytes of the source this upload sends.
    window: ByteRange,
    remembered: Option<Remembered>,
    /// The upload's request in flight: its own id and the session's.
    in_flight: Option<(RequestId, RequestId)>,
    /// The retry question the upload waits on.
    question: Option<u64>,
    acknowledged: u64,
    sent: u64,
    ended: Option<Ended>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Whole,
    /// One part of a tus concatenation.
    Part,
    /// The tus upload joining the parts.
    Final,
    /// One window of an S3 multipart upload.
    Window,
}

#[derive(Debug, Clone, PartialEq)]
enum Ended {
    Completed(Option<String>),
    Failed,
    Stopped,
    Terminated,
}

impl Session {
    /// Checks the configuration; nothing happens until the first
    /// `poll_output`.
    pub fn new(config: SessionConfig) -> Result<Self, Error> {
        // The same checks every upload makes, before anything is asked.
        crate::upload::check_targets(config.endpoint.as_deref(), config.upload_url.as_deref())?;
        let interval = config.settings.progress_interval;
        Ok(Session {
            config,
            key: None,
            stage: Stage::Start,
            queue: VecDeque::new(),
            next_id: 0,
            origin: None,
            paused: false,
            pending: None,
            capabilities: None,
            guessed: false,
            resumed_from: None,
            progress: ProgressTracker::new(interval),
            now: Instant::ZERO,
            s3: None,
        })
    }

    /// The key the upload is remembered under, once the session started
    /// (`None` when the source has no stable identity or nothing is
    /// remembered).
    pub fn resume_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The settled protocol and what the server supports, once known.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The upload's URL on the server, once known (for parallel parts, the
    /// final upload's).
    pub fn upload_url(&self) -> Option<&str> {
        if let Some(s3) = &self.s3 {
            return s3.upload_url.as_deref();
        }
        match &self.stage {
            Stage::Running(slots) => slots
                .iter()
                .find(|s| matches!(s.role, Role::Whole | Role::Final))
                .and_then(|s| s.upload.upload_url()),
            _ => None,
        }
    }

    /// True once the session ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Finished(_))
    }

    /// What the driver should do next.
    pub fn poll_output(&mut self, now: Instant) -> SessionOutput {
        self.origin.get_or_insert(now);
        self.now = now;
        loop {
            if let Some(output) = self.queue.pop_front() {
                return output;
            }
            match &mut self.stage {
                Stage::Start => self.start(now),
                Stage::AwaitRecord | Stage::AwaitParts(_) => return SessionOutput::Wait(None),
                Stage::Discover(_) => {
                    if let Some(wait) = self.step_discovery(now) {
                        return wait;
                    }
                }
                Stage::Running(_) => {
                    let wake = self.pump_slots(now);
                    if self.queue.is_empty() && matches!(self.stage, Stage::Running(_)) {
                        return SessionOutput::Wait(wake);
                    }
                }
                Stage::S3(_) => {
                    if let Some(wait) = self.step_exchange(now) {
                        return wait;
                    }
                }
                Stage::Finished(outcome) => return SessionOutput::Done(outcome.clone()),
            }
        }
    }

    /// Feeds an outcome, a store answer or a user command to the session.
    pub fn handle_input(&mut self, now: Instant, input: SessionInput) {
        self.origin.get_or_insert(now);
        self.now = now;
        match input {
            SessionInput::Response { id, response } => {
                if self.is_discovery_request(id) {
                    return self.on_discovery_answer(now, Ok(response));
                }
                if self.is_exchange_request(id) {
                    return self.on_exchange_answer(now, Ok(&response));
                }
                self.deliver(now, id, |local| Input::Response {
                    id: local,
                    response,
                });
            }
            SessionInput::TransportFailed { id, error } => {
                if self.is_discovery_request(id) {
                    return self.on_discovery_answer(now, Err(error));
                }
                if self.is_exchange_request(id) {
                    return self.on_exchange_answer(now, Err(&error));
                }
                self.deliver(now, id, |local| Input::TransportFailed { id: local, error });
            }
            SessionInput::BodySent { id, bytes } => {
                self.deliver(now, id, |local| Input::BodySent { id: local, bytes });
            }
            SessionInput::SourceEnded { id, at } => {
                let start = self.slot_of(id).map_or(0, |s| s.window.start);
                self.deliver(now, id, |local| Input::SourceEnded {
                    id: local,
                    at: at.saturating_sub(start),
                });
            }
            SessionInput::Loaded { key, record } => self.on_loaded(now, key, record),
            SessionInput::StoreFailed { message } => {
                self.queue
                    .push_back(SessionOutput::Event(Event::StoreFailed { message }));
            }
            SessionInput::RetryAnswer { question, retry } => {
                if let Stage::Running(slots) = &mut self.stage
                    && let Some(slot) = slots.iter_mut().find(|s| s.question == Some(question))
                {
                    slot.question = None;
                    slot.upload.handle_input(now, Input::RetryAnswer { retry });
                }
            }
            SessionInput::Pause => self.pause(),
            SessionInput::Resume => self.resume(now),
            SessionInput::Stop | SessionInput::Terminate => self.end(now, input),
        }
    }

    // --- starting: the record, then the protocol -------------------------

    fn start(&mut self, now: Instant) {
        let target = self
            .config
            .endpoint
            .clone()
            .or_else(|| self.config.upload_url.clone())
            .unwrap_or_default();
        self.key = if self.config.remember {
            self.config.source.resume_key(&target)
        } else {
            None
        };
        match (&self.key, &self.config.upload_url) {
            // The application named the upload: nothing to look up.
            (Some(key), None) => {
                self.queue.push_back(SessionOutput::Load(key.clone()));
                self.stage = Stage::AwaitRecord;
            }
            _ => self.settle_protocol(now, None),
        }
    }

    fn on_loaded(&mut self, now: Instant, key: String, record: Option<ResumeRecord>) {
        match &mut self.stage {
            Stage::AwaitRecord if self.key.as_deref() == Some(key.as_str()) => {
                self.settle_protocol(now, record)
            }
            Stage::AwaitParts(lookup) => {
                let Some(file_key) = self.key.as_deref() else {
                    return;
                };
                let index = lookup
                    .parts
                    .iter()
                    .position(|part| part_key(file_key, *part) == key);
                if let Some(index) = index
                    && lookup.records[index].is_none()
                    && lookup.waiting > 0
                {
                    lookup.records[index] = record;
                    lookup.waiting -= 1;
                }
                // Every answer is in: start the parts.
                if let Stage::AwaitParts(lookup) = &mut self.stage
                    && lookup.waiting == 0
                {
                    let parts = std::mem::take(&mut lookup.parts);
                    let records = std::mem::take(&mut lookup.records);
                    self.run_parts(now, parts, records);
                }
            }
            _ => {}
        }
    }

    /// Whether `record` may continue this session's upload now.
    fn continues(&self, now: Instant, record: &ResumeRecord) -> bool {
        let Some(size) = self.config.source.size else {
            return false;
        };
        self.key.as_deref() == Some(record.fingerprint.as_str())
            && record.part_of.is_none()
            && record.continues(self.config.protocol, size, self.wall_ms(now))
    }

    fn settle_protocol(&mut self, now: Instant, record: Option<ResumeRecord>) {
        let record = record.filter(|r| self.continues(now, r));
        let named = match &record {
            // A remembered upload keeps the protocol it was made in.
            Some(record) => Some(record.protocol),
            None => self.config.protocol.resolved(),
        };
        let known = self
            .config
            .known
            .clone()
            .filter(|known| named.is_none_or(|p| p == known.protocol));
        let from_caller = known.is_some();
        let settled = match (named, known, &record) {
            (_, Some(known), _) => Some(known),
            // tus servers are asked what they support (checksum,
            // termination, concatenation, maximum size); the others have
            // nothing to learn.
            (Some(ResolvedProtocol::Tus), None, _) => None,
            (Some(protocol), None, Some(record)) => Some(Capabilities {
                ietf_version: record.ietf_version,
                ..Capabilities::assumed(protocol)
            }),
            (Some(protocol), None, None) => Some(Capabilities::assumed(protocol)),
            (None, None, _) => None,
        };
        match settled {
            Some(capabilities) => {
                // What the caller already knew is not news to it.
                if !from_caller {
                    self.announce(&capabilities);
                }
                self.run(now, capabilities, record)
            }
            None => {
                let url = self
                    .config
                    .endpoint
                    .clone()
                    .or_else(|| record.as_ref().map(|r| r.upload_url.clone()))
                    .or_else(|| self.config.upload_url.clone())
                    .unwrap_or_default();
                let discovery = Discovery::new(
                    url,
                    named,
                    self.config.settings.headers.clone(),
                    &self.config.settings.retry,
                    self.config.settings.seed,
                )
                .refreshable(self.config.settings.refresh_credentials);
                self.stage = Stage::Discover(Box::new(Discovering {
                    discovery,
                    record,
                    in_flight: None,
                    ask_at: None,
                }));
                if let Some(SessionInput::Terminate) = self.pending {
                    // Removing a remembered upload needs no discovery.
                    self.terminate_before_running(now);
                }
            }
        }
    }

    /// Sends the `OPTIONS` when due; the wait otherwise.
    fn step_discovery(&mut self, now: Instant) -> Option<SessionOutput> {
        let stall = self.config.settings.retry.stall_timeout;
        let paused = self.paused;
        let Stage::Discover(state) = &mut self.stage else {
            return None;
        };
        if let Some((id, started)) = state.in_flight {
            if now.saturating_since(started) < stall {
                return Some(SessionOutput::Wait(Some(started + stall)));
            }
            self.queue.push_back(SessionOutput::Abort(id));
            let stalled = TransportError::new(TransportErrorKind::Timeout, "no answer");
            self.on_discovery_answer(now, Err(stalled));
            return None;
        }
        if paused {
            return Some(SessionOutput::Wait(None));
        }
        if let Some(at) = state.ask_at
            && now < at
        {
            return Some(SessionOutput::Wait(Some(at)));
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        state.ask_at = None;
        state.in_flight = Some((id, now));
        Some(SessionOutput::Send(state.discovery.request(id)))
    }

    fn is_discovery_request(&self, id: RequestId) -> bool {
        matches!(&self.stage, Stage::Discover(state)
            if state.in_flight.is_some_and(|(flight, _)| flight == id))
    }

    fn on_discovery_answer(&mut self, now: Instant, answer: Result<Response, TransportError>) {
        let Stage::Discover(state) = &mut self.stage else {
            return;
        };
        state.in_flight = None;
        let settled = match &answer {
            Ok(response) => state.discovery.on_response(response),
            Err(error) => state.discovery.on_transport_failure(error),
        };
        match settled {
            Settled::Protocol(capabilities) => {
                let record = state.record.take();
                self.announce(&capabilities);
                self.run(now, capabilities, record);
            }
            Settled::AskAgain(delay) => state.ask_at = Some(now + delay),
            Settled::Failed(error) => self.fail(error),
        }
    }

    // --- running the uploads -----------------------------------------------

    /// The protocol is settled: start the upload(s).
    fn run(&mut self, now: Instant, capabilities: Capabilities, record: Option<ResumeRecord>) {
        self.guessed = capabilities.assumed
            && self.config.protocol == Protocol::Auto
            && capabilities.protocol == ResolvedProtocol::Ranged
            && record.is_none();
        self.capabilities = Some(capabilities.clone());
        if capabilities.protocol == ResolvedProtocol::S3 {
            return self.run_s3(now, record);
        }
        let size = self.config.source.size;
        let parts = match (&record, &self.config.upload_url, size) {
            (None, None, Some(size)) if self.config.parallel > 1 => {
                crate::concat::plan_parts(&capabilities, size, self.config.parallel)
            }
            _ => None,
        };
        if let Some(parts) = parts {
            match self.key.clone() {
                Some(key) => {
                    for part in &parts {
                        self.queue
                            .push_back(SessionOutput::Load(part_key(&key, *part)));
                    }
                    self.stage = Stage::AwaitParts(PartsLookup {
                        records: vec![None; parts.len()],
                        waiting: parts.len(),
                        parts,
                    });
                }
                None => {
                    let none = vec![None; parts.len()];
                    self.run_parts(now, parts, none);
                }
            }
            return;
        }
        let upload_url = record
            .as_ref()
            .map(|r| r.upload_url.clone())
            .or_else(|| self.config.upload_url.clone());
        let remembered = self.key.clone().map(|key| {
            let fresh = Remembered::new(key, None);
            match &record {
                Some(record) => fresh.continuing(record),
                None => fresh.at(upload_url.clone()),
            }
        });
        let config = self.upload_config(size, Concat::None, upload_url);
        let window = ByteRange {
            start: 0,
            end: size.unwrap_or(u64::MAX),
        };
        match Upload::new(config) {
            Ok(upload) => self.begin(now, vec![slot(upload, Role::Whole, window, remembered)]),
            Err(error) => self.fail(error),
        }
    }

    fn run_parts(
        &mut self,
        now: Instant,
        parts: Vec<ByteRange>,
        records: Vec<Option<ResumeRecord>>,
    ) {
        let mut slots = Vec::with_capacity(parts.len());
        for (index, (part, record)) in parts.into_iter().zip(records).enumerate() {
            let remembered = self
                .key
                .clone()
                .map(|file_key| Remembered::new(part_key(&file_key, part), Some(file_key.clone())));
            let record = record.filter(|r| {
                remembered.as_ref().is_some_and(|m| m.key == r.fingerprint)
                    && r.protocol == ResolvedProtocol::Tus
                    && r.total == part.len()
                    && r.is_resumable(self.wall_ms(now))
            });
            let remembered = match (remembered, &record) {
                (Some(m), Some(record)) => Some(m.continuing(record)),
                (m, _) => m,
            };
            let mut config = self.upload_config(
                Some(part.len()),
                Concat::Partial,
                record.map(|r| r.upload_url),
            );
            config.settings.seed = config.settings.seed.wrapping_add(index as u64 + 1);
            match Upload::new(config) {
                Ok(upload) => slots.push(slot(upload, Role::Part, part, remembered)),
                Err(error) => return self.fail(error),
            }
        }
        self.begin(now, slots);
    }

    /// Starts running `slots`, applying a pause or an end asked for while
    /// the session was still getting ready.
    fn begin(&mut self, now: Instant, slots: Vec<Slot>) {
        self.stage = Stage::Running(slots);
        if self.paused {
            self.each_running(now, |_| Some(Input::Pause));
        }
        if let Some(end) = self.pending.take() {
            self.end(now, end);
        }
    }

    /// Reports the settled protocol.
    fn announce(&mut self, capabilities: &Capabilities) {
        self.queue.push_back(SessionOutput::Event(Event::Discovered(
            capabilities.clone(),
        )));
    }

    /// Polls every running upload until it waits; returns the earliest wake.
    fn pump_slots(&mut self, now: Instant) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut index = 0;
        loop {
            let Stage::Running(slots) = &mut self.stage else {
                return wake;
            };
            let Some(slot) = slots.get_mut(index) else {
                return wake;
            };
            if slot.ended.is_some() && slot.upload.is_finished() {
                index += 1;
                continue;
            }
            match slot.upload.poll_output(now) {
                Output::Send(mut spec) => {
                    let global = RequestId(self.next_id);
                    self.next_id += 1;
                    slot.in_flight = Some((spec.id, global));
                    spec.id = global;
                    if let Some(range) = &mut spec.body {
                        range.start += slot.window.start;
                        range.end += slot.window.start;
                    }
                    self.queue.push_back(SessionOutput::Send(spec));
                }
                Output::Abort(local) => {
                    if let Some((own, global)) = slot.in_flight
                        && own == local
                    {
                        slot.in_flight = None;
                        self.queue.push_back(SessionOutput::Abort(global));
                    }
                }
                Output::Event(event) => self.on_upload_event(now, index, event),
                Output::AskRetry { attempt, reason } => {
                    let question = self.next_id;
                    self.next_id += 1;
                    slot.question = Some(question);
                    self.queue.push_back(SessionOutput::AskRetry {
                        question,
                        attempt,
                        reason,
                    });
                }
                Output::Wait(until) => {
                    if let Some(at) = until {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                    }
                    index += 1;
                }
                Output::Done => index += 1,
            }
        }
    }

    fn slot_of(&self, id: RequestId) -> Option<&Slot> {
        match &self.stage {
            Stage::Running(slots) => slots
                .iter()
                .find(|s| s.in_flight.is_some_and(|(_, global)| global == id)),
            _ => None,
        }
    }

    /// Hands an input about request `id` to the upload that sent it.
    fn deliver(&mut self, now: Instant, id: RequestId, input: impl FnOnce(RequestId) -> Input) {
        let Stage::Running(slots) = &mut self.stage else {
            return;
        };
        let Some(slot) = slots
            .iter_mut()
            .find(|s| s.in_flight.is_some_and(|(_, global)| global == id))
        else {
            return;
        };
        let Some((local, _)) = slot.in_flight else {
            return;
        };
        let input = input(local);
        if !matches!(input, Input::BodySent { .. }) {
            slot.in_flight = None;
        }
        slot.upload.handle_input(now, input);
    }

    /// Applies `input(slot)` to every upload that has not ended.
    fn each_running(&mut self, now: Instant, mut input: impl FnMut(&Slot) -> Option<Input>) {
        if let Stage::Running(slots) = &mut self.stage {
            for slot in slots.iter_mut().filter(|s| s.ended.is_none()) {
                if let Some(input) = input(slot) {
                    slot.upload.handle_input(now, input);
                }
            }
        }
    }

    fn on_upload_event(&mut self, now: Instant, index: usize, event: Event) {
        let wall = self.wall_ms(now);
        let Stage::Running(slots) = &mut self.stage else {
            return;
        };
        let slot = &mut slots[index];
        let role = slot.role;
        let mut persist = false;
        let mut forward = role == Role::Whole;
        match &event {
            Event::Created { upload_url } => {
                if let Some(m) = &mut slot.remembered {
                    m.upload_url = Some(upload_url.clone());
                    m.created_ms = Some(wall);
                    persist = true;
                }
                forward = role != Role::Part;
            }
            Event::ResumedAt { offset } => {
                self.resumed_from = Some(self.resumed_from.unwrap_or(0) + offset);
                slot.acknowledged = *offset;
            }
            Event::ChunkAcknowledged { offset } => {
                slot.acknowledged = slot.acknowledged.max(*offset);
                if let Some(m) = &mut slot.remembered {
                    m.acknowledged = *offset;
                    persist = m.refresh_due(now);
                }
                if role == Role::Window {
                    let held = slots.iter().map(|s| s.acknowledged).sum();
                    if let Some(m) = self.s3.as_mut().and_then(|s3| s3.remembered.as_mut()) {
                        m.acknowledged = held;
                        if m.refresh_due(now) {
                            self.persist_s3(now);
                        }
                    }
                }
            }
            Event::Expires { at_unix_ms } => {
                if let Some(m) = &mut slot.remembered {
                    m.expires_ms = Some(*at_unix_ms);
                    persist = true;
                }
            }
            Event::Progress(progress) => {
                slot.acknowledged = progress.acknowledged;
                slot.sent = progress.sent;
                if matches!(role, Role::Part | Role::Window) {
                    let (acknowledged, sent) = slots
                        .iter()
                        .filter(|s| s.role == role)
                        .fold((0, 0), |(a, s), slot| {
                            (a + slot.acknowledged, s + slot.sent)
                        });
                    let total = self.config.source.size.unwrap_or(acknowledged);
                    let force = acknowledged == total;
                    if let Some(whole) = self.progress.update(now, acknowledged, sent, total, force)
                    {
                        self.queue
                            .push_back(SessionOutput::Event(Event::Progress(whole)));
                    }
                }
            }
            Event::ServerRewound { .. } | Event::Retrying { .. } => forward = true,
            Event::Paused => forward = matches!(role, Role::Whole | Role::Final) || index == 0,
            Event::Completed { upload_url } => {
                slot.ended = Some(Ended::Completed(upload_url.clone()));
                if let Some(m) = &mut slot.remembered {
                    m.acknowledged = slot.window.len();
                }
                // A part stays remembered until the final upload joins it.
                persist = role == Role::Part;
                forward = false;
            }
            Event::Failed(error) => {
                slot.ended = Some(Ended::Failed);
                let error = error.clone();
                if let (Role::Window, Error::UploadGone { status }) = (role, &error)
                    && self.s3.as_ref().is_some_and(|s3| s3.may_recreate)
                {
                    return self.recreate_s3(now, *status);
                }
                if let (true, Role::Whole, Error::WrongProtocol { announced, .. }) =
                    (self.guessed, role, &error)
                {
                    return self.relearn(now, *announced);
                }
                return self.fail(error);
            }
            Event::Stopped => {
                slot.ended = Some(Ended::Stopped);
                forward = false;
            }
            Event::Terminated => {
                slot.ended = Some(Ended::Terminated);
                forward = false;
            }
            Event::Discovered(_) | Event::StoreFailed { .. } => forward = false,
        }
        if persist {
            self.persist_slot(now, index);
        }
        if forward {
            self.queue.push_back(SessionOutput::Event(event));
        }
        self.after_slot_change(now);
    }

    /// `auto` guessed the ranged protocol and the server's refusal names
    /// another one: speak that one.
    fn relearn(&mut self, now: Instant, announced: ResolvedProtocol) {
        self.guessed = false;
        let capabilities = Capabilities {
            assumed: false,
            ..Capabilities::assumed(announced)
        };
        self.announce(&capabilities);
        self.run(now, capabilities, None);
    }

    /// Moves the session on when an upload ended: parts done start the
    /// final upload; everything ended ends the session.
    fn after_slot_change(&mut self, now: Instant) {
        let Stage::Running(slots) = &self.stage else {
            return;
        };
        if slots.iter().any(|s| s.ended.is_none()) {
            return;
        }
        let ended = |wanted: fn(&Ended) -> bool| {
            slots
                .iter()
                .filter(|s| s.ended.as_ref().is_some_and(wanted))
                .count()
        };
        let terminated = ended(|e| matches!(e, Ended::Terminated)) == slots.len();
        let stopped = ended(|e| matches!(e, Ended::Stopped)) > 0;
        let finished_url = slots.iter().find_map(|s| match &s.ended {
            Some(Ended::Completed(url)) if matches!(s.role, Role::Whole | Role::Final) => {
                Some(url.clone())
            }
            _ => None,
        });
        let part_urls: Vec<String> = slots
            .iter()
            .filter_map(|s| match &s.ended {
                Some(Ended::Completed(url)) => url.clone(),
                _ => None,
            })
            .collect();
        let count = slots.len();
        let windows = slots.iter().all(|s| s.role == Role::Window);
        if windows && !stopped && finished_url.is_none() {
            let mut parts: Vec<_> = slots
                .iter()
                .flat_map(|s| s.upload.s3_parts().iter().cloned())
                .collect();
            // Windows own disjoint part numbers, each used once: no ties, so
            // the unstable sort (smaller in the npm package) orders as a
            // stable one would.
            parts.sort_unstable_by_key(|p| p.number);
            return self.start_exchange(s3::Step::Complete(parts));
        }
        if terminated {
            self.forget_all();
            self.queue
                .push_back(SessionOutput::Event(Event::Terminated));
            self.finish(Outcome::Terminated);
        } else if stopped {
            for index in 0..count {
                self.persist_slot(now, index);
            }
            self.persist_s3(now);
            self.queue.push_back(SessionOutput::Event(Event::Stopped));
            self.finish(Outcome::Stopped);
        } else if let Some(upload_url) = finished_url {
            self.forget_all();
            self.queue.push_back(SessionOutput::Event(Event::Completed {
                upload_url: upload_url.clone(),
            }));
            let completion = Completion {
                upload_url,
                size: self.config.source.size.unwrap_or_default(),
                resumed_from: self.resumed_from,
            };
            self.finish(Outcome::Completed(completion));
        } else if part_urls.len() == count {
            // Every part is complete: join them.
            self.start_final(part_urls);
        } else {
            self.fail(Error::ProtocolViolation(
                "a part completed without an upload URL".into(),
            ));
        }
    }

    fn start_final(&mut self, urls: Vec<String>) {
        let total = self.config.source.size.unwrap_or_default();
        let config = self.upload_config(Some(total), Concat::Final(urls), None);
        let window = ByteRange {
            start: 0,
            end: total,
        };
        match Upload::new(config) {
            Ok(upload) => {
                if let Stage::Running(slots) = &mut self.stage {
                    slots.push(slot(upload, Role::Final, window, None));
                }
            }
            Err(error) => self.fail(error),
        }
    }

    /// The configuration of one of the session's uploads.
    fn upload_config(
        &self,
        total_size: Option<u64>,
        concat: Concat,
        upload_url: Option<String>,
    ) -> UploadConfig {
        UploadConfig {
            capabilities: self
                .capabilities
                .clone()
                .unwrap_or_else(|| Capabilities::assumed(ResolvedProtocol::Ranged)),
            endpoint: self.config.endpoint.clone(),
            upload_url,
            total_size,
            concat,
            part_window: PartWindow::ALL,
            fresh_upload: false,
            settings: self.config.settings.clone(),
        }
    }

    // --- S3 multipart uploads ----------------------------------------------

    /// Starts an S3 upload: its windows when the multipart upload exists
    /// (a record, or the application's URL), else its creation.
    fn run_s3(&mut self, now: Instant, record: Option<ResumeRecord>) {
        let Some(size) = self.config.source.size else {
            return self.fail(Error::InvalidConfig(
                "an S3 multipart upload needs the source's size".into(),
            ));
        };
        if size > s3::MAX_OBJECT {
            return self.fail(Error::InvalidConfig(format!(
                "{size} bytes is more than S3's largest object (5 TiB, {} bytes)",
                s3::MAX_OBJECT
            )));
        }
        let upload_url = record
            .as_ref()
            .map(|r| r.upload_url.clone())
            .or_else(|| self.config.upload_url.clone());
        let object_url = self
            .config
            .endpoint
            .clone()
            .unwrap_or_else(|| s3::object_url(upload_url.as_deref().unwrap_or_default()));
        let remembered = self.key.clone().map(|key| {
            let fresh = Remembered::new(key, None);
            match &record {
                Some(record) => fresh.continuing(record),
                None => fresh.at(upload_url.clone()),
            }
        });
        self.s3 = Some(S3State {
            object_url,
            may_recreate: upload_url.is_some(),
            upload_url,
            remembered,
        });
        if self.s3.as_ref().is_some_and(|s3| s3.upload_url.is_some()) {
            self.run_windows(now, false);
        } else {
            self.start_exchange(s3::Step::Create);
        }
    }

    /// The windows of the object, in parallel, each continuing where the
    /// server's part listing says.
    fn run_windows(&mut self, now: Instant, fresh: bool) {
        let size = self.config.source.size.unwrap_or_default();
        let upload_url = self.s3.as_ref().and_then(|s3| s3.upload_url.clone());
        let mut slots = Vec::new();
        for (index, (range, window)) in s3::windows(size, self.config.parallel)
            .into_iter()
            .enumerate()
        {
            let mut config =
                self.upload_config(Some(range.len()), Concat::None, upload_url.clone());
            // A window ends in failure, not in a new upload, when the
            // multipart upload is gone: the session decides what follows.
            config.endpoint = None;
            config.part_window = window;
            config.fresh_upload = fresh;
            config.settings.seed = config.settings.seed.wrapping_add(index as u64 + 1);
            match Upload::new(config) {
                Ok(upload) => slots.push(slot(upload, Role::Window, range, None)),
                Err(error) => return self.fail(error),
            }
        }
        self.begin(now, slots);
    }

    /// The multipart upload named by a record or the application is gone:
    /// forget it and create a new one (once).
    fn recreate_s3(&mut self, now: Instant, status: u16) {
        self.each_running(now, |_| Some(Input::Stop));
        self.drain_aborts(now);
        let Some(state) = self.s3.as_mut() else {
            return;
        };
        state.may_recreate = false;
        state.upload_url = None;
        if let Some(m) = state.remembered.as_mut() {
            self.queue.push_back(SessionOutput::Forget(m.key.clone()));
            *m = Remembered::new(m.key.clone(), None);
        }
        self.queue.push_back(SessionOutput::Event(Event::Retrying {
            attempt: 1,
            delay: std::time::Duration::ZERO,
            reason: crate::RetryReason::UploadGone(status),
        }));
        self.start_exchange(s3::Step::Create);
    }

    fn start_exchange(&mut self, step: s3::Step) {
        let exchange = s3::Exchange::new(step, &self.config.settings);
        self.stage = Stage::S3(Box::new(exchange));
    }

    /// Terminate: abort the multipart upload if there is one.
    fn abort_s3(&mut self) {
        if self.s3.as_ref().is_some_and(|s3| s3.upload_url.is_some()) {
            self.start_exchange(s3::Step::Abort);
        } else {
            self.forget_all();
            self.queue
                .push_back(SessionOutput::Event(Event::Terminated));
            self.finish(Outcome::Terminated);
        }
    }

    /// Sends the object-wide request when due; the wait otherwise.
    fn step_exchange(&mut self, now: Instant) -> Option<SessionOutput> {
        let stall = self.config.settings.retry.stall_timeout;
        let paused = self.paused;
        let Stage::S3(exchange) = &mut self.stage else {
            return None;
        };
        if let Some((id, started)) = exchange.in_flight {
            if now.saturating_since(started) < stall {
                return Some(SessionOutput::Wait(Some(started + stall)));
            }
            self.queue.push_back(SessionOutput::Abort(id));
            let stalled = TransportError::new(TransportErrorKind::Timeout, "no answer");
            self.on_exchange_answer(now, Err(&stalled));
            return None;
        }
        if paused {
            return Some(SessionOutput::Wait(None));
        }
        if let Some(at) = exchange.ask_at
            && now < at
        {
            return Some(SessionOutput::Wait(Some(at)));
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        exchange.ask_at = None;
        exchange.in_flight = Some((id, now));
        let state = self.s3.as_ref()?;
        Some(SessionOutput::Send(exchange.request(
            id,
            &state.object_url,
            state.upload_url.as_deref(),
            &self.config.settings,
        )))
    }

    fn is_exchange_request(&self, id: RequestId) -> bool {
        matches!(&self.stage, Stage::S3(exchange)
            if exchange.in_flight.is_some_and(|(flight, _)| flight == id))
    }

    fn on_exchange_answer(&mut self, now: Instant, answer: Result<&Response, &TransportError>) {
        let Stage::S3(exchange) = &mut self.stage else {
            return;
        };
        exchange.in_flight = None;
        let step = exchange.step.clone();
        match exchange.conclude(answer) {
            s3::Concluded::Again(delay, reason) => {
                exchange.ask_at = Some(now + delay);
                self.queue.push_back(SessionOutput::Event(Event::Retrying {
                    attempt: 1,
                    delay,
                    reason,
                }));
            }
            s3::Concluded::Failed(error) => self.fail(error),
            s3::Concluded::Done(created) => match step {
                s3::Step::Create => {
                    let wall = self.wall_ms(now);
                    let Some(state) = self.s3.as_mut() else {
                        return;
                    };
                    let url = s3::upload_url(&state.object_url, &created.unwrap_or_default());
                    state.upload_url = Some(url.clone());
                    if let Some(m) = state.remembered.as_mut() {
                        m.upload_url = Some(url.clone());
                        m.created_ms = Some(wall);
                    }
                    self.queue
                        .push_back(SessionOutput::Event(Event::Created { upload_url: url }));
                    self.persist_s3(now);
                    self.run_windows(now, true);
                }
                s3::Step::Complete(_) => {
                    let object = self.s3.as_ref().map(|s3| s3.object_url.clone());
                    self.forget_all();
                    self.queue.push_back(SessionOutput::Event(Event::Completed {
                        upload_url: object.clone(),
                    }));
                    let completion = Completion {
                        upload_url: object,
                        size: self.config.source.size.unwrap_or_default(),
                        resumed_from: self.resumed_from,
                    };
                    self.finish(Outcome::Completed(completion));
                }
                s3::Step::Abort => {
                    self.forget_all();
                    self.queue
                        .push_back(SessionOutput::Event(Event::Terminated));
                    self.finish(Outcome::Terminated);
                }
            },
        }
    }

    /// Writes the S3 upload's record (one for the object; ListParts tells
    /// each window where it stands).
    fn persist_s3(&mut self, now: Instant) {
        let wall = self.wall_ms(now);
        let total = self.config.source.size.unwrap_or_default();
        let Some(capabilities) = self.capabilities.as_ref() else {
            return;
        };
        let context = RecordContext {
            capabilities,
            ietf_version: self.config.settings.ietf_version,
            file_name: &self.config.settings.file_name,
            endpoint: self.config.endpoint.as_deref(),
            metadata: &self.config.settings.metadata,
        };
        let record = self
            .s3
            .as_mut()
            .and_then(|s3| s3.remembered.as_mut())
            .and_then(|m| m.record(context, total, now, wall));
        if let Some(record) = record {
            self.queue.push_back(SessionOutput::Persist(record));
        }
    }

    // --- controls and endings ---------------------------------------------

    fn pause(&mut self) {
        if self.paused || self.is_finished() {
            return;
        }
        self.paused = true;
        match &mut self.stage {
            Stage::Running(slots) => {
                for slot in slots.iter_mut().filter(|s| s.ended.is_none()) {
                    slot.upload.handle_input(Instant::ZERO, Input::Pause);
                }
            }
            Stage::Discover(state) => {
                if let Some((id, _)) = state.in_flight.take() {
                    self.queue.push_back(SessionOutput::Abort(id));
                }
                self.queue.push_back(SessionOutput::Event(Event::Paused));
            }
            _ => self.queue.push_back(SessionOutput::Event(Event::Paused)),
        }
    }

    fn resume(&mut self, now: Instant) {
        if !std::mem::take(&mut self.paused) {
            return;
        }
        self.each_running(now, |_| Some(Input::Resume));
    }

    fn end(&mut self, now: Instant, input: SessionInput) {
        let terminate = input == SessionInput::Terminate;
        match &mut self.stage {
            Stage::Finished(_) => {}
            Stage::Running(_) if terminate && self.s3.is_some() => {
                // One abort removes every window's parts.
                self.each_running(now, |_| Some(Input::Stop));
                self.drain_aborts(now);
                self.abort_s3();
            }
            Stage::S3(exchange) => {
                if let Some((id, _)) = exchange.in_flight.take() {
                    self.queue.push_back(SessionOutput::Abort(id));
                }
                let aborting = exchange.step == s3::Step::Abort;
                if terminate && !aborting {
                    self.abort_s3();
                } else if !terminate && !aborting {
                    self.persist_s3(now);
                    self.queue.push_back(SessionOutput::Event(Event::Stopped));
                    self.finish(Outcome::Stopped);
                }
            }
            Stage::Running(_) => {
                let command = if terminate {
                    Input::Terminate
                } else {
                    Input::Stop
                };
                self.each_running(now, |_| Some(command.clone()));
                // Completed parts are removed too: a new engine for each
                // part's URL, asked at once to remove it.
                if terminate {
                    self.remove_completed_parts(now);
                }
            }
            Stage::Discover(state) => {
                if let Some((id, _)) = state.in_flight.take() {
                    self.queue.push_back(SessionOutput::Abort(id));
                }
                if terminate {
                    self.pending = Some(input);
                    self.terminate_before_running(now);
                } else {
                    self.queue.push_back(SessionOutput::Event(Event::Stopped));
                    self.finish(Outcome::Stopped);
                }
            }
            // The store's answer decides what there is to remove.
            Stage::Start | Stage::AwaitRecord | Stage::AwaitParts(_) => {
                if terminate {
                    self.pending = Some(input);
                } else {
                    self.queue.push_back(SessionOutput::Event(Event::Stopped));
                    self.finish(Outcome::Stopped);
                }
            }
        }
    }

    fn remove_completed_parts(&mut self, now: Instant) {
        let Stage::Running(slots) = &self.stage else {
            return;
        };
        let completed: Vec<(usize, String, u64)> = slots
            .iter()
            .enumerate()
            .filter_map(|(index, s)| match &s.ended {
                Some(Ended::Completed(Some(url))) if s.role == Role::Part => {
                    Some((index, url.clone(), s.window.len()))
                }
                _ => None,
            })
            .collect();
        for (index, url, len) in completed {
            let config = self.upload_config(Some(len), Concat::Partial, Some(url));
            let Ok(mut upload) = Upload::new(config) else {
                continue;
            };
            upload.handle_input(now, Input::Terminate);
            if let Stage::Running(slots) = &mut self.stage {
                slots[index].upload = upload;
                slots[index].ended = None;
            }
        }
    }

    /// Terminate while discovering: a remembered upload is removed in the
    /// protocol it was made in; with none, there is nothing on the server.
    fn terminate_before_running(&mut self, now: Instant) {
        let Stage::Discover(state) = &mut self.stage else {
            return;
        };
        match state.record.take() {
            Some(record) => {
                let capabilities = Capabilities {
                    ietf_version: record.ietf_version,
                    ..Capabilities::assumed(record.protocol)
                };
                self.run(now, capabilities, Some(record));
            }
            None => {
                self.pending = None;
                self.forget_all();
                self.queue
                    .push_back(SessionOutput::Event(Event::Terminated));
                self.finish(Outcome::Terminated);
            }
        }
    }

    fn fail(&mut self, error: Error) {
        if self.is_finished() {
            return;
        }
        // Other uploads of the session stop (their records stay).
        let now = self.now;
        self.each_running(now, |_| Some(Input::Stop));
        self.drain_aborts(now);
        let refused = matches!(
            error,
            Error::Rejected { .. } | Error::UploadGone { .. } | Error::WrongProtocol { .. }
        );
        if refused {
            self.forget_all();
        }
        self.queue
            .push_back(SessionOutput::Event(Event::Failed(error.clone())));
        self.finish(Outcome::Failed(error));
    }

    /// Collects the aborts of uploads just stopped, so a driver drops their
    /// requests before the session reports its end.
    fn drain_aborts(&mut self, now: Instant) {
        if let Stage::Running(slots) = &mut self.stage {
            for slot in slots.iter_mut() {
                // A stopped upload only aborts and reports; nothing else.
                while let Output::Abort(_) | Output::Event(_) = slot.upload.poll_output(now) {}
                if let Some((_, global)) = slot.in_flight.take() {
                    self.queue.push_back(SessionOutput::Abort(global));
                }
            }
        }
    }

    fn forget_all(&mut self) {
        let mut keys: Vec<String> = Vec::new();
        if let Stage::Running(slots) = &self.stage {
            keys.extend(
                slots
                    .iter()
                    .filter_map(|s| s.remembered.as_ref().map(|m| m.key.clone())),
            );
        }
        if let Stage::AwaitParts(lookup) = &self.stage
            && let Some(file_key) = &self.key
        {
            keys.extend(lookup.parts.iter().map(|p| part_key(file_key, *p)));
        }
        if let Some(key) = &self.key
            && !keys.contains(key)
        {
            keys.push(key.clone());
        }
        for key in keys {
            self.queue.push_back(SessionOutput::Forget(key));
        }
    }

    fn persist_slot(&mut self, now: Instant, index: usize) {
        let wall = self.wall_ms(now);
        let Some(capabilities) = self.capabilities.as_ref() else {
            return;
        };
        let Stage::Running(slots) = &mut self.stage else {
            return;
        };
        let Some(slot) = slots.get_mut(index) else {
            return;
        };
        let context = RecordContext {
            capabilities,
            ietf_version: self.config.settings.ietf_version,
            file_name: &self.config.settings.file_name,
            endpoint: self.config.endpoint.as_deref(),
            metadata: &self.config.settings.metadata,
        };
        let total = slot.window.len();
        let record = slot
            .remembered
            .as_mut()
            .and_then(|m| m.record(context, total, now, wall));
        if let Some(record) = record {
            self.queue.push_back(SessionOutput::Persist(record));
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.stage = Stage::Finished(outcome);
    }

    /// The wall clock at `now`.
    fn wall_ms(&self, now: Instant) -> i64 {
        let since = now.saturating_since(self.origin.unwrap_or(now));
        let ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
        self.config.wall_clock_ms.saturating_add(ms)
    }
}

fn slot(upload: Upload, role: Role, window: ByteRange, remembered: Option<Remembered>) -> Slot {
    Slot {
        upload,
        role,
        window,
        remembered,
        in_flight: None,
        question: None,
        acknowledged: 0,
        sent: 0,
        ended: None,
    }
}
