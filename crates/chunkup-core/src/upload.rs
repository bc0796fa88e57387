//! The upload state machine: one per file, driven by `poll_output` and
//! `handle_input`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::progress::ProgressTracker;
use crate::protocol::{Codec, PartWindow, RequestParts, UploadMeta, UploadedPart, Verdict};
use crate::retry::RetryState;
use crate::url::{HttpUrl, Origin, UrlError};
use crate::{
    ByteRange, Capabilities, ChunkSizer, ChunkSizing, Concat, Error, IetfVersion, Instant, Method,
    Progress, RequestId, RequestKind, RequestSpec, ResolvedProtocol, Response, RetryPolicy,
    RetryReason, TransportError,
};

/// Headers that carry credentials: never sent to an origin other than the
/// one the upload started on (a hostile `Location` must not harvest them).
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// How an upload behaves, whatever protocol it speaks and wherever it goes:
/// shared by a [`crate::session::Session`] and every upload it runs.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// File name announced to the server.
    pub file_name: String,
    /// Content type announced to the server.
    pub content_type: String,
    /// Extra headers sent with every request (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// User metadata (tus `Upload-Metadata`).
    pub metadata: Vec<(String, String)>,
    /// Chunk sizing.
    pub chunking: ChunkSizing,
    /// Retry, backoff, deadline and stall policy.
    pub retry: RetryPolicy,
    /// Minimum time between two progress events.
    pub progress_interval: Duration,
    /// Method for ranged chunks (`POST` by default, or `PUT`).
    pub chunk_method: Method,
    /// The IETF draft revision spoken when the server does not name one.
    pub ietf_version: IetfVersion,
    /// Send chunk checksums when the server supports them (tus checksum).
    /// Off by default: the driver must read and hash a chunk before sending.
    pub checksum: bool,
    /// Send a small upload's bytes in its creation request where the
    /// protocol allows (tus creation-with-upload, IETF). On by default; a
    /// batch turns it off (see `chunkup::batch`).
    pub creation_with_upload: bool,
    /// The driver asks the application before each retry after a failure
    /// (`onShouldRetry`): the engine then waits for
    /// [`Input::RetryAnswer`] after [`Output::AskRetry`].
    pub ask_before_retry: bool,
    /// The driver's header provider can refresh credentials: a 401 or 403
    /// is then sent again once, asking for fresh ones
    /// ([`RequestSpec::refresh_credentials`]).
    pub refresh_credentials: bool,
    /// Seed for backoff jitter; drivers pass a random one, tests a fixed one.
    pub seed: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            file_name: "upload.bin".into(),
            content_type: "application/octet-stream".into(),
            headers: Vec::new(),
            metadata: Vec::new(),
            chunking: ChunkSizing::default(),
            retry: RetryPolicy::default(),
            progress_interval: Duration::from_millis(100),
            chunk_method: Method::Post,
            ietf_version: IetfVersion::default(),
            checksum: false,
            creation_with_upload: true,
            ask_before_retry: false,
            refresh_credentials: false,
            seed: 0,
        }
    }
}

/// One upload's configuration: where it goes, in which protocol, and how.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// The protocol spoken and what its server supports (decided before the
    /// upload starts: by the user, a resume record or discovery).
    pub capabilities: Capabilities,
    /// Where new uploads are created (`POST`). Needed unless `upload_url` is
    /// given; with both, a vanished upload is replaced by a new one.
    pub endpoint: Option<String>,
    /// An existing upload to continue: from the application, or from a resume
    /// store. The engine first asks the server how much it holds.
    pub upload_url: Option<String>,
    /// Size of the source in bytes; `None` for a stream whose length is
    /// learned at its end (tus creation-defer-length, IETF).
    pub total_size: Option<u64>,
    /// This upload's role in a tus concatenation.
    pub concat: Concat,
    /// For S3: the part numbers and bytes this engine sends (the session
    /// splits an object into windows sent in parallel).
    pub part_window: PartWindow,
    /// The upload at `upload_url` was created a moment ago and holds
    /// nothing: send at once instead of asking the server first.
    pub fresh_upload: bool,
    /// How the upload behaves.
    pub settings: UploadSettings,
}

impl UploadConfig {
    /// A new ranged upload of `total_size` bytes created at `endpoint`.
    pub fn create(endpoint: impl Into<String>, total_size: u64) -> Self {
        UploadConfig {
            endpoint: Some(endpoint.into()),
            ..Self::base(Some(total_size))
        }
    }

    /// A new ranged upload of a stream whose length is not known yet.
    pub fn create_stream(endpoint: impl Into<String>) -> Self {
        UploadConfig {
            endpoint: Some(endpoint.into()),
            ..Self::base(None)
        }
    }

    /// Continues the existing ranged upload at `upload_url`.
    pub fn resume(upload_url: impl Into<String>, total_size: u64) -> Self {
        UploadConfig {
            upload_url: Some(upload_url.into()),
            ..Self::base(Some(total_size))
        }
    }

    /// The same upload spoken to a server with `capabilities`.
    pub fn speaking(self, capabilities: Capabilities) -> Self {
        UploadConfig {
            capabilities,
            ..self
        }
    }

    /// The same upload with its settings changed by `change`.
    pub fn with_settings(mut self, change: impl FnOnce(&mut UploadSettings)) -> Self {
        change(&mut self.settings);
        self
    }

    fn base(total_size: Option<u64>) -> Self {
        UploadConfig {
            capabilities: Capabilities::assumed(ResolvedProtocol::Ranged),
            endpoint: None,
            upload_url: None,
            total_size,
            concat: Concat::None,
            part_window: PartWindow::ALL,
            fresh_upload: false,
            settings: UploadSettings::default(),
        }
    }
}

/// Something that happened to the driver or the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The final response to request `id` arrived.
    Response { id: RequestId, response: Response },
    /// Request `id` failed below HTTP.
    TransportFailed {
        id: RequestId,
        error: TransportError,
    },
    /// `bytes` of request `id`'s body have been handed to the network so far
    /// (feeds stall detection and byte-level progress).
    BodySent { id: RequestId, bytes: u64 },
    /// While preparing request `id`'s body the driver found that the source
    /// (a stream) ends at byte `at`; the request was not sent.
    SourceEnded { id: RequestId, at: u64 },
    /// Stop sending until `Resume`; a request in flight is abandoned.
    Pause,
    /// Continue after `Pause`, first asking the server for its offset.
    Resume,
    /// The application's answer to [`Output::AskRetry`].
    RetryAnswer { retry: bool },
    /// End the upload now but keep it on the server, so that it can be
    /// continued later (by this process or another one). A request in
    /// flight is abandoned.
    Stop,
    /// End the upload and remove it from the server where the protocol
    /// can (a `DELETE`); it cannot be continued.
    Terminate,
}

/// What the engine wants the driver to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Perform this request and report its outcome.
    Send(RequestSpec),
    /// Drop this request (stalled, paused, cancelled or failed).
    Abort(RequestId),
    /// Report this to the user.
    Event(Event),
    /// Ask the application whether to retry after this failure (only with
    /// [`UploadSettings::ask_before_retry`]); answer with
    /// [`Input::RetryAnswer`].
    AskRetry { attempt: u32, reason: RetryReason },
    /// Nothing to do until an input arrives, or until this instant passes
    /// (`None`: only an input can wake the engine).
    Wait(Option<Instant>),
    /// The upload is over (its last event said how).
    Done,
}

/// What happened, for the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The protocol was settled (from the user's choice, a resume record or
    /// the server's answer): it is spoken from now on.
    Discovered(Capabilities),
    /// The server will forget the upload at this time (milliseconds since
    /// the Unix epoch); store it with the resume record.
    Expires { at_unix_ms: i64 },
    /// A new upload exists on the server (store this URL to resume later).
    Created { upload_url: String },
    /// An existing upload was found holding `offset` bytes.
    ResumedAt { offset: u64 },
    /// The server acknowledged a chunk and holds `offset` bytes.
    ChunkAcknowledged { offset: u64 },
    /// Progress report (throttled).
    Progress(Progress),
    /// The server holds fewer bytes than it had acknowledged (typically a
    /// failover lost its newest bytes); they are sent again.
    ServerRewound { from: u64, to: u64 },
    /// A problem occurred; the engine tries again after `delay`.
    Retrying {
        attempt: u32,
        delay: Duration,
        reason: RetryReason,
    },
    /// The upload is paused.
    Paused,
    /// The resume store failed; the upload goes on, but may not be
    /// resumable after this process ends.
    StoreFailed { message: String },
    /// The server holds every byte. `upload_url` is `None` when the server
    /// completed the upload in its creation request without naming it
    /// (an IETF server may).
    Completed { upload_url: Option<String> },
    /// The upload cannot complete.
    Failed(Error),
    /// The upload was stopped and kept on the server: it can be continued.
    Stopped,
    /// The upload was ended and removed from the server (where the protocol
    /// can remove it).
    Terminated,
}

/// What the engine does when it next gets the chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Status,
    Chunk,
    Terminate,
}

#[derive(Debug, Clone)]
struct InFlight {
    id: RequestId,
    step: Step,
    range: Option<ByteRange>,
    started: Instant,
    last_activity: Instant,
    body_sent: u64,
    /// The request tells the server the final length.
    announces_length: bool,
    /// The request ends the upload (its body reaches the last byte and says
    /// so, or the upload is empty).
    completes: bool,
}

#[derive(Debug, Clone)]
enum Phase {
    Ready(Step),
    InFlight(InFlight),
    Backoff {
        until: Instant,
        then: Step,
    },
    /// Waiting for the application's answer to a retry question.
    Deciding {
        delay: Duration,
        then: Step,
        reason: RetryReason,
    },
    Paused,
    Finished,
}

/// One upload's state machine. See the crate documentation for the loop that
/// drives it.
#[derive(Debug)]
pub struct Upload {
    config: UploadConfig,
    codec: Codec,
    endpoint: Option<HttpUrl>,
    upload_url: Option<HttpUrl>,
    /// The origin credentials may be sent to.
    home_origin: Origin,
    phase: Phase,
    /// The size, once known.
    total: Option<u64>,
    /// The server knows the final length (sent at creation or later).
    length_announced: bool,
    /// Where the next chunk starts: the server's offset as last reported.
    offset: u64,
    /// The most the server ever acknowledged (progress; never decreases).
    acknowledged: u64,
    /// One past the highest byte ever sent to the current upload.
    sent_high: u64,
    /// The most the server may plausibly hold without us having sent it: the
    /// whole file for an upload found by URL, nothing for one we created.
    inherited_limit: u64,
    /// The first status answer of a resumed upload is reported as such.
    resuming: bool,
    expires_ms: Option<i64>,
    next_id: u64,
    retry: RetryState,
    sizer: ChunkSizer,
    progress: ProgressTracker,
    queue: VecDeque<Output>,
    started: Option<Instant>,
    /// The connection the last request went over may be unusable: a server
    /// that answered before reading a body may never read another request
    /// on it (RFC 9112 §9.3), so the next request asks for a new one.
    connection_suspect: bool,
    /// The last answer said the upload is still open although it may hold
    /// every byte (IETF `Upload-Complete: ?0`, a Google-style 308).
    answer_left_open: bool,
    /// Credentials were refreshed after a 401/403 and no request succeeded
    /// since (a second refusal is final).
    refreshed: bool,
    /// The next request asks the header provider for fresh credentials.
    refresh_next: bool,
}

impl Upload {
    /// Checks the configuration and prepares the upload; nothing is sent
    /// until the first `poll_output`.
    pub fn new(config: UploadConfig) -> Result<Self, Error> {
        let (endpoint, upload_url, home) =
            check_targets(config.endpoint.as_deref(), config.upload_url.as_deref())?;
        let capabilities = config.capabilities.clone();
        if matches!(config.concat, Concat::Final(_) | Concat::Partial)
            && capabilities.protocol != ResolvedProtocol::Tus
        {
            return Err(Error::InvalidConfig(
                "concatenation needs the tus protocol".into(),
            ));
        }
        let mut codec = Codec::for_capabilities(&capabilities, &config.settings);
        if let Codec::S3(s3) = &mut codec {
            if upload_url.is_none() {
                return Err(Error::InvalidConfig(
                    "an S3 part window needs its multipart upload's URL".into(),
                ));
            }
            *s3 = crate::protocol::S3::new(config.part_window);
        }
        if config.total_size.is_none() && !codec.defers_length() {
            return Err(Error::InvalidConfig(format!(
                "a stream of unknown length needs a protocol that can defer the length, not {}",
                capabilities.protocol
            )));
        }
        if let (Some(max), Some(total)) = (capabilities.max_size, config.total_size)
            && total > max
        {
            return Err(Error::Rejected {
                status: 413,
                message: format!("the server takes uploads of at most {max} bytes"),
            });
        }
        let mut upload = Upload {
            codec,
            retry: RetryState::new(&config.settings.retry, config.settings.seed),
            sizer: ChunkSizer::new(config.settings.chunking.clone()),
            progress: ProgressTracker::new(config.settings.progress_interval),
            inherited_limit: if upload_url.is_some() && !config.fresh_upload {
                config.total_size.unwrap_or(u64::MAX)
            } else {
                0
            },
            resuming: upload_url.is_some() && !config.fresh_upload,
            total: config.total_size,
            length_announced: config.total_size.is_some(),
            endpoint,
            upload_url,
            home_origin: home,
            phase: Phase::Paused,
            offset: 0,
            acknowledged: 0,
            sent_high: 0,
            expires_ms: None,
            next_id: 0,
            queue: VecDeque::new(),
            started: None,
            connection_suspect: false,
            answer_left_open: false,
            refreshed: false,
            refresh_next: false,
            config,
        };
        if let Some(constraints) = upload.codec.chunk_constraints() {
            upload
                .sizer
                .set_constraints(constraints)
                .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        }
        upload.phase = Phase::Ready(
            if upload.config.fresh_upload && upload.upload_url.is_some() {
                Step::Chunk
            } else {
                upload.recovery_step()
            },
        );
        Ok(upload)
    }

    /// The upload's URL on the server, once known.
    pub fn upload_url(&self) -> Option<&str> {
        self.upload_url.as_ref().map(HttpUrl::as_str)
    }

    /// Bytes the server has acknowledged (never decreases).
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// The upload's size, once known.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// For S3: the parts the server holds, in order (what completes the
    /// multipart upload).
    pub fn s3_parts(&self) -> &[UploadedPart] {
        self.codec.s3_parts()
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> ResolvedProtocol {
        self.codec.protocol()
    }

    /// When the server will forget the upload, if it said (milliseconds
    /// since the Unix epoch).
    pub fn expires_ms(&self) -> Option<i64> {
        self.expires_ms
    }

    /// The chunk sizer (to inspect its estimates).
    pub fn chunk_sizer(&self) -> &ChunkSizer {
        &self.sizer
    }

    /// True once the upload completed, failed or was cancelled.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// What the driver should do next.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        let started = *self.started.get_or_insert(now);
        if let Some(output) = self.queue.pop_front() {
            return output;
        }
        let deadline = self.config.settings.retry.deadline.map(|d| started + d);
        if let Some(deadline) = deadline {
            let active = !matches!(self.phase, Phase::Paused | Phase::Finished);
            if active && now >= deadline {
                let after = self.config.settings.retry.deadline.unwrap_or_default();
                self.fail(Error::DeadlineExceeded { after });
                return self.poll_output(now);
            }
        }
        let wake = |at: Instant| Output::Wait(Some(deadline.map_or(at, |d| d.min(at))));
        match &self.phase {
            Phase::Ready(step) => {
                let step = *step;
                match self.start_request(now, step) {
                    Ok(spec) => Output::Send(spec),
                    Err(error) => {
                        self.fail(error);
                        self.poll_output(now)
                    }
                }
            }
            Phase::Backoff { until, then } if now >= *until => {
                self.phase = Phase::Ready(*then);
                self.poll_output(now)
            }
            Phase::Backoff { until, .. } => wake(*until),
            Phase::InFlight(flight) => {
                let stall_at = flight.last_activity + self.config.settings.retry.stall_timeout;
                if now >= stall_at {
                    let flight = flight.clone();
                    self.queue.push_back(Output::Abort(flight.id));
                    self.phase = Phase::Ready(self.recovery_step());
                    self.on_break(now, flight, RetryReason::Stalled);
                    self.poll_output(now)
                } else {
                    wake(stall_at)
                }
            }
            Phase::Paused | Phase::Deciding { .. } => Output::Wait(None),
            Phase::Finished => Output::Done,
        }
    }

    /// Feeds an outcome or a user command to the engine.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.started.get_or_insert(now);
        match input {
            Input::Response { id, response } => {
                if let Some(flight) = self.take_in_flight(id) {
                    self.on_response(now, flight, response);
                }
            }
            Input::TransportFailed { id, error } => {
                if let Some(flight) = self.take_in_flight(id) {
                    if flight.step == Step::Terminate {
                        return self.finish_terminated();
                    }
                    self.on_break(now, flight, RetryReason::Transport(error));
                }
            }
            Input::SourceEnded { id, at } => {
                if let Some(flight) = self.take_in_flight(id) {
                    self.on_source_ended(flight, at);
                }
            }
            Input::BodySent { id, bytes } => {
                if let Phase::InFlight(flight) = &mut self.phase
                    && flight.id == id
                {
                    flight.last_activity = now;
                    // A count beyond the body (a driver bug) must not
                    // overflow progress arithmetic.
                    flight.body_sent = bytes.min(flight.range.map_or(0, |r| r.len()));
                    self.report_progress(now, false);
                }
            }
            Input::Pause => match &self.phase {
                Phase::Finished | Phase::Paused => {}
                phase => {
                    if let Phase::InFlight(flight) = phase {
                        self.queue.push_back(Output::Abort(flight.id));
                    }
                    self.phase = Phase::Paused;
                    self.queue.push_back(Output::Event(Event::Paused));
                }
            },
            Input::RetryAnswer { retry } => {
                if let Phase::Deciding {
                    delay,
                    then,
                    reason,
                } = &self.phase
                {
                    let (delay, then, reason) = (*delay, *then, reason.clone());
                    if retry {
                        self.back_off(now, delay, then, reason);
                    } else {
                        self.fail(Error::RetryDeclined {
                            attempt: self.retry.failures,
                            last: reason.to_string(),
                        });
                    }
                }
            }
            Input::Resume => {
                if let Phase::Paused = self.phase {
                    self.phase = Phase::Ready(self.recovery_step());
                }
            }
            Input::Stop => self.stop(),
            Input::Terminate => self.terminate(),
        }
    }

    fn stop(&mut self) {
        match &self.phase {
            Phase::Finished => return,
            // Stopping while the upload is being removed: it is removed.
            Phase::InFlight(flight) if flight.step == Step::Terminate => return,
            Phase::InFlight(flight) => self.queue.push_back(Output::Abort(flight.id)),
            _ => {}
        }
        self.phase = Phase::Finished;
        self.queue.push_back(Output::Event(Event::Stopped));
    }

    fn terminate(&mut self) {
        match &self.phase {
            Phase::Finished => return,
            Phase::InFlight(flight) if flight.step == Step::Terminate => return,
            Phase::InFlight(flight) => self.queue.push_back(Output::Abort(flight.id)),
            _ => {}
        }
        if self.upload_url.is_some() && self.codec.terminate().is_some() {
            self.phase = Phase::Ready(Step::Terminate);
        } else {
            self.finish_terminated();
        }
    }

    /// The removal was asked for; whatever the server answered (or if it
    /// could not be reached), the upload is over and not to be continued.
    fn finish_terminated(&mut self) {
        self.phase = Phase::Finished;
        self.queue.push_back(Output::Event(Event::Terminated));
    }

    fn take_in_flight(&mut self, id: RequestId) -> Option<InFlight> {
        match &self.phase {
            Phase::InFlight(flight) if flight.id == id => {
                let flight = flight.clone();
                // Placeholder until the outcome decides the next phase.
                self.phase = Phase::Ready(self.recovery_step());
                Some(flight)
            }
            _ => None,
        }
    }

    /// After any doubt about what the server holds: ask it (or create the
    /// upload if there is none yet).
    fn recovery_step(&self) -> Step {
        if self.upload_url.is_some() {
            Step::Status
        } else {
            Step::Create
        }
    }

    fn meta(&self) -> UploadMeta<'_> {
        meta_of(&self.config, self.total)
    }

    /// The next chunk's range from the current offset.
    fn next_range(&self) -> Result<ByteRange, Error> {
        let remaining = self
            .total
            .map_or(u64::MAX, |t| t.saturating_sub(self.offset));
        let len = match &self.codec {
            Codec::S3(s3) => {
                let len = self
                    .sizer
                    .next_part(remaining, s3.parts_done())
                    .map_err(|e| Error::InvalidConfig(e.to_string()))?;
                keep_window_tail(len, remaining, s3.window, self.sizer.constraints())
            }
            _ => self.sizer.next_chunk(remaining),
        };
        Ok(ByteRange {
            start: self.offset,
            end: self.offset + len,
        })
    }

    fn start_request(&mut self, now: Instant, step: Step) -> Result<RequestSpec, Error> {
        let mut announces_length = false;
        let mut completes = false;
        let (kind, url, range, parts) = match step {
            Step::Create => {
                // Small files travel in the creation request when allowed.
                let whole = self.next_range()?;
                let body = (self.config.settings.creation_with_upload
                    && self.codec.creation_with_upload()
                    && self.total.is_some_and(|t| t > 0 && whole.end == t)
                    && self.config.concat == Concat::None)
                    .then_some(whole);
                if let Some(range) = body {
                    self.sent_high = self.sent_high.max(range.end);
                }
                completes = body.is_some() || self.total == Some(0);
                let parts = self.codec.create(&self.meta(), body);
                (RequestKind::Create, self.endpoint.clone(), body, parts)
            }
            Step::Status => (
                RequestKind::Status,
                self.upload_url.clone(),
                None,
                self.codec.status(&self.meta()),
            ),
            Step::Chunk => {
                let range = self.next_range()?;
                self.sent_high = self.sent_high.max(range.end);
                let last = self.total.is_some_and(|t| range.end == t);
                announces_length = last && !self.length_announced;
                completes = last;
                let parts = self
                    .codec
                    .chunk(range, &self.meta(), last, announces_length);
                (
                    RequestKind::Chunk,
                    self.upload_url.clone(),
                    Some(range),
                    parts,
                )
            }
            Step::Terminate => {
                let parts = self.codec.terminate().unwrap_or(RequestParts {
                    method: Method::Delete,
                    headers: Vec::new(),
                });
                (RequestKind::Terminate, self.upload_url.clone(), None, parts)
            }
        };
        // Steps are only scheduled once their URL is known.
        let mut url = url.expect("a step is only scheduled once its URL is known");
        let s3 = match &self.upload_url {
            Some(upload) => {
                let upload_id = upload.query_param("uploadId").unwrap_or_default();
                let part_start = range.map(|r| r.start);
                self.codec.s3_request(kind, &upload_id, part_start)
            }
            None => None,
        };
        let signing = s3.map(|(query, signing)| {
            if let Some(query) = query {
                url.append_query(&query);
            }
            signing
        });
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let method = parts.method;
        let headers = self.headers_for(&url, parts);
        let checksum = match (kind, range) {
            (RequestKind::Chunk, Some(r)) if !r.is_empty() => self
                .codec
                .checksum(self.config.settings.checksum, &self.config.capabilities),
            _ => None,
        };
        let new_connection = std::mem::take(&mut self.connection_suspect);
        let refresh_credentials = std::mem::take(&mut self.refresh_next);
        self.phase = Phase::InFlight(InFlight {
            id,
            step,
            range,
            started: now,
            last_activity: now,
            body_sent: 0,
            announces_length,
            completes,
        });
        Ok(RequestSpec {
            id,
            kind,
            method,
            url: url.as_str().to_string(),
            headers,
            body: range,
            checksum,
            new_connection,
            refresh_credentials,
            payload: None,
            signing,
        })
    }

    /// Protocol headers first, then the user's (those the protocol set are
    /// not overridden), credentials only for the home origin.
    fn headers_for(&self, url: &HttpUrl, parts: RequestParts) -> Vec<(String, String)> {
        let same_origin = url.origin() == self.home_origin;
        let mut headers = parts.headers;
        for (name, value) in &self.config.settings.headers {
            let taken = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            let credential = CREDENTIAL_HEADERS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name));
            if !taken && (same_origin || !credential) {
                headers.push((name.clone(), value.clone()));
            }
        }
        headers
    }

    fn on_response(&mut self, now: Instant, flight: InFlight, response: Response) {
        let elapsed = now.saturating_since(flight.started);
        let range = flight.range.unwrap_or(ByteRange { start: 0, end: 0 });
        let verdict = match flight.step {
            Step::Create => self.codec.on_create(&response),
            Step::Status => self
                .codec
                .on_status(&response, &meta_of(&self.config, self.total)),
            Step::Chunk => self.codec.on_chunk(&response, range),
            Step::Terminate => return self.finish_terminated(),
        };
        // A refusal of a request with a body may have come before the server
        // read it (rustus answers 413 so, then ignores the connection).
        if !flight.body_is_empty() && !(200..300).contains(&response.status) {
            self.connection_suspect = true;
        }
        // Only a chunk can be sent again or stepped back from, and only an
        // upload that exists has an offset to ask for: the same answers to
        // any other request are refusals (a 409 or 460 to a creation).
        let verdict = match verdict {
            Verdict::ResendChunk(_) | Verdict::StepBack if flight.step != Step::Chunk => {
                refusal(&response)
            }
            Verdict::Resync if self.upload_url.is_none() => refusal(&response),
            verdict => verdict,
        };
        if let Some((min, max)) = self.codec.append_limits(&response) {
            self.sizer.set_server_limits(min, max);
        }
        if (200..300).contains(&response.status) {
            // Credentials worked: a later expiry may be refreshed again.
            self.refreshed = false;
        }
        if let Some(at) = self.codec.expires_ms(&response)
            && self.expires_ms != Some(at)
        {
            self.expires_ms = Some(at);
            self.queue
                .push_back(Output::Event(Event::Expires { at_unix_ms: at }));
        }
        if flight.step == Step::Status
            && self.total.is_some()
            && self.codec.server_knows_length(&response)
        {
            self.length_announced = true;
        }
        // Found by the chaos soak: holding every byte is not complete for an
        // IETF server whose last append's answer was lost, nor for a
        // Google-style session that still answers 308; an empty append
        // declaring the end finishes it.
        self.answer_left_open = matches!(flight.step, Step::Status | Step::Chunk)
            && self.total.is_some()
            && self.codec.awaits_completion(&response);
        if self.answer_left_open {
            self.length_announced = false;
        }
        if flight.body_is_empty() && !matches!(verdict, Verdict::Retry { .. }) {
            self.sizer.on_round_trip(elapsed);
        }
        match verdict {
            Verdict::Created { location, offset } if flight.step == Step::Create => {
                match location {
                    Some(location) => self.on_created(now, &flight, &location, offset),
                    None => self.on_created_complete(now, &flight),
                }
            }
            Verdict::Created { .. } => self.fail(Error::ProtocolViolation(
                "an answer that does not fit the request".into(),
            )),
            Verdict::ServerHas(held) => self.on_server_has(now, &flight, held, elapsed),
            Verdict::Resync => self.retry_now(RetryReason::OffsetMismatch, Step::Status),
            Verdict::ResendChunk(reason) => self.retry_now(reason, Step::Chunk),
            Verdict::AskAgain => self.phase = Phase::Ready(Step::Status),
            Verdict::StepBack => {
                let back = range.start.saturating_sub(range.len());
                self.offset = back;
                let reason = RetryReason::OffsetMovedBack {
                    from: range.start,
                    to: back,
                };
                self.retry_now(reason, Step::Chunk);
            }
            Verdict::Retry {
                reason,
                retry_after,
            } => {
                if flight.step == Step::Chunk {
                    self.sizer
                        .on_break(flight.body_sent, now.saturating_since(flight.started));
                }
                let then = self.recovery_step();
                self.retry_later(now, reason, retry_after, then);
            }
            Verdict::Gone(status) if flight.step == Step::Create => self.fail(Error::Rejected {
                status,
                message: "the endpoint does not exist".into(),
            }),
            Verdict::Gone(status) => self.on_gone(status),
            Verdict::TooLarge => {
                if flight.step == Step::Chunk && self.sizer.on_too_large(range.len()).is_ok() {
                    self.retry_now(RetryReason::ChunkTooLarge(range.len()), Step::Chunk);
                } else {
                    self.fail(Error::Rejected {
                        status: 413,
                        message: "the server does not accept an upload or chunk this large".into(),
                    });
                }
            }
            Verdict::Fatal(Error::Rejected {
                status: status @ (401 | 403),
                ..
            }) if self.config.settings.refresh_credentials && !self.refreshed => {
                // One more try with fresh credentials (a token expired).
                self.refreshed = true;
                self.refresh_next = true;
                self.retry_now(RetryReason::CredentialsRefused(status), flight.step);
            }
            Verdict::Fatal(error) => self.fail(error),
        }
    }

    /// The server answered a creation with success but named no upload: an
    /// IETF server may, when the request carried every byte and said so
    /// (draft -11 requires `Location` only for an incomplete upload). Any
    /// other request so answered is a broken protocol.
    fn on_created_complete(&mut self, now: Instant, flight: &InFlight) {
        let total = match self.total {
            Some(total) if flight.completes => total,
            _ => {
                return self.fail(Error::ProtocolViolation(
                    "the upload was created without a Location header".into(),
                ));
            }
        };
        self.sent_high = total;
        self.offset = total;
        self.acknowledged = total;
        self.complete(now);
    }

    fn on_created(&mut self, now: Instant, flight: &InFlight, location: &str, held: Option<u64>) {
        let base = self
            .endpoint
            .as_ref()
            .expect("create requests need an endpoint");
        let url = match base.join(location) {
            Ok(url) => url,
            Err(UrlError::NotHttp) => {
                return self.fail(Error::InvalidUrl {
                    url: location.to_string(),
                    reason: "the server's Location is not an http(s) URL".into(),
                });
            }
            Err(err) => {
                return self.fail(Error::InvalidUrl {
                    url: location.to_string(),
                    reason: ["the server's Location does not resolve: ", err.reason()].concat(),
                });
            }
        };
        self.queue.push_back(Output::Event(Event::Created {
            upload_url: url.as_str().to_string(),
        }));
        self.upload_url = Some(url);
        self.offset = 0;
        self.sent_high = flight.range.map_or(0, |r| r.end);
        self.inherited_limit = 0;
        self.resuming = false;
        if matches!(self.config.concat, Concat::Final(_)) {
            // The server joined parts it already holds: every byte is there.
            let total = self.total.unwrap_or_default();
            self.offset = total;
            self.acknowledged = total;
            return self.complete(now);
        }
        if self.total == Some(0) {
            return self.complete(now);
        }
        match (flight.range, held) {
            // Data went with the creation request: the answer says how much
            // arrived (no answer means we must ask).
            (Some(_), Some(held)) => self.on_server_has(now, flight, held, Duration::ZERO),
            (Some(_), None) => self.phase = Phase::Ready(Step::Status),
            (None, _) => self.phase = Phase::Ready(Step::Chunk),
        }
    }

    fn on_server_has(&mut self, now: Instant, flight: &InFlight, held: u64, elapsed: Duration) {
        if let Some(total) = self.total
            && held > total
        {
            return self.fail(Error::ProtocolViolation(format!(
                "the server claims {held} bytes of a {total}-byte upload"
            )));
        }
        let plausible = self.sent_high.max(self.inherited_limit);
        if held > plausible {
            return self.fail(Error::ProtocolViolation(format!(
                "the server claims {held} bytes but only {plausible} were ever sent"
            )));
        }
        match flight.step {
            Step::Status => {
                // After a break: how much of the broken chunk the server kept.
                self.sizer.on_resynced(held.saturating_sub(self.offset));
                if std::mem::take(&mut self.resuming) {
                    self.queue
                        .push_back(Output::Event(Event::ResumedAt { offset: held }));
                }
                self.move_offset(now, held);
                self.continue_or_complete(now);
            }
            Step::Chunk | Step::Create => {
                let range = flight.range.unwrap_or(ByteRange { start: 0, end: 0 });
                if held >= range.end && flight.step == Step::Chunk {
                    self.sizer.on_chunk_acked(range.len(), elapsed);
                    if flight.announces_length && !self.answer_left_open {
                        self.length_announced = true;
                    }
                }
                self.move_offset(now, held);
                self.queue
                    .push_back(Output::Event(Event::ChunkAcknowledged { offset: held }));
                if self.is_complete() {
                    self.complete(now);
                } else if held < range.start {
                    let reason = RetryReason::OffsetMovedBack {
                        from: range.start,
                        to: held,
                    };
                    self.retry_now(reason, Step::Chunk);
                } else if held == range.start && !range.is_empty() {
                    self.retry_now(RetryReason::NoProgress { offset: held }, Step::Chunk);
                } else {
                    self.phase = Phase::Ready(Step::Chunk);
                }
            }
            Step::Terminate => self.fail(Error::ProtocolViolation(
                "an offset arrived for a request that sends none".into(),
            )),
        }
    }

    /// Complete when the server holds every byte and knows that is all (an
    /// S3 window holds at least one part: an empty object is one empty
    /// part).
    fn is_complete(&self) -> bool {
        let s3_empty = matches!(self.codec, Codec::S3(_)) && self.codec.s3_parts().is_empty();
        self.total == Some(self.offset) && self.length_announced && !s3_empty
    }

    fn continue_or_complete(&mut self, now: Instant) {
        if self.is_complete() {
            self.complete(now);
        } else {
            self.phase = Phase::Ready(Step::Chunk);
        }
    }

    fn on_source_ended(&mut self, flight: InFlight, at: u64) {
        // Bytes the server acknowledged came from the source: it cannot end
        // before them (the server may have lost some, that is not an end).
        let plausible = flight
            .range
            .is_some_and(|r| r.start <= at && at < r.end && at >= self.acknowledged);
        if self.total.is_some() || !plausible {
            return self.fail(Error::InvalidConfig(format!(
                "the source ended at byte {at}, which does not fit the upload"
            )));
        }
        // The request was never sent: plan the last chunk with the length.
        self.total = Some(at);
        self.sent_high = self.sent_high.min(at).max(self.offset);
        self.phase = Phase::Ready(Step::Chunk);
    }

    fn on_gone(&mut self, status: u16) {
        if self.endpoint.is_none() {
            return self.fail(Error::UploadGone { status });
        }
        self.upload_url = None;
        self.offset = 0;
        self.sent_high = 0;
        self.resuming = false;
        self.length_announced = self.total.is_some();
        self.retry_now(RetryReason::UploadGone(status), Step::Create);
    }

    /// The server's offset is now `held`; progress follows the high-water mark
    /// and only real advance refills the retry budget.
    fn move_offset(&mut self, now: Instant, held: u64) {
        if held < self.offset {
            self.queue.push_back(Output::Event(Event::ServerRewound {
                from: self.offset,
                to: held,
            }));
        }
        self.offset = held;
        if held > self.acknowledged {
            self.acknowledged = held;
            self.retry.progressed();
        }
        let force = self.total == Some(held);
        self.report_progress(now, force);
    }

    fn report_progress(&mut self, now: Instant, force: bool) {
        let in_flight = match &self.phase {
            Phase::InFlight(flight) => flight.range.map_or(0, |r| {
                (r.start + flight.body_sent).saturating_sub(self.acknowledged)
            }),
            _ => 0,
        };
        // An unknown length is shown as what has been acknowledged so far.
        let total = self.total.unwrap_or(self.acknowledged + in_flight);
        if let Some(progress) = self.progress.update(
            now,
            self.acknowledged,
            self.acknowledged + in_flight,
            total,
            force,
        ) {
            self.queue
                .push_back(Output::Event(Event::Progress(progress)));
        }
    }

    fn on_break(&mut self, now: Instant, flight: InFlight, reason: RetryReason) {
        if flight.step == Step::Chunk {
            self.sizer
                .on_break(flight.body_sent, now.saturating_since(flight.started));
        }
        let then = self.recovery_step();
        self.retry_later(now, reason, None, then);
    }

    /// Counts a failure against the budget, then waits a jittered backoff (at
    /// least `retry_after`, clamped) before `then`.
    fn retry_later(
        &mut self,
        now: Instant,
        reason: RetryReason,
        retry_after: Option<Duration>,
        then: Step,
    ) {
        if !self.retry.record_failure(&self.config.settings.retry) {
            return self.give_up(reason);
        }
        let floor = retry_after
            .map(|d| d.min(self.config.settings.retry.max_retry_after))
            .unwrap_or_default();
        let delay = self.retry.next_delay(floor);
        if let (Some(deadline), Some(started)) = (self.config.settings.retry.deadline, self.started)
            && now + delay > started + deadline
        {
            return self.fail(Error::DeadlineExceeded { after: deadline });
        }
        if self.config.settings.ask_before_retry {
            self.queue.push_back(Output::AskRetry {
                attempt: self.retry.failures,
                reason: reason.clone(),
            });
            self.phase = Phase::Deciding {
                delay,
                then,
                reason,
            };
        } else {
            self.back_off(now, delay, then, reason);
        }
    }

    fn back_off(&mut self, now: Instant, delay: Duration, then: Step, reason: RetryReason) {
        self.queue.push_back(Output::Event(Event::Retrying {
            attempt: self.retry.failures,
            delay,
            reason,
        }));
        self.phase = Phase::Backoff {
            until: now + delay,
            then,
        };
    }

    /// Counts a failure against the budget and continues at once: the server
    /// told us exactly what to do (an offset correction, a smaller chunk).
    fn retry_now(&mut self, reason: RetryReason, then: Step) {
        if !self.retry.record_failure(&self.config.settings.retry) {
            return self.give_up(reason);
        }
        self.queue.push_back(Output::Event(Event::Retrying {
            attempt: self.retry.failures,
            delay: Duration::ZERO,
            reason,
        }));
        self.phase = Phase::Ready(then);
    }

    fn give_up(&mut self, last: RetryReason) {
        self.fail(Error::RetriesExhausted {
            attempts: self.retry.failures,
            last: last.to_string(),
        });
    }

    fn complete(&mut self, now: Instant) {
        self.report_progress(now, true);
        let upload_url = self.upload_url().map(str::to_string);
        self.phase = Phase::Finished;
        self.queue
            .push_back(Output::Event(Event::Completed { upload_url }));
    }

    fn fail(&mut self, error: Error) {
        if let Phase::InFlight(flight) = &self.phase {
            self.queue.push_back(Output::Abort(flight.id));
        }
        self.phase = Phase::Finished;
        self.queue.push_back(Output::Event(Event::Failed(error)));
    }
}

impl InFlight {
    fn body_is_empty(&self) -> bool {
        self.range.is_none_or(|r| r.is_empty())
    }
}

/// What a protocol needs to know about the upload to build requests.
fn meta_of(config: &UploadConfig, total: Option<u64>) -> UploadMeta<'_> {
    UploadMeta {
        total,
        file_name: &config.settings.file_name,
        content_type: &config.settings.content_type,
        metadata: &config.settings.metadata,
        concat: &config.concat,
    }
}

/// A part size that never leaves a window (one that does not end the
/// object) with a tail below the minimum part size: S3 takes a small part
/// only as the very last.
fn keep_window_tail(
    len: u64,
    remaining: u64,
    window: PartWindow,
    constraints: crate::ChunkConstraints,
) -> u64 {
    let tail = remaining.saturating_sub(len);
    if window.last || tail == 0 || tail >= constraints.min_part {
        len
    } else if remaining <= constraints.max_part {
        remaining
    } else {
        remaining - constraints.min_part
    }
}

fn refusal(response: &Response) -> Verdict {
    Verdict::Fatal(Error::Rejected {
        status: response.status,
        message: response.body_excerpt(),
    })
}

/// The endpoint and upload URL parsed, and the origin credentials may go
/// to: at least one of them must be given, both must be http(s).
pub(crate) fn check_targets(
    endpoint: Option<&str>,
    upload_url: Option<&str>,
) -> Result<(Option<HttpUrl>, Option<HttpUrl>, Origin), Error> {
    let endpoint = endpoint.map(parse_http_url).transpose()?;
    let upload_url = upload_url.map(parse_http_url).transpose()?;
    let home = match (&endpoint, &upload_url) {
        (Some(url), _) | (None, Some(url)) => url.origin(),
        (None, None) => {
            return Err(Error::InvalidConfig(
                "give an endpoint to create the upload at, or an upload URL to continue".into(),
            ));
        }
    };
    Ok((endpoint, upload_url, home))
}

fn parse_http_url(text: &str) -> Result<HttpUrl, Error> {
    HttpUrl::parse(text).map_err(|err| Error::InvalidUrl {
        url: text.to_string(),
        reason: err.reason().to_string(),
    })
}
