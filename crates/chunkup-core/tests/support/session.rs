//! Drives a [`Session`] by hand with a simulated clock; the test plays the
//! server, and an in-memory map plays the resume store (as every driver's
//! store would: `Load` answered at once, `Persist` and `Forget` applied).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use chunkup_core::session::{Outcome, Session, SessionConfig, SessionInput, SessionOutput};
use chunkup_core::{
    Event, Instant, RequestId, RequestSpec, Response, ResumeRecord, TransportError,
    TransportErrorKind,
};

pub struct SessionHarness {
    pub session: Session,
    pub now: Instant,
    pub events: Vec<Event>,
    pub aborted: Vec<RequestId>,
    /// The store, by key.
    pub store: HashMap<String, ResumeRecord>,
    /// Every store operation, in order: `load K`, `persist K`, `forget K`.
    pub store_log: Vec<String>,
    pub outcome: Option<Outcome>,
    /// Retry questions asked: (question, attempt, reason).
    pub questions: Vec<(u64, u32, chunkup_core::RetryReason)>,
    /// Requests produced but not yet handed to the test.
    pending: Vec<RequestSpec>,
}

impl SessionHarness {
    pub fn new(config: SessionConfig) -> Self {
        Self::with_store(config, HashMap::new())
    }

    pub fn with_store(config: SessionConfig, store: HashMap<String, ResumeRecord>) -> Self {
        SessionHarness {
            session: Session::new(config).unwrap(),
            now: Instant::ZERO,
            events: Vec::new(),
            aborted: Vec::new(),
            store,
            store_log: Vec::new(),
            outcome: None,
            questions: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Polls until the session waits (letting simulated time pass over
    /// timed waits when nothing else is pending) or is done; returns the
    /// requests it produced.
    pub fn requests(&mut self) -> Vec<RequestSpec> {
        self.poll(true)
    }

    /// Handles what an input caused (store operations, events), without
    /// letting time pass; requests wait for the next `requests()`.
    fn drain(&mut self) {
        let requests = self.poll(false);
        self.pending.extend(requests);
    }

    fn poll(&mut self, let_time_pass: bool) -> Vec<RequestSpec> {
        for _ in 0..100_000 {
            match self.session.poll_output(self.now) {
                SessionOutput::Send(spec) => self.pending.push(spec),
                SessionOutput::Abort(id) => {
                    self.aborted.push(id);
                    self.pending.retain(|s| s.id != id);
                }
                SessionOutput::Event(event) => self.events.push(event),
                SessionOutput::AskRetry {
                    question,
                    attempt,
                    reason,
                } => self.questions.push((question, attempt, reason)),
                SessionOutput::Load(key) => {
                    self.store_log.push(format!("load {key}"));
                    let record = self.store.get(&key).cloned();
                    self.session
                        .handle_input(self.now, SessionInput::Loaded { key, record });
                }
                SessionOutput::Persist(record) => {
                    self.store_log
                        .push(format!("persist {}", record.fingerprint));
                    self.store.insert(record.fingerprint.clone(), record);
                }
                SessionOutput::Forget(key) => {
                    self.store_log.push(format!("forget {key}"));
                    self.store.remove(&key);
                }
                SessionOutput::Wait(Some(until)) if let_time_pass && self.pending.is_empty() => {
                    self.now = until.max(self.now);
                }
                SessionOutput::Wait(_) => return std::mem::take(&mut self.pending),
                SessionOutput::Done(outcome) => {
                    self.outcome = Some(outcome);
                    return std::mem::take(&mut self.pending);
                }
            }
        }
        panic!("the session did not settle");
    }

    /// The single request the session wants next.
    pub fn expect_request(&mut self) -> RequestSpec {
        let mut requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected one request: {requests:#?}\nevents: {:#?}",
            self.events
        );
        requests.remove(0)
    }

    pub fn respond(&mut self, spec: &RequestSpec, response: Response) {
        self.now = self.now + Duration::from_millis(10);
        self.session.handle_input(
            self.now,
            SessionInput::Response {
                id: spec.id,
                response,
            },
        );
        self.drain();
    }

    pub fn fail_transport(&mut self, spec: &RequestSpec, kind: TransportErrorKind) {
        self.now = self.now + Duration::from_millis(10);
        let error = TransportError::new(kind, "failed");
        self.session.handle_input(
            self.now,
            SessionInput::TransportFailed { id: spec.id, error },
        );
        self.drain();
    }

    pub fn input(&mut self, input: SessionInput) {
        self.session.handle_input(self.now, input);
        self.drain();
    }

    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
    }

    pub fn persisted(&self) -> usize {
        self.store_log
            .iter()
            .filter(|l| l.starts_with("persist"))
            .count()
    }

    pub fn forgot(&self, key: &str) -> bool {
        self.store_log.contains(&format!("forget {key}"))
    }
}
