use std::path::PathBuf;

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
