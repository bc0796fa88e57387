//! The upload state machine: one per file, driven by `poll_output` and
//! `handle_input`.

use std::collections::VecDeque;
use std::time::Duration;

use url::Url;

use crate::progress::ProgressTracker;
use crate::protocol::{Ranged, RequestParts, UploadMeta, Verdict};
use crate::retry::RetryState;
use crate::{
    ByteRange, ChunkSizer, ChunkSizing, Error, Instant, Method, Progress, Protocol, RequestId,
    RequestKind, RequestSpec, Response, RetryPolicy, RetryReason, TransportError,
};

/// Headers that carry credentials: never sent to an origin other than the
/// one the upload started on (a hostile `Location` must not harvest them).
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Everything an upload needs to know up front.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// The protocol to speak.
    pub protocol: Protocol,
    /// Where new uploads are created (`POST`). Needed unless `upload_url` is
    /// given; with both, a vanished upload is replaced by a new one.
    pub endpoint: Option<String>,
    /// An existing upload to continue: from the application, or from a resume
    /// store. The engine first asks the server how much it holds.
    pub upload_url: Option<String>,
    /// Size of the source in bytes.
    pub total_size: u64,
    /// File name announced to the server.
    pub file_name: String,
    /// Content type announced to the server.
    pub content_type: String,
    /// Extra headers sent with every request (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Chunk sizing.
    pub chunking: ChunkSizing,
    /// Retry, backoff, deadline and stall policy.
    pub retry: RetryPolicy,
    /// Minimum time between two progress events.
    pub progress_interval: Duration,
    /// Method for ranged chunks (`POST` by default, or `PUT`).
    pub chunk_method: Method,
    /// Seed for backoff jitter; drivers pass a random one, tests a fixed one.
    pub seed: u64,
}

impl UploadConfig {
    /// A new upload of `total_size` bytes created at `endpoint`.
    pub fn create(endpoint: impl Into<String>, total_size: u64) -> Self {
        UploadConfig {
            endpoint: Some(endpoint.into()),
            ..Self::base(total_size)
        }
    }

    /// Continues the existing upload at `upload_url`.
    pub fn resume(upload_url: impl Into<String>, total_size: u64) -> Self {
        UploadConfig {
            upload_url: Some(upload_url.into()),
            ..Self::base(total_size)
        }
    }

    fn base(total_size: u64) -> Self {
        UploadConfig {
            protocol: Protocol::default(),
            endpoint: None,
            upload_url: None,
            total_size,
            file_name: "upload.bin".into(),
            content_type: "application/octet-stream".into(),
            headers: Vec::new(),
            chunking: ChunkSizing::default(),
            retry: RetryPolicy::default(),
            progress_interval: Duration::from_millis(100),
            chunk_method: Method::Post,
            seed: 0,
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
    /// Stop sending until `Resume`; a request in flight is abandoned.
    Pause,
    /// Continue after `Pause`, first asking the server for its offset.
    Resume,
    /// Give up the upload.
    Cancel,
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
    /// Nothing to do until an input arrives, or until this instant passes
    /// (`None`: only an input can wake the engine).
    Wait(Option<Instant>),
    /// The upload is over (its last event said how).
    Done,
}

/// What happened, for the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
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
    /// The server holds every byte.
    Completed { upload_url: String },
    /// The upload cannot complete.
    Failed(Error),
    /// The upload was cancelled.
    Cancelled,
}

/// What the engine does when it next gets the chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Status,
    Chunk,
}

#[derive(Debug, Clone)]
struct InFlight {
    id: RequestId,
    step: Step,
    range: Option<ByteRange>,
    started: Instant,
    last_activity: Instant,
    body_sent: u64,
}

#[derive(Debug, Clone)]
enum Phase {
    Ready(Step),
    InFlight(InFlight),
    Backoff { until: Instant, then: Step },
    Paused,
    Finished,
}

/// One upload's state machine. See the crate documentation for the loop that
/// drives it.
#[derive(Debug)]
pub struct Upload {
    config: UploadConfig,
    ranged: Ranged,
    endpoint: Option<Url>,
    upload_url: Option<Url>,
    /// The origin credentials may be sent to.
    home_origin: url::Origin,
    phase: Phase,
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
    next_id: u64,
    retry: RetryState,
    sizer: ChunkSizer,
    progress: ProgressTracker,
    queue: VecDeque<Output>,
    started: Option<Instant>,
}

impl Upload {
    /// Checks the configuration and prepares the upload; nothing is sent
    /// until the first `poll_output`.
    pub fn new(config: UploadConfig) -> Result<Self, Error> {
        let endpoint = config.endpoint.as_deref().map(parse_http_url).transpose()?;
        let upload_url = config
            .upload_url
            .as_deref()
            .map(parse_http_url)
            .transpose()?;
        let home = match (&endpoint, &upload_url) {
            (Some(url), _) | (None, Some(url)) => url.origin(),
            (None, None) => {
                return Err(Error::InvalidConfig(
                    "give an endpoint to create the upload at, or an upload URL to continue".into(),
                ));
            }
        };
        let first = if upload_url.is_some() {
            Step::Status
        } else {
            Step::Create
        };
        Ok(Upload {
            ranged: Ranged {
                chunk_method: config.chunk_method,
            },
            retry: RetryState::new(&config.retry, config.seed),
            sizer: ChunkSizer::new(config.chunking.clone()),
            progress: ProgressTracker::new(config.progress_interval),
            inherited_limit: if upload_url.is_some() {
                config.total_size
            } else {
                0
            },
            resuming: upload_url.is_some(),
            endpoint,
            upload_url,
            home_origin: home,
            phase: Phase::Ready(first),
            offset: 0,
            acknowledged: 0,
            sent_high: 0,
            next_id: 0,
            queue: VecDeque::new(),
            started: None,
            config,
        })
    }

    /// The upload's URL on the server, once known.
    pub fn upload_url(&self) -> Option<&str> {
        self.upload_url.as_ref().map(Url::as_str)
    }

    /// Bytes the server has acknowledged (never decreases).
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// The upload's size.
    pub fn total(&self) -> u64 {
        self.config.total_size
    }

    /// The protocol in use.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
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
        let deadline = self.config.retry.deadline.map(|d| started + d);
        if let Some(deadline) = deadline {
            let active = !matches!(self.phase, Phase::Paused | Phase::Finished);
            if active && now >= deadline {
                let after = self.config.retry.deadline.unwrap_or_default();
                self.fail(Error::DeadlineExceeded { after });
                return self.poll_output(now);
            }
        }
        let wake = |at: Instant| Output::Wait(Some(deadline.map_or(at, |d| d.min(at))));
        match &self.phase {
            Phase::Ready(step) => {
                let step = *step;
                Output::Send(self.start_request(now, step))
            }
            Phase::Backoff { until, then } if now >= *until => {
                self.phase = Phase::Ready(*then);
                self.poll_output(now)
            }
            Phase::Backoff { until, .. } => wake(*until),
            Phase::InFlight(flight) => {
                let stall_at = flight.last_activity + self.config.retry.stall_timeout;
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
            Phase::Paused => Output::Wait(None),
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
                    self.on_break(now, flight, RetryReason::Transport(error));
                }
            }
            Input::BodySent { id, bytes } => {
                if let Phase::InFlight(flight) = &mut self.phase
                    && flight.id == id
                {
                    flight.last_activity = now;
                    flight.body_sent = bytes;
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
            Input::Resume => {
                if let Phase::Paused = self.phase {
                    self.phase = Phase::Ready(self.recovery_step());
                }
            }
            Input::Cancel => {
                if !matches!(self.phase, Phase::Finished) {
                    if let Phase::InFlight(flight) = &self.phase {
                        self.queue.push_back(Output::Abort(flight.id));
                    }
                    self.phase = Phase::Finished;
                    self.queue.push_back(Output::Event(Event::Cancelled));
                }
            }
        }
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
        UploadMeta {
            total: self.config.total_size,
            file_name: &self.config.file_name,
            content_type: &self.config.content_type,
        }
    }

    fn start_request(&mut self, now: Instant, step: Step) -> RequestSpec {
        let (kind, url, range, parts) = match step {
            Step::Create => {
                let parts = self.ranged.create(&self.meta());
                (RequestKind::Create, self.endpoint.clone(), None, parts)
            }
            Step::Status => (
                RequestKind::Status,
                self.upload_url.clone(),
                None,
                self.ranged.status(),
            ),
            Step::Chunk => {
                let remaining = self.config.total_size - self.offset;
                let len = self.sizer.next_chunk(remaining);
                let range = ByteRange {
                    start: self.offset,
                    end: self.offset + len,
                };
                self.sent_high = self.sent_high.max(range.end);
                let parts = self.ranged.chunk(range, &self.meta());
                (
                    RequestKind::Chunk,
                    self.upload_url.clone(),
                    Some(range),
                    parts,
                )
            }
        };
        // Steps are only scheduled when their URL is known.
        let url = url.expect("a step is only scheduled once its URL is known");
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let headers = self.headers_for(&url, parts);
        self.phase = Phase::InFlight(InFlight {
            id,
            step,
            range,
            started: now,
            last_activity: now,
            body_sent: 0,
        });
        RequestSpec {
            id,
            kind,
            method: self.ranged_method(kind),
            url: url.to_string(),
            headers,
            body: range,
        }
    }

    fn ranged_method(&self, kind: RequestKind) -> Method {
        match kind {
            RequestKind::Create => Method::Post,
            RequestKind::Status => Method::Get,
            RequestKind::Chunk => self.config.chunk_method,
            RequestKind::Terminate => Method::Delete,
        }
    }

    /// Protocol headers first, then the user's (those the protocol set are
    /// not overridden), credentials only for the home origin.
    fn headers_for(&self, url: &Url, parts: RequestParts) -> Vec<(String, String)> {
        let same_origin = url.origin() == self.home_origin;
        let mut headers = parts.headers;
        for (name, value) in &self.config.headers {
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
        let verdict = match flight.step {
            Step::Create => self.ranged.on_create(&response),
            Step::Status => self.ranged.on_status(&response, &self.meta()),
            Step::Chunk => {
                let range = flight.range.unwrap_or(ByteRange { start: 0, end: 0 });
                self.ranged.on_chunk(&response, range)
            }
        };
        if flight.step != Step::Chunk && !matches!(verdict, Verdict::Retry { .. }) {
            self.sizer.on_round_trip(elapsed);
        }
        match verdict {
            Verdict::Created { location } if flight.step == Step::Create => {
                self.on_created(now, &location)
            }
            Verdict::Created { .. } => self.fail(Error::ProtocolViolation(
                "a Location arrived for a request that creates nothing".into(),
            )),
            Verdict::ServerHas(held) => self.on_server_has(now, &flight, held, elapsed),
            Verdict::StepBack => {
                let range = flight.range.unwrap_or(ByteRange { start: 0, end: 0 });
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
                let then = self.recovery_step();
                self.retry_later(now, reason, retry_after, then);
            }
            Verdict::Gone(status) if flight.step == Step::Create => self.fail(Error::Rejected {
                status,
                message: "the endpoint does not exist".into(),
            }),
            Verdict::Gone(status) => self.on_gone(status),
            Verdict::TooLarge => {
                let len = flight.range.map_or(0, |r| r.len());
                if flight.step == Step::Chunk && self.sizer.on_too_large(len) {
                    self.retry_now(RetryReason::ChunkTooLarge(len), Step::Chunk);
                } else {
                    self.fail(Error::Rejected {
                        status: 413,
                        message: "the server does not accept an upload or chunk this large".into(),
                    });
                }
            }
            Verdict::Fatal(error) => self.fail(error),
        }
    }

    fn on_created(&mut self, now: Instant, location: &str) {
        let base = self
            .endpoint
            .as_ref()
            .expect("create requests need an endpoint");
        let url = match base.join(location) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(url) => {
                return self.fail(Error::InvalidUrl {
                    url: url.to_string(),
                    reason: "the server's Location is not an http(s) URL".into(),
                });
            }
            Err(err) => {
                return self.fail(Error::InvalidUrl {
                    url: location.to_string(),
                    reason: format!("the server's Location does not resolve: {err}"),
                });
            }
        };
        self.queue.push_back(Output::Event(Event::Created {
            upload_url: url.to_string(),
        }));
        self.upload_url = Some(url);
        self.offset = 0;
        self.sent_high = 0;
        self.inherited_limit = 0;
        if self.config.total_size == 0 {
            self.complete(now);
        } else {
            self.phase = Phase::Ready(Step::Chunk);
        }
    }

    fn on_server_has(&mut self, now: Instant, flight: &InFlight, held: u64, elapsed: Duration) {
        let total = self.config.total_size;
        if held > total {
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
                if std::mem::take(&mut self.resuming) {
                    self.queue
                        .push_back(Output::Event(Event::ResumedAt { offset: held }));
                }
                self.move_offset(now, held);
                if held == total {
                    self.complete(now);
                } else {
                    self.phase = Phase::Ready(Step::Chunk);
                }
            }
            Step::Chunk => {
                let range = flight.range.unwrap_or(ByteRange { start: 0, end: 0 });
                if held >= range.end {
                    self.sizer.on_chunk_acked(range.len(), elapsed);
                }
                self.move_offset(now, held);
                self.queue
                    .push_back(Output::Event(Event::ChunkAcknowledged { offset: held }));
                if held == total {
                    self.complete(now);
                } else if held < range.start {
                    let reason = RetryReason::OffsetMovedBack {
                        from: range.start,
                        to: held,
                    };
                    self.retry_now(reason, Step::Chunk);
                } else if held == range.start {
                    self.retry_now(RetryReason::NoProgress { offset: held }, Step::Chunk);
                } else {
                    self.phase = Phase::Ready(Step::Chunk);
                }
            }
            Step::Create => self.fail(Error::ProtocolViolation(
                "the create answer carried no upload location".into(),
            )),
        }
    }

    fn on_gone(&mut self, status: u16) {
        if self.endpoint.is_none() {
            return self.fail(Error::UploadGone { status });
        }
        self.upload_url = None;
        self.offset = 0;
        self.sent_high = 0;
        self.resuming = false;
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
        let force = held == self.config.total_size;
        self.report_progress(now, force);
    }

    fn report_progress(&mut self, now: Instant, force: bool) {
        let in_flight = match &self.phase {
            Phase::InFlight(flight) => flight.range.map_or(0, |r| {
                (r.start + flight.body_sent).saturating_sub(self.acknowledged)
            }),
            _ => 0,
        };
        if let Some(progress) = self.progress.update(
            now,
            self.acknowledged,
            self.acknowledged + in_flight,
            self.config.total_size,
            force,
        ) {
            self.queue
                .push_back(Output::Event(Event::Progress(progress)));
        }
    }

    fn on_break(&mut self, now: Instant, flight: InFlight, reason: RetryReason) {
        if flight.step == Step::Chunk {
            self.sizer.on_break(flight.body_sent);
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
        if !self.retry.record_failure(&self.config.retry) {
            return self.give_up(reason);
        }
        let floor = retry_after
            .map(|d| d.min(self.config.retry.max_retry_after))
            .unwrap_or_default();
        let delay = self.retry.next_delay(floor);
        if let (Some(deadline), Some(started)) = (self.config.retry.deadline, self.started)
            && now + delay > started + deadline
        {
            return self.fail(Error::DeadlineExceeded { after: deadline });
        }
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
        if !self.retry.record_failure(&self.config.retry) {
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
        let upload_url = self.upload_url().unwrap_or_default().to_string();
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

fn parse_http_url(text: &str) -> Result<Url, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: text.to_string(),
        reason,
    };
    let url = Url::parse(text).map_err(|err| invalid(err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs are supported".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host".into()));
    }
    Ok(url)
}
