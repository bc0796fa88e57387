//! # chunkup — resumable uploads that survive broken links
//!
//! The async client over the sans-IO engine in [`chunkup_core`]. It performs
//! the requests the engine asks for, streams byte ranges from the source
//! (memory stays bounded whatever the file size), and remembers uploads in a
//! resume store so that running the same upload again — after a crash, a
//! `kill -9`, a reboot — continues from the server's offset.
//!
//! ```no_run
//! # async fn example() -> Result<(), chunkup::Error> {
//! use chunkup::{Client, FileResumeStore, UploadEvent, UploadOptions};
//!
//! let client = Client::new()?.with_resume_store(FileResumeStore::default_location()?);
//! let report = client
//!     .upload_file("video.mp4".as_ref(), "http://127.0.0.1:8080/tus", UploadOptions::default(), |event| {
//!         if let UploadEvent::Progress { progress } = event {
//!             println!("{} of {} bytes, {:.0} B/s", progress.acknowledged, progress.total, progress.bytes_per_second);
//!         }
//!     })
//!     .await?;
//! println!("stored at {:?}", report.upload_url);
//! # Ok(())
//! # }
//! ```
//!
//! Options, events, errors and remembered uploads are the types every
//! binding shares ([`chunkup_api`], declared once): [`UploadOptions`],
//! [`UploadEvent`], [`UploadError`] (`From<&Error>`), [`RememberedUpload`].
//! What is code rather than data — a header provider, a retry decision, an
//! S3 signer — goes in [`Hooks`]; [`Client::upload`] puts them together.
//!
//! Seams a user can replace: [`Transport`] (how requests are sent),
//! [`Source`] (where bytes come from: a file, any source, or a
//! [`StreamSource`] of unknown length) and [`ResumeStore`] (where resume
//! state is kept).
//!
//! With the `web` feature on `wasm32`, [`web`] drives the same engine in a
//! browser, a worker or Node (XMLHttpRequest or fetch, `Blob` slices,
//! `localStorage` / IndexedDB).

pub mod batch;
mod error;
mod store;

#[cfg(feature = "native")]
mod client;
#[cfg(feature = "native")]
mod driver;
#[cfg(feature = "native")]
mod hooks;
#[cfg(feature = "sigv4")]
mod sigv4;
#[cfg(feature = "native")]
mod source;
#[cfg(feature = "native")]
mod stream;
#[cfg(feature = "native")]
mod transport;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;

pub use chunkup_api::{
    self as api, ErrorKind, KeyValue, Progress, Protocol, RememberedUpload, UploadError,
    UploadEvent, UploadOptions,
};
pub use chunkup_core::{
    self as core, ChunkSizing, ResolvedProtocol, ResumeRecord, RetryPolicy, RetryReason, S3Action,
    SourceInfo, UploadSettings,
};
pub use error::Error;
pub use store::{FileResumeStore, MemoryResumeStore, ResumeStore};

#[cfg(feature = "native")]
pub use client::{Client, UploadControl, UploadReport, UploadRequest};
#[cfg(feature = "native")]
pub use hooks::{
    HeaderProvider, HookError, HookFuture, Hooks, RequestInfo, RetryDecision, RetryQuestion,
    SignInput, Signed, Signer,
};
#[cfg(feature = "sigv4")]
pub use sigv4::SigV4Signer;
#[cfg(feature = "native")]
pub use source::{BodyStream, FileSource, Source};
#[cfg(feature = "native")]
pub use stream::StreamSource;
#[cfg(feature = "native")]
pub use transport::{ReqwestTransport, Transport};
