use std::path::PathBuf;

use chunkup_api::{ErrorKind, UploadError};

/// Why an upload did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine gave up: the server refused, broke the protocol, or the
    /// retry budget or deadline ran out.
    #[error(transparent)]
    Upload(#[from] chunkup_core::Error),

    /// The source could not be opened or read.
    #[error("cannot read {}: {source}", .path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The source changed size while it was being uploaded; continuing would
    /// store a file that never existed.
    #[error("{} changed while it was being uploaded (expected {expected} bytes)", .path.display())]
    SourceChanged { path: PathBuf, expected: u64 },

    /// The server needs bytes of a stream again that were already let go:
    /// a stream is read once, and only the bytes the server has not
    /// acknowledged are kept (see [`crate::StreamSource`]). A server that
    /// loses bytes it acknowledged cannot be repaired from a stream.
    #[error(
        "the server needs the stream's bytes from {needed} again, but only bytes from {kept_from} on are kept (the server lost bytes it had acknowledged; a stream cannot be read twice)"
    )]
    StreamRewound { needed: u64, kept_from: u64 },

    /// The resume store could not be used.
    #[error("the resume store at {} failed: {source}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The upload was stopped ([`crate::UploadControl::stop`]); it is kept
    /// on the server and in the resume store, and can be continued.
    #[error("the upload was stopped; it can be continued later")]
    Stopped,

    /// The upload was terminated ([`crate::UploadControl::terminate`]) and
    /// removed from the server where the protocol allows.
    #[error("the upload was terminated")]
    Terminated,

    /// The platform lacks something chunkup needs (a browser without
    /// XMLHttpRequest or fetch).
    #[error("this platform cannot run the upload: {0}")]
    Environment(String),

    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
}

/// The error every binding shows: a stable kind, the reason, the HTTP status
/// and whether trying again later may help.
impl From<&Error> for UploadError {
    fn from(error: &Error) -> Self {
        let kind = match error {
            Error::Upload(engine) => return UploadError::from(engine),
            Error::Source { .. } | Error::StreamRewound { .. } => ErrorKind::Source,
            Error::SourceChanged { .. } => ErrorKind::SourceChanged,
            Error::Store { .. } => ErrorKind::Store,
            Error::Stopped => ErrorKind::Stopped,
            Error::Terminated => ErrorKind::Terminated,
            Error::Environment(_) => ErrorKind::Environment,
            Error::Http(_) => ErrorKind::Http,
        };
        // A store or the HTTP client set up may work on a later try; the
        // rest will not change by itself.
        let retryable = matches!(error, Error::Store { .. } | Error::Http(_));
        UploadError::new(kind, error.to_string(), None, retryable)
    }
}

impl From<Error> for UploadError {
    fn from(error: Error) -> Self {
        UploadError::from(&error)
    }
}

impl Error {
    /// The error as every binding shows it.
    pub fn to_upload_error(&self) -> UploadError {
        UploadError::from(self)
    }

    /// Its stable kind.
    pub fn kind(&self) -> ErrorKind {
        self.to_upload_error().kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_driver_error_has_its_kind() {
        let io = || std::io::Error::other("x");
        let cases = [
            (
                Error::Source {
                    path: "a".into(),
                    source: io(),
                },
                ErrorKind::Source,
                false,
            ),
            (
                Error::StreamRewound {
                    needed: 1,
                    kept_from: 2,
                },
                ErrorKind::Source,
                false,
            ),
            (
                Error::SourceChanged {
                    path: "a".into(),
                    expected: 3,
                },
                ErrorKind::SourceChanged,
                false,
            ),
            (
                Error::Store {
                    path: "s".into(),
                    source: io(),
                },
                ErrorKind::Store,
                true,
            ),
            (Error::Stopped, ErrorKind::Stopped, false),
            (Error::Terminated, ErrorKind::Terminated, false),
            (
                Error::Environment("no fetch".into()),
                ErrorKind::Environment,
                false,
            ),
            (Error::Http("tls".into()), ErrorKind::Http, true),
            (
                Error::Upload(chunkup_core::Error::Rejected {
                    status: 401,
                    message: "no".into(),
                }),
                ErrorKind::Rejected,
                false,
            ),
        ];
        for (error, kind, retryable) in cases {
            let mapped = UploadError::from(&error);
            assert_eq!(mapped.kind(), kind, "{error}");
            assert_eq!(mapped.retryable(), retryable, "{error}");
            assert_eq!(mapped.reason(), error.to_string());
        }
        let refused = UploadError::from(Error::Upload(chunkup_core::Error::Rejected {
            status: 401,
            message: "no".into(),
        }));
        assert_eq!(refused.status(), Some(401));
    }
}
