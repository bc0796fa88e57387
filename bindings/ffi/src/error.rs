//! The public error, mapped on purpose from the client's (a new internal
//! failure becomes `Internal`, never a new shape in Kotlin or Swift).
//!
//! A *flat* error: each variant is a stable kind, and its message is the
//! readable text (UniFFI would otherwise render fields as `field=value`).
//! Kotlin sees `UploadException.Rejected` with `.message`, Swift
//! `UploadError.Rejected(message:)`, Python `UploadError.Rejected` whose
//! `str()` is the message.

/// Why an upload did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum UploadError {
    /// A URL given or returned by the server is unusable.
    #[error("{0}")]
    InvalidUrl(String),
    /// The options cannot work.
    #[error("{0}")]
    InvalidConfig(String),
    /// The server refused the upload with a status retrying cannot fix.
    #[error("{0}")]
    Rejected(String),
    /// The upload no longer exists on the server.
    #[error("{0}")]
    UploadGone(String),
    /// The server broke the protocol; chunkup stopped rather than risk a
    /// corrupt upload.
    #[error("{0}")]
    ProtocolViolation(String),
    /// The retry budget ran out without the server's offset advancing.
    #[error("{0}")]
    RetriesExhausted(String),
    /// The server speaks another protocol than the one asked for (use it,
    /// or `Auto`).
    #[error("{0}")]
    WrongProtocol(String),
    /// The endpoint could not be asked which protocol it speaks.
    #[error("{0}")]
    DiscoveryFailed(String),
    /// The overall deadline passed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The file could not be read.
    #[error("{0}")]
    Source(String),
    /// The file changed while it was being uploaded.
    #[error("{0}")]
    SourceChanged(String),
    /// The resume store failed.
    #[error("{0}")]
    Store(String),
    /// The HTTP client could not be set up.
    #[error("{0}")]
    Http(String),
    /// The upload was stopped (`stop()`): it is kept on the server and in
    /// the store, and a later upload of the same file continues it.
    #[error("{0}")]
    Stopped(String),
    /// The upload was terminated (`terminate()`): removed from the server
    /// where the protocol allows, and from the store.
    #[error("{0}")]
    Terminated(String),
    /// `start()` was called on an upload that already started.
    #[error("{0}")]
    AlreadyStarted(String),
    /// Anything else (a failure this version does not know by name).
    #[error("{0}")]
    Internal(String),
}

impl From<chunkup::Error> for UploadError {
    fn from(error: chunkup::Error) -> Self {
        use chunkup::core::Error as Core;
        let message = error.to_string();
        match error {
            chunkup::Error::Upload(core) => match core {
                Core::InvalidUrl { .. } => UploadError::InvalidUrl(message),
                Core::InvalidConfig(_) => UploadError::InvalidConfig(message),
                Core::Rejected { .. } => UploadError::Rejected(message),
                Core::UploadGone { .. } => UploadError::UploadGone(message),
                Core::ProtocolViolation(_) => UploadError::ProtocolViolation(message),
                Core::RetriesExhausted { .. } => UploadError::RetriesExhausted(message),
                Core::WrongProtocol { .. } => UploadError::WrongProtocol(message),
                Core::DiscoveryFailed { .. } => UploadError::DiscoveryFailed(message),
                Core::DeadlineExceeded { .. } => UploadError::DeadlineExceeded(message),
                _ => UploadError::Internal(message),
            },
            chunkup::Error::Source { .. } => UploadError::Source(message),
            chunkup::Error::SourceChanged { .. } => UploadError::SourceChanged(message),
            chunkup::Error::Store { .. } => UploadError::Store(message),
            chunkup::Error::Stopped => UploadError::Stopped(message),
            chunkup::Error::Terminated => UploadError::Terminated(message),
            chunkup::Error::Http(_) => UploadError::Http(message),
            _ => UploadError::Internal(message),
        }
    }
}

/// An error a foreign [`crate::ResumeStore`] throws.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum StoreError {
    /// The store could not do what was asked.
    #[error("{detail}")]
    Failed { detail: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for StoreError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        StoreError::Failed {
            detail: error.reason,
        }
    }
}

/// A failure below HTTP that a foreign [`crate::Transport`] reports; the
/// engine decides what it means (a break: ask the server, then continue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TransportError {
    /// The connection could not be established.
    #[error("{detail}")]
    Connect { detail: String },
    /// The name did not resolve.
    #[error("{detail}")]
    Dns { detail: String },
    /// TLS failed.
    #[error("{detail}")]
    Tls { detail: String },
    /// The connection broke while sending or receiving.
    #[error("{detail}")]
    Reset { detail: String },
    /// The transport's own timeout fired.
    #[error("{detail}")]
    Timeout { detail: String },
    /// Anything else.
    #[error("{detail}")]
    Other { detail: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TransportError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TransportError::Other {
            detail: error.reason,
        }
    }
}

impl From<TransportError> for chunkup::core::TransportError {
    fn from(error: TransportError) -> Self {
        use chunkup::core::TransportErrorKind as Kind;
        let (kind, detail) = match error {
            TransportError::Connect { detail } => (Kind::Connect, detail),
            TransportError::Dns { detail } => (Kind::Dns, detail),
            TransportError::Tls { detail } => (Kind::Tls, detail),
            TransportError::Reset { detail } => (Kind::Reset, detail),
            TransportError::Timeout { detail } => (Kind::Timeout, detail),
            TransportError::Other { detail } => (Kind::Other, detail),
        };
        chunkup::core::TransportError::new(kind, detail)
    }
}
