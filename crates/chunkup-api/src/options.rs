//! The options of one upload, with their defaults.
//!
//! Every field is plain data with a default, so each language can leave out
//! what it does not change (`UploadOptions()` in Kotlin, Swift and Python,
//! `{}` in TypeScript, `..Default::default()` in Rust). Sizes are bytes and
//! durations milliseconds everywhere, so the numbers read the same in every
//! language. Where a field is optional, `None` (null) means "chunkup
//! decides" and the docs say what that is.

use std::time::Duration;

use chunkup_core::{ChunkSizing, IetfVersion, RetryPolicy, UploadSettings};

/// The upload protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(rename_all = "lowercase")
)]
pub enum Protocol {
    /// Ask the endpoint (`OPTIONS`) and speak tus, the IETF draft or the
    /// ranged protocol, as it answers.
    #[default]
    Auto,
    /// `Content-Range` chunks with `X-Last-Known-Byte`.
    Ranged,
    /// tus 1.0.0.
    Tus,
    /// The IETF Resumable Uploads for HTTP draft.
    Ietf,
    /// Google-style resumable sessions (GCS, YouTube, Drive, Mux).
    Gcs,
    /// S3 multipart uploads through presigned URLs.
    S3,
}

impl From<Protocol> for chunkup_core::Protocol {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Auto => chunkup_core::Protocol::Auto,
            Protocol::Ranged => chunkup_core::Protocol::Ranged,
            Protocol::Tus => chunkup_core::Protocol::Tus,
            Protocol::Ietf => chunkup_core::Protocol::Ietf,
            Protocol::Gcs => chunkup_core::Protocol::Gcs,
            Protocol::S3 => chunkup_core::Protocol::S3,
        }
    }
}

impl From<chunkup_core::ResolvedProtocol> for Protocol {
    fn from(protocol: chunkup_core::ResolvedProtocol) -> Self {
        chunkup_core::Protocol::from(protocol).into()
    }
}

impl From<chunkup_core::Protocol> for Protocol {
    fn from(protocol: chunkup_core::Protocol) -> Self {
        match protocol {
            chunkup_core::Protocol::Ranged => Protocol::Ranged,
            chunkup_core::Protocol::Tus => Protocol::Tus,
            chunkup_core::Protocol::Ietf => Protocol::Ietf,
            chunkup_core::Protocol::Gcs => Protocol::Gcs,
            chunkup_core::Protocol::S3 => Protocol::S3,
            _ => Protocol::Auto,
        }
    }
}

/// A header or metadata entry (order is kept; a name may repeat).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    /// A pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Options for one upload. Defaults are the same on every surface.
///
/// In TypeScript every field is optional, headers and metadata are objects
/// of strings, and two names follow tus-js-client (`retries`,
/// `retryDelays`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(rename_all = "camelCase", optional_fields)
)]
pub struct UploadOptions {
    /// The protocol (default: ask the endpoint).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub protocol: Option<Protocol>,
    /// The IETF draft's interop version, 6 (draft -05, tusd) or 8 (draft
    /// -11, the default), when the protocol is IETF.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub ietf_version: Option<u8>,
    /// Every chunk this many bytes (a server limit or a 413 may lower it);
    /// default: adaptive, from the measured throughput, round trip and
    /// break rate.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    #[cfg_attr(feature = "typescript", ts(type = "'auto' | number", optional))]
    pub chunk_size: Option<u64>,
    /// Headers sent with every request (credentials only to the origin the
    /// upload started on).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    #[cfg_attr(
        feature = "typescript",
        ts(as = "Option<std::collections::HashMap<String, String>>")
    )]
    pub headers: Vec<KeyValue>,
    /// Metadata for the server (tus `Upload-Metadata`).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    #[cfg_attr(
        feature = "typescript",
        ts(as = "Option<std::collections::HashMap<String, String>>")
    )]
    pub metadata: Vec<KeyValue>,
    /// The content type announced (default: the file's, else
    /// `application/octet-stream`).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub content_type: Option<String>,
    /// The file name announced (default: the file's).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub file_name: Option<String>,
    /// The application's own identity for the content (a content hash, a
    /// database id): with it, content without a stable name (a stream, a
    /// `Blob`) can be resumed too.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub fingerprint: Option<String>,
    /// An upload the application knows, to continue (a remembered upload's
    /// URL, a Google-style session URI, an S3 multipart upload's URL).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub upload_url: Option<String>,
    /// Remember the upload in the resume store and continue a remembered
    /// one of the same content (default true).
    #[cfg_attr(feature = "uniffi", uniffi(default = true))]
    #[cfg_attr(feature = "typescript", ts(as = "Option<_>"))]
    pub resume: bool,
    /// Connections one file may use: a big file goes as parallel parts
    /// where the protocol allows (tus concatenation, S3 windows).
    #[cfg_attr(feature = "uniffi", uniffi(default = 1))]
    #[cfg_attr(feature = "typescript", ts(as = "Option<_>"))]
    pub parallel: u32,
    /// Send chunk checksums where the server supports them (tus checksum).
    #[cfg_attr(feature = "uniffi", uniffi(default = false))]
    #[cfg_attr(feature = "typescript", ts(skip))]
    pub checksum: bool,
    /// Send a small file's bytes in its creation request where the
    /// protocol allows (default true).
    #[cfg_attr(feature = "uniffi", uniffi(default = true))]
    #[cfg_attr(feature = "typescript", ts(skip))]
    pub creation_with_upload: bool,
    /// Failed attempts in a row, without the server's offset advancing,
    /// before the upload gives up.
    #[cfg_attr(feature = "uniffi", uniffi(default = 10))]
    #[cfg_attr(feature = "typescript", ts(as = "Option<_>", rename = "retries"))]
    pub max_attempts: u32,
    /// Explicit waits before the 1st, 2nd, … retry in a row, in
    /// milliseconds (the last repeats); default: a jittered exponential
    /// ladder from 200 ms to 30 s. A server's `Retry-After` always wins.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    #[cfg_attr(feature = "typescript", ts(as = "Option<_>", rename = "retryDelays"))]
    pub retry_delays_ms: Vec<u64>,
    /// Milliseconds without progress on a request that count as a broken
    /// connection.
    #[cfg_attr(feature = "uniffi", uniffi(default = 30000))]
    #[cfg_attr(feature = "typescript", ts(as = "Option<_>"))]
    pub stall_timeout_ms: u64,
    /// Give up when the whole upload takes longer (default: no deadline).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub deadline_ms: Option<u64>,
    /// Minimum milliseconds between two progress events.
    #[cfg_attr(feature = "uniffi", uniffi(default = 100))]
    #[cfg_attr(feature = "typescript", ts(as = "Option<_>"))]
    pub progress_interval_ms: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            protocol: None,
            ietf_version: None,
            chunk_size: None,
            headers: Vec::new(),
            metadata: Vec::new(),
            content_type: None,
            file_name: None,
            fingerprint: None,
            upload_url: None,
            resume: true,
            parallel: 1,
            checksum: false,
            creation_with_upload: true,
            max_attempts: 10,
            retry_delays_ms: Vec::new(),
            stall_timeout_ms: 30_000,
            deadline_ms: None,
            progress_interval_ms: 100,
        }
    }
}

impl UploadOptions {
    /// The protocol asked for.
    pub fn protocol(&self) -> chunkup_core::Protocol {
        self.protocol.unwrap_or_default().into()
    }

    /// The engine's settings for these options, for a source announced as
    /// `file_name` with `content_type` (the options' own win). `seed` is the
    /// backoff jitter's (random per upload in drivers).
    pub fn settings(
        &self,
        file_name: &str,
        content_type: Option<&str>,
        seed: u64,
    ) -> UploadSettings {
        UploadSettings {
            file_name: self
                .file_name
                .clone()
                .unwrap_or_else(|| file_name.to_string()),
            content_type: self
                .content_type
                .clone()
                .or_else(|| content_type.map(str::to_string))
                .unwrap_or_else(|| "application/octet-stream".to_string()),
            headers: pairs(&self.headers),
            metadata: pairs(&self.metadata),
            chunking: match self.chunk_size {
                Some(bytes) => ChunkSizing::Fixed(bytes.max(1)),
                None => ChunkSizing::default(),
            },
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                stall_timeout: Duration::from_millis(self.stall_timeout_ms.max(1)),
                deadline: self.deadline_ms.map(Duration::from_millis),
                delays: self
                    .retry_delays_ms
                    .iter()
                    .copied()
                    .map(Duration::from_millis)
                    .collect(),
                ..RetryPolicy::default()
            },
            progress_interval: Duration::from_millis(self.progress_interval_ms),
            ietf_version: match self.ietf_version {
                Some(6) => IetfVersion::Interop6,
                _ => IetfVersion::Interop8,
            },
            checksum: self.checksum,
            creation_with_upload: self.creation_with_upload,
            seed,
            ..UploadSettings::default()
        }
    }
}

/// Pairs as the engine takes them.
pub(crate) fn pairs(list: &[KeyValue]) -> Vec<(String, String)> {
    list.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_engines() {
        let options = UploadOptions::default();
        let settings = options.settings("a.mp4", Some("video/mp4"), 1);
        let engine = UploadSettings::default();
        assert_eq!(options.protocol(), chunkup_core::Protocol::Auto);
        assert_eq!(settings.retry, engine.retry);
        assert_eq!(settings.chunking, engine.chunking);
        assert_eq!(settings.progress_interval, engine.progress_interval);
        assert_eq!(settings.ietf_version, engine.ietf_version);
        assert_eq!(settings.checksum, engine.checksum);
        assert_eq!(settings.creation_with_upload, engine.creation_with_upload);
        assert_eq!(settings.content_type, "video/mp4");
        assert_eq!(settings.file_name, "a.mp4");
    }

    #[test]
    fn options_win_over_the_source() {
        let options = UploadOptions {
            content_type: Some("text/plain".into()),
            file_name: Some("b.txt".into()),
            chunk_size: Some(0),
            retry_delays_ms: vec![0, 1000],
            ietf_version: Some(6),
            ..UploadOptions::default()
        };
        let settings = options.settings("a.mp4", Some("video/mp4"), 1);
        assert_eq!(settings.content_type, "text/plain");
        assert_eq!(settings.file_name, "b.txt");
        assert_eq!(settings.chunking, ChunkSizing::Fixed(1));
        assert_eq!(
            settings.retry.delays,
            vec![Duration::ZERO, Duration::from_secs(1)]
        );
        assert_eq!(settings.ietf_version, IetfVersion::Interop6);
    }
}
