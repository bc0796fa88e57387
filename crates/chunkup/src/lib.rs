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
//! use chunkup::{Client, FileResumeStore, UploadOptions};
//!
//! let client = Client::new()?.with_resume_store(FileResumeStore::default_location()?);
//! let report = client
//!     .upload_file("video.mp4".as_ref(), "http://127.0.0.1:8080/ranged", UploadOptions::default(), |event| {
//!         println!("{event:?}");
//!     })
//!     .await?;
//! println!("stored at {:?}", report.upload_url);
//! # Ok(())
//! # }
//! ```
//!
//! Seams a user can replace: [`Transport`] (how requests are sent),
//! [`Source`] (where bytes come from) and [`ResumeStore`] (where resume state
//! is kept).
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
mod source;
#[cfg(feature = "native")]
mod transport;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;

pub use chunkup_core::{
    self as core, ChunkSizing, Event, Progress, Protocol, ResolvedProtocol, ResumeRecord,
    RetryPolicy, RetryReason, SourceInfo,
};
pub use error::Error;
pub use store::{FileResumeStore, MemoryResumeStore, ResumeStore};

#[cfg(feature = "native")]
pub use client::{Client, UploadControl, UploadOptions, UploadReport};
#[cfg(feature = "native")]
pub use source::{BodyStream, FileSource, Source};
#[cfg(feature = "native")]
pub use transport::{ReqwestTransport, Transport};
