//! # chunkup-api — the public surface, declared once
//!
//! Every option, event, error and remembered-upload field a user of chunkup
//! sees is declared here, once, with its default and its documentation.
//! Every surface maps these declarations mechanically:
//!
//! - **Rust** (`chunkup`) uses them as they are;
//! - **Kotlin, Swift and Python** get them from UniFFI (feature `uniffi`:
//!   the derives below), defaults included;
//! - **TypeScript** (the npm package): `index.d.ts` and the JS conversions
//!   are still written by hand after these declarations (a generator is
//!   not built yet); the web driver converts through this crate's types.
//!
//! Conversions from the engine's types ([`chunkup_core`]) live here too, so
//! no binding maps an engine type by hand. Options carry only plain data;
//! callbacks (header provider, retry decision, signer) and controls are each
//! surface's own idiom around them.

mod errors;
mod events;
mod options;
mod remembered;

pub use errors::{ErrorKind, UploadError};
pub use events::{Progress, UploadEvent};
pub use options::{KeyValue, Protocol, UploadOptions};
pub use remembered::RememberedUpload;

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("chunkup_api");
