//! When to try again and how long to wait.

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::TransportError;

/// How persistent an upload is.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Failed attempts allowed in a row *without the server's offset
    /// advancing*. Progress refills the budget; a server that keeps failing
    /// (or keeps answering without storing anything) exhausts it.
    pub max_attempts: u32,
    /// The first backoff step.
    pub initial_delay: Duration,
    /// The largest backoff step (the cap).
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; longer requests are clamped so a
    /// hostile server cannot park the client for days.
    pub max_retry_after: Duration,
    /// Give up when the whole upload takes longer than this.
    pub deadline: Option<Duration>,
    /// No acknowledged progress on a request for this long counts as a broken
    /// connection (stall detection).
    pub stall_timeout: Duration,
    /// Explicit waits before the 1st, 2nd, … retry in a row (the last one
    /// repeats), instead of the jittered exponential ladder, as
    /// tus-js-client's `retryDelays`. Empty: the ladder. A server's
    /// `Retry-After` is still the floor.
    pub delays: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            deadline: None,
            stall_timeout: Duration::from_secs(30),
            delays: Vec::new(),
        }
    }
}

/// Why a request is being retried; reported with each retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// A retryable HTTP status (5xx, 408, 423, 429).
    Status(u16),
    /// The connection failed.
    Transport(TransportError),
    /// No progress for longer than the stall timeout.
    Stalled,
    /// The server's offset went back (a hole after failover, or a 416 with no
    /// offset): bytes are sent again.
    OffsetMovedBack { from: u64, to: u64 },
    /// The server answered success but stored nothing of the chunk.
    NoProgress { offset: u64 },
    /// The upload disappeared on the server and a new one is created.
    UploadGone(u16),
    /// The server refused the chunk as too large; a smaller one is tried.
    ChunkTooLarge(u64),
    /// Client and server disagreed on the offset (409): the server is asked.
    OffsetMismatch,
    /// The server's checksum of the chunk differed (tus 460): sent again.
    ChecksumMismatch,
    /// The server refused the credentials (401/403): sent again once with
    /// fresh ones from the header provider.
    CredentialsRefused(u16),
    /// A presigned URL expired (S3 403 "Request has expired"): signed
    /// again and sent again.
    SignatureExpired,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Status(503) => write!(f, "server busy (HTTP 503)"),
            RetryReason::Status(status) => write!(f, "HTTP {status}"),
            RetryReason::Transport(err) => write!(f, "{err}"),
            RetryReason::Stalled => write!(f, "stalled"),
            RetryReason::OffsetMovedBack { from, to } => {
                write!(f, "server offset moved back from {from} to {to}")
            }
            RetryReason::NoProgress { offset } => {
                write!(f, "server acknowledged nothing new (still at {offset})")
            }
            RetryReason::UploadGone(status) => {
                write!(f, "upload gone (HTTP {status}), starting a new one")
            }
            RetryReason::ChunkTooLarge(size) => {
                write!(f, "chunk of {size} bytes too large (HTTP 413)")
            }
            RetryReason::OffsetMismatch => write!(f, "offset mismatch (HTTP 409)"),
            RetryReason::ChecksumMismatch => write!(f, "checksum mismatch (HTTP 460)"),
            RetryReason::SignatureExpired => write!(f, "the signed URL expired; signing again"),
            RetryReason::CredentialsRefused(status) => {
                write!(f, "credentials refused (HTTP {status}); refreshing them")
            }
        }
    }
}

impl RetryReason {
    /// A stable name of the reason's kind, for bindings and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RetryReason::Status(_) => "status",
            RetryReason::Transport(_) => "transport",
            RetryReason::Stalled => "stalled",
            RetryReason::OffsetMovedBack { .. } => "offsetMovedBack",
            RetryReason::NoProgress { .. } => "noProgress",
            RetryReason::UploadGone(_) => "uploadGone",
            RetryReason::ChunkTooLarge(_) => "chunkTooLarge",
            RetryReason::OffsetMismatch => "offsetMismatch",
            RetryReason::ChecksumMismatch => "checksumMismatch",
            RetryReason::SignatureExpired => "signatureExpired",
            RetryReason::CredentialsRefused(_) => "credentialsRefused",
        }
    }

    /// The HTTP status the reason came with, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RetryReason::Status(status)
            | RetryReason::UploadGone(status)
            | RetryReason::CredentialsRefused(status) => Some(*status),
            RetryReason::ChunkTooLarge(_) => Some(413),
            RetryReason::OffsetMismatch => Some(409),
            RetryReason::ChecksumMismatch => Some(460),
            _ => None,
        }
    }
}

/// Backoff and budget bookkeeping for one upload.
///
/// The capped exponential ladder comes from `backon`; full jitter (a uniform
/// draw in `[0, step]`) is applied here with a seeded generator so the engine
/// stays deterministic under test.
#[derive(Debug)]
pub(crate) struct RetryState {
    builder: ExponentialBuilder,
    ladder: ExponentialBackoff,
    rng: fastrand::Rng,
    /// The policy's explicit delays, if any.
    delays: Vec<Duration>,
    /// Failures since the server's offset last advanced.
    pub(crate) failures: u32,
}

impl RetryState {
    pub(crate) fn new(policy: &RetryPolicy, seed: u64) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(policy.initial_delay)
            .with_max_delay(policy.max_delay)
            .with_factor(2.0)
            .without_max_times();
        RetryState {
            ladder: builder.build(),
            builder,
            rng: fastrand::Rng::with_seed(seed),
            delays: policy.delays.clone(),
            failures: 0,
        }
    }

    /// The server's offset advanced: the budget and the ladder start over.
    pub(crate) fn progressed(&mut self) {
        self.failures = 0;
        self.ladder = self.builder.build();
    }

    /// Records a failure; `false` when the budget is spent.
    pub(crate) fn record_failure(&mut self, policy: &RetryPolicy) -> bool {
        self.failures += 1;
        self.failures <= policy.max_attempts
    }

    /// The next backoff delay (full jitter), at least `floor`.
    pub(crate) fn next_delay(&mut self, floor: Duration) -> Duration {
        if let Some(last) = self.delays.last() {
            let index = (self.failures.max(1) - 1) as usize;
            return self
                .delays
                .get(index)
                .unwrap_or(last)
                .max(&floor)
                .to_owned();
        }
        let step = self.ladder.next().unwrap_or(Duration::ZERO);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(self.rng.u64(0..=step_ms));
        jittered.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_within_a_capped_ladder() {
        let policy = RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        let mut state = RetryState::new(&policy, 7);
        let caps = [100, 200, 400, 800, 1000, 1000, 1000];
        for cap in caps {
            let delay = state.next_delay(Duration::ZERO);
            assert!(delay <= Duration::from_millis(cap), "{delay:?} > {cap}ms");
        }
    }

    #[test]
    fn explicit_delays_are_used_in_order_then_the_last_repeats() {
        let policy = RetryPolicy {
            delays: vec![
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(3),
            ],
            ..RetryPolicy::default()
        };
        let mut state = RetryState::new(&policy, 1);
        let mut seen = Vec::new();
        for _ in 0..4 {
            state.record_failure(&policy);
            seen.push(state.next_delay(Duration::ZERO).as_secs());
        }
        assert_eq!(seen, [0, 1, 3, 3]);
        // Retry-After still wins.
        assert_eq!(state.next_delay(Duration::from_secs(9)).as_secs(), 9);
    }

    #[test]
    fn floor_wins_over_a_short_jittered_delay() {
        let mut state = RetryState::new(&RetryPolicy::default(), 1);
        assert!(state.next_delay(Duration::from_secs(3)) >= Duration::from_secs(3));
    }

    #[test]
    fn same_seed_same_delays() {
        let policy = RetryPolicy::default();
        let mut a = RetryState::new(&policy, 42);
        let mut b = RetryState::new(&policy, 42);
        for _ in 0..10 {
            assert_eq!(a.next_delay(Duration::ZERO), b.next_delay(Duration::ZERO));
        }
    }

    #[test]
    fn budget_is_spent_then_refilled_by_progress() {
        let policy = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let mut state = RetryState::new(&policy, 0);
        assert!(state.record_failure(&policy));
        assert!(state.record_failure(&policy));
        assert!(!state.record_failure(&policy));
        state.progressed();
        assert!(state.record_failure(&policy));
    }
}
