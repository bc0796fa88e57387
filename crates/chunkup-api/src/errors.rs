//! Why an upload did not complete: one error with a stable kind, a readable
//! reason, the HTTP status when there was one, and whether trying the same
//! upload again later may succeed.

use std::fmt;

/// Declares the kinds once: the [`ErrorKind`] enum and the [`UploadError`]
/// variants (one per kind, the same fields each), so a kind cannot be in
/// one and missing from the other.
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $kind:ident,)*) => {
        /// The kind of an [`UploadError`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
        #[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)*
        }

        /// Why an upload did not complete. Kotlin and Swift see one case
        /// per kind (a sealed exception class, an enum case), TypeScript
        /// `{kind, message, status?, retryable}` (an `Error`'s `message`).
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Error))]
        #[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(tag = "kind"))]
        pub enum UploadError {
            $(
                $(#[$doc])*
                $kind {
                    /// What happened, for people.
                    #[cfg_attr(feature = "typescript", ts(rename = "message"))]
                    reason: String,
                    /// The HTTP status it came with, if any.
                    #[cfg_attr(feature = "typescript", ts(optional))]
                    status: Option<u16>,
                    /// Whether trying the same upload again later may
                    /// succeed (the link or the server failed for a while;
                    /// a refusal or a bad configuration will not).
                    retryable: bool,
                },
            )*
        }

        impl UploadError {
            /// An error of `kind`.
            pub fn new(kind: ErrorKind, reason: impl Into<String>, status: Option<u16>, retryable: bool) -> Self {
                let reason = reason.into();
                match kind {
                    $(ErrorKind::$kind => UploadError::$kind { reason, status, retryable },)*
                }
            }

            /// Its kind.
            pub fn kind(&self) -> ErrorKind {
                match self {
                    $(UploadError::$kind { .. } => ErrorKind::$kind,)*
                }
            }

            /// What happened, for people.
            pub fn reason(&self) -> &str {
                match self {
                    $(UploadError::$kind { reason, .. } => reason,)*
                }
            }

            /// The HTTP status it came with, if any.
            pub fn status(&self) -> Option<u16> {
                match self {
                    $(UploadError::$kind { status, .. } => *status,)*
                }
            }

            /// Whether trying again later may succeed.
            pub fn retryable(&self) -> bool {
                match self {
                    $(UploadError::$kind { retryable, .. } => *retryable,)*
                }
            }
        }

        impl ErrorKind {
            /// The kind's name, as TypeScript and logs show it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => stringify!($kind),)*
                }
            }

            /// Every kind.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind,)*];
        }
    };
}

error_kinds! {
    /// A URL given, or one the server sent, is unusable.
    InvalidUrl,
    /// The options cannot work.
    InvalidConfig,
    /// The server refused the upload with a status retrying cannot fix.
    Rejected,
    /// The upload no longer exists on the server and none could be created.
    UploadGone,
    /// The server broke the protocol; chunkup stopped rather than risk a
    /// corrupt upload.
    ProtocolViolation,
    /// The retry budget ran out without the server's offset advancing.
    RetriesExhausted,
    /// The overall deadline passed.
    DeadlineExceeded,
    /// The server speaks another protocol than the one asked for.
    WrongProtocol,
    /// The endpoint could not be asked which protocol it speaks.
    DiscoveryFailed,
    /// The server's setup withholds what the upload needs (an S3 ETag a
    /// CORS rule does not expose).
    ServerSetup,
    /// The application's retry decision declined a retry.
    RetryDeclined,
    /// The source could not be read.
    Source,
    /// The source changed while it was being uploaded.
    SourceChanged,
    /// The resume store failed.
    Store,
    /// The upload was stopped (it can be continued later).
    Stopped,
    /// The upload was terminated (removed where the protocol allows).
    Terminated,
    /// The platform lacks something chunkup needs.
    Environment,
    /// The HTTP client could not be set up.
    Http,
    /// Anything else.
    Internal,
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for UploadError {}

impl From<&chunkup_core::Error> for UploadError {
    fn from(error: &chunkup_core::Error) -> Self {
        use chunkup_core::Error as Core;
        let kind = match error {
            Core::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            Core::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Core::Rejected { .. } => ErrorKind::Rejected,
            Core::UploadGone { .. } => ErrorKind::UploadGone,
            Core::ProtocolViolation(_) => ErrorKind::ProtocolViolation,
            Core::RetriesExhausted { .. } => ErrorKind::RetriesExhausted,
            Core::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
            Core::WrongProtocol { .. } => ErrorKind::WrongProtocol,
            Core::DiscoveryFailed { .. } => ErrorKind::DiscoveryFailed,
            Core::ServerSetup(_) => ErrorKind::ServerSetup,
            Core::RetryDeclined { .. } => ErrorKind::RetryDeclined,
            _ => ErrorKind::Internal,
        };
        UploadError::new(
            kind,
            error.to_string(),
            error.status(),
            error.is_retryable(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_keep_kind_status_and_retryability() {
        let refused = chunkup_core::Error::Rejected {
            status: 403,
            message: "no".into(),
        };
        let error = UploadError::from(&refused);
        assert_eq!(error.kind(), ErrorKind::Rejected);
        assert_eq!(error.status(), Some(403));
        assert!(!error.retryable());
        assert_eq!(error.reason(), refused.to_string());
        let exhausted = chunkup_core::Error::RetriesExhausted {
            attempts: 3,
            last: "HTTP 503".into(),
        };
        assert!(UploadError::from(&exhausted).retryable());
        assert_eq!(ErrorKind::ALL.len(), 19);
        assert_eq!(ErrorKind::ServerSetup.as_str(), "ServerSetup");
    }
}
