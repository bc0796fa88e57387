//! Errors crossing the FFI. An upload fails with the api's
//! [`chunkup_api::UploadError`] (kind, reason, HTTP status, retryable),
//! exported as it is declared; the errors here are the ones the app's own
//! code throws back (a store, a transport, a hook).

use chunkup_api::{ErrorKind, UploadError};

/// An upload's failure as every binding shows it.
pub(crate) fn upload_error(error: &chunkup::Error) -> UploadError {
    UploadError::from(error)
}

/// A failure of the bindings themselves (no runtime, a second `start()`).
pub(crate) fn internal(kind: ErrorKind, reason: impl Into<String>) -> UploadError {
    UploadError::new(kind, reason, None, false)
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

/// An error the app's hooks (header provider, signer) throw: the request
/// it was asked for fails as a broken connection would, and the engine
/// retries it under the upload's retry budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum HookError {
    /// The hook could not do what was asked (a token service is down).
    #[error("{detail}")]
    Failed { detail: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HookError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        HookError::Failed {
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
