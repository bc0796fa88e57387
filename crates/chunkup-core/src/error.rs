use std::fmt::{self, Write as _};
use std::time::Duration;

/// Why an upload failed. One public type with messages meant for people; the
/// variants are stable so bindings can map them to a `kind`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL given to chunkup or returned by the server is unusable.
    #[error("invalid URL {}: {reason}", Quoted(.url))]
    InvalidUrl { url: String, reason: String },

    /// The configuration cannot work (for example neither an endpoint nor an
    /// upload URL was given).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The server refused the upload with a status that retrying cannot fix.
    #[error("the server refused the upload: HTTP {status}{}", fmt_message(.message))]
    Rejected { status: u16, message: String },

    /// The upload no longer exists on the server and there is no endpoint to
    /// create a new one.
    #[error(
        "the upload no longer exists on the server (HTTP {status}) and no endpoint was given to start a new one"
    )]
    UploadGone { status: u16 },

    /// The server answered something the protocol does not allow. chunkup stops
    /// rather than risk a corrupt upload.
    #[error("the server broke the protocol: {0}")]
    ProtocolViolation(String),

    /// The retry budget ran out without the server's offset advancing.
    #[error("gave up after {attempts} attempts without progress; last problem: {last}")]
    RetriesExhausted { attempts: u32, last: String },

    /// The server answered in another protocol than the one spoken (a tus
    /// server refusing a ranged request with `412` and `Tus-Version`).
    #[error(
        "the server speaks {announced}, not {spoken} (it answered HTTP {status}): use the {announced} protocol, or auto"
    )]
    WrongProtocol {
        spoken: crate::ResolvedProtocol,
        announced: crate::ResolvedProtocol,
        status: u16,
    },

    /// The server, or its setup, withholds something the upload needs (an
    /// S3 part's `ETag` that a bucket's CORS rule does not expose to a
    /// browser). Retrying cannot help; the message says what to configure.
    #[error("the server's setup stops the upload: {0}")]
    ServerSetup(String),

    /// The application's retry decision (`onShouldRetry`) declined a
    /// retry.
    #[error("the application declined to retry after: {last}")]
    RetryDeclined { attempt: u32, last: String },

    /// The endpoint could not be asked which protocol it speaks, and the
    /// upload was not told which one to use.
    #[error("cannot learn which protocol {url} speaks: {reason}")]
    DiscoveryFailed {
        url: String,
        /// The HTTP status of the last answer, when there was one.
        status: Option<u16>,
        reason: String,
    },

    /// The overall deadline passed before the upload completed.
    #[error("the upload did not complete within its deadline of {}s", .after.as_secs())]
    DeadlineExceeded { after: Duration },
}

/// `text` in double quotes, with `"`, `\` and control characters escaped
/// as `{:?}` would (the quote stays on one line). Messages quote with this,
/// not `{:?}`: the npm package is built with `-Zfmt-debug=none`, which
/// makes every `{:?}` print nothing.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_ascii_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// What kind of transport failure a driver saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// The connection could not be established (refused, unreachable).
    Connect,
    /// The name did not resolve.
    Dns,
    /// TLS failed (handshake, certificate).
    Tls,
    /// The connection broke while sending or receiving (reset, closed early).
    Reset,
    /// The driver's own timeout fired.
    Timeout,
    /// The platform refused to send the request or hid its answer: in a
    /// browser, a cross-origin request the server's CORS does not allow
    /// (a preflight refused, a header not allowed) looks like this.
    Blocked,
    /// The body source failed to produce bytes (the driver reports source
    /// errors like missing files itself; this is a mid-request read failure).
    Body,
    /// Anything else.
    Other,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Connect => "connection failed",
            TransportErrorKind::Dns => "name resolution failed",
            TransportErrorKind::Tls => "TLS failed",
            TransportErrorKind::Reset => "connection broken",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Blocked => {
                "the browser blocked a cross-origin request (check the server's CORS: allowed methods, allowed and exposed headers)"
            }
            TransportErrorKind::Body => "reading the source failed",
            TransportErrorKind::Other => "transport error",
        })
    }
}

/// A request that failed below HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// The class of failure; decides nothing by itself today, but is reported.
    pub kind: TransportErrorKind,
    /// The driver's message.
    pub message: String,
}

impl TransportError {
    /// A transport error of `kind` with a message.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.message)
        }
    }
}

impl Error {
    /// A stable name of the error's kind, for bindings (`UploadError.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } => "InvalidUrl",
            Error::InvalidConfig(_) => "InvalidConfig",
            Error::Rejected { .. } => "Rejected",
            Error::UploadGone { .. } => "UploadGone",
            Error::ProtocolViolation(_) => "ProtocolViolation",
            Error::RetriesExhausted { .. } => "RetriesExhausted",
            Error::WrongProtocol { .. } => "WrongProtocol",
            Error::ServerSetup(_) => "ServerSetup",
            Error::RetryDeclined { .. } => "RetryDeclined",
            Error::DiscoveryFailed { .. } => "DiscoveryFailed",
            Error::DeadlineExceeded { .. } => "DeadlineExceeded",
        }
    }

    /// The HTTP status the failure came with, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Rejected { status, .. }
            | Error::UploadGone { status }
            | Error::WrongProtocol { status, .. } => Some(*status),
            Error::DiscoveryFailed { status, .. } => *status,
            _ => None,
        }
    }

    /// Whether trying the same upload again later may succeed: the link or
    /// the server failed for longer than the retry budget or deadline, or
    /// the server was busy. A refusal, a broken protocol or a bad
    /// configuration is not cured by waiting.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RetriesExhausted { .. } | Error::DeadlineExceeded { .. } => true,
            Error::Rejected { status, .. } => matches!(status, 408 | 425 | 429),
            Error::DiscoveryFailed { status, .. } => {
                status.is_none_or(|s| matches!(s, 408 | 425 | 429 | 500..=599))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quoting reads as `{:?}` did (the npm build cannot use `{:?}`).
    #[test]
    fn quoted_values_read_as_debug_quoting_did() {
        for text in [
            "not a url",
            "",
            "say \"hi\"",
            "back\\slash",
            "two\nlines\r\tand\0\u{1}\u{7f}",
            "é ü → 日本",
        ] {
            assert_eq!(Quoted(text).to_string(), format!("{text:?}"));
        }
        let error = Error::InvalidUrl {
            url: "not a url".into(),
            reason: "no scheme".into(),
        };
        assert_eq!(error.to_string(), "invalid URL \"not a url\": no scheme");
    }
}
