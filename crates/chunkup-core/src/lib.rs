//! # chunkup-core — the sans-IO resumable-upload engine
//!
//! Everything chunkup *decides* lives here: which request to send next, how big
//! the next chunk is, what each status code means, when to retry and how long
//! to wait, where to resume after a break. Nothing here performs IO or reads a
//! clock: time comes in as an argument ([`Instant`]), responses come in as
//! [`Input`]s, and requests go out as [`RequestSpec`]s that name a *byte range*
//! of the source rather than carrying bytes.
//!
//! A driver (the `chunkup` crate on native and in the browser, the FFI
//! bindings on mobile) runs this loop:
//!
//! ```text
//! loop {
//!     match upload.poll_output(now()) {
//!         Output::Send(req)   => start the request, feed its outcome back as Input
//!         Output::Abort(id)   => drop that request (stalled, paused or cancelled)
//!         Output::Event(ev)   => report it (progress, created, completed, ...)
//!         Output::Wait(until) => wait for an input, or until `until`
//!         Output::Done        => stop
//!     }
//! }
//! ```
//!
//! The same engine is tested with a simulated clock against a scripted
//! server, so every status code path and fault sequence is deterministic.

mod checksum;
pub mod concat;
mod error;
/// Check functions for the fuzz targets and their regression replay (test
/// scaffolding: compiled only with the `fuzzing` feature).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod progress;
pub mod protocol;
mod resume;
mod retry;
pub mod session;
mod sizing;
mod time;
mod upload;

pub use checksum::{ChecksumAlgorithm, ChunkHasher};
pub use error::{Error, TransportError, TransportErrorKind};
pub use http::{
    ByteRange, Method, RequestId, RequestKind, RequestSpec, Response, S3Action, SignRequest,
};
pub use progress::Progress;
pub use protocol::{Capabilities, Concat, IetfVersion, Protocol, ResolvedProtocol};
pub use resume::{ResumeRecord, fingerprint, part_fingerprint};
pub use retry::{RetryPolicy, RetryReason};
pub use session::{Outcome, Session, SessionConfig, SessionInput, SessionOutput, SourceInfo};
pub use sizing::{ChunkConstraints, ChunkSizer, ChunkSizing, SizingError};
pub use time::Instant;
pub use upload::{Event, Input, Output, Upload, UploadConfig, UploadSettings};

/// Response bodies are only read up to this many bytes: a status body or an
/// error message is small, a page of an S3 part listing (1,000 parts) about
/// 200 KB, and a hostile server must not make a driver buffer an endless
/// body.
pub const MAX_RESPONSE_BODY: usize = 256 * 1024;
