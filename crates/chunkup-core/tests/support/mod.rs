//! A simulated clock and a driver loop for testing the engine without IO.
#![allow(dead_code, clippy::unwrap_used)]

pub mod s3;
pub mod session;

use std::time::Duration;

use chunkup_core::{
    Event, Input, Instant, Output, RequestId, RequestSpec, Response, TransportError,
    TransportErrorKind, Upload, UploadConfig,
};

/// Drives an [`Upload`] by hand: the test plays the server.
pub struct Harness {
    pub upload: Upload,
    pub now: Instant,
    pub events: Vec<Event>,
    pub aborted: Vec<RequestId>,
    /// Retry questions the engine asked the application.
    pub questions: Vec<(u32, chunkup_core::RetryReason)>,
    /// A request the engine produced while events were being drained.
    pending: Option<RequestSpec>,
}

impl Harness {
    pub fn new(config: UploadConfig) -> Self {
        Harness {
            upload: Upload::new(config).unwrap(),
            now: Instant::ZERO,
            events: Vec::new(),
            aborted: Vec::new(),
            questions: Vec::new(),
            pending: None,
        }
    }

    /// Polls until the engine sends a request (letting simulated time pass
    /// over waits) or finishes (`None`).
    pub fn next_request(&mut self) -> Option<RequestSpec> {
        if let Some(spec) = self.pending.take() {
            return Some(spec);
        }
        for _ in 0..10_000 {
            match self.upload.poll_output(self.now) {
                Output::Send(spec) => return Some(spec),
                Output::Abort(id) => self.aborted.push(id),
                Output::Event(event) => self.events.push(event),
                Output::Wait(Some(until)) => self.now = until.max(self.now),
                Output::Wait(None) | Output::Done => return None,
                Output::AskRetry { attempt, reason } => self.questions.push((attempt, reason)),
            }
        }
        panic!("the engine did not settle");
    }

    /// Like `next_request` but the test insists a request comes.
    pub fn expect_request(&mut self) -> RequestSpec {
        match self.next_request() {
            Some(spec) => spec,
            None => panic!("expected a request, events: {:#?}", self.events),
        }
    }

    /// Collects the events an input caused, without letting time pass.
    fn drain(&mut self) {
        if self.pending.is_some() {
            return;
        }
        loop {
            match self.upload.poll_output(self.now) {
                Output::Send(spec) => {
                    self.pending = Some(spec);
                    return;
                }
                Output::Abort(id) => self.aborted.push(id),
                Output::Event(event) => self.events.push(event),
                Output::AskRetry { attempt, reason } => self.questions.push((attempt, reason)),
                Output::Wait(_) | Output::Done => return,
            }
        }
    }

    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
    }

    pub fn respond(&mut self, spec: &RequestSpec, response: Response) {
        self.advance(Duration::from_millis(10));
        let input = Input::Response {
            id: spec.id,
            response,
        };
        self.upload.handle_input(self.now, input);
        self.drain();
    }

    pub fn break_connection(&mut self, spec: &RequestSpec) {
        self.advance(Duration::from_millis(10));
        let error = TransportError::new(TransportErrorKind::Reset, "connection reset by peer");
        let input = Input::TransportFailed { id: spec.id, error };
        self.upload.handle_input(self.now, input);
        self.drain();
    }

    pub fn input(&mut self, input: Input) {
        self.upload.handle_input(self.now, input);
        self.drain();
    }

    /// Drains outputs until the engine waits for input or is done.
    pub fn settle(&mut self) -> Option<RequestSpec> {
        self.next_request()
    }

    pub fn completed(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Completed { .. }))
    }

    pub fn failure(&self) -> Option<&chunkup_core::Error> {
        self.events.iter().find_map(|e| match e {
            Event::Failed(error) => Some(error),
            _ => None,
        })
    }

    pub fn retry_delays(&self) -> Vec<Duration> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Retrying { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect()
    }

    pub fn progress_values(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Progress(p) => Some(p.acknowledged),
                _ => None,
            })
            .collect()
    }
}

/// Content-Range of a chunk request as (first, last inclusive, total).
pub fn range_of(spec: &RequestSpec) -> (u64, u64, u64) {
    let value = spec.header("Content-Range").unwrap();
    let (range, total) = value
        .strip_prefix("bytes ")
        .unwrap()
        .split_once('/')
        .unwrap();
    let (first, last) = range.split_once('-').unwrap();
    (
        first.parse().unwrap(),
        last.parse().unwrap(),
        total.parse().unwrap(),
    )
}

/// A ranged server answer acknowledging through inclusive byte `lkb`.
pub fn ok_lkb(lkb: i64) -> Response {
    Response::status(200).with_header("X-Last-Known-Byte", lkb.to_string())
}

pub fn created(location: &str) -> Response {
    Response::status(201).with_header("Location", location)
}

/// The simulated instant `ms` milliseconds after the start.
pub fn at_ms(ms: u64) -> Instant {
    Instant::from_elapsed(Duration::from_millis(ms))
}
