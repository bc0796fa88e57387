//! The wire protocols. Each one turns the engine's intent (create, ask for the
//! offset, send bytes `[s, e)`) into a request, and a response into a
//! protocol-neutral [`Verdict`] the engine acts on.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::RetryReason;
use crate::{ByteRange, Error, Method, Response};

pub mod headers;
mod ranged;

pub(crate) use ranged::Ranged;

/// The upload protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// The ranged protocol (`Content-Range` chunks, `X-Last-Known-Byte`).
    #[default]
    Ranged,
}

impl Protocol {
    /// The protocol's name as users type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ranged => "ranged",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "ranged" => Ok(Protocol::Ranged),
            other => Err(Error::InvalidConfig(format!(
                "unknown protocol {other:?} (known: ranged)"
            ))),
        }
    }
}

/// The request a protocol wants, before the engine adds ids and common headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestParts {
    pub method: Method,
    pub headers: Vec<(String, String)>,
}

/// What a response means, independent of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The upload was created at this location (not yet resolved).
    Created { location: String },
    /// The server holds bytes `[0, n)`.
    ServerHas(u64),
    /// The server refused the range without saying what it has: go back one
    /// chunk.
    StepBack,
    /// A passing failure: try again after a backoff, at least `retry_after`.
    Retry {
        reason: RetryReason,
        retry_after: Option<Duration>,
    },
    /// The upload does not exist (any more).
    Gone(u16),
    /// The chunk was too large for the server.
    TooLarge,
    /// Stop: the upload cannot succeed.
    Fatal(Error),
}

/// Context a protocol needs to build requests.
#[derive(Debug, Clone)]
pub(crate) struct UploadMeta<'a> {
    pub total: u64,
    pub file_name: &'a str,
    pub content_type: &'a str,
}

/// How a status code is classified when a protocol has no special meaning
/// for it: shared by every protocol so they agree on what is retryable.
pub(crate) fn generic_verdict(response: &Response) -> Verdict {
    let status = response.status;
    match status {
        404 | 410 => Verdict::Gone(status),
        413 => Verdict::TooLarge,
        408 | 423 | 429 | 500 | 502 | 503 | 504 => Verdict::Retry {
            reason: RetryReason::Status(status),
            retry_after: response
                .header("Retry-After")
                .and_then(headers::parse_retry_after),
        },
        _ => Verdict::Fatal(Error::Rejected {
            status,
            message: response.body_excerpt(),
        }),
    }
}

/// Checks that a range is something the engine would ask for.
pub(crate) fn debug_check_range(range: ByteRange, total: u64) {
    debug_assert!(range.start < range.end && range.end <= total, "{range:?}");
}
