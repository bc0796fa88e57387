//! What happens during an upload, as typed events: offsets, URLs and
//! statuses are fields, never text to parse. TypeScript sees a
//! discriminated union on `type`, Kotlin a sealed class, Swift an enum with
//! payloads, Python a class per event.
//!
//! With the `typescript` feature the types also derive ts-rs's `TS`; the
//! `ts(..)` attributes name fields as the npm package's JavaScript objects
//! carry them (`bindings/wasm` builds those objects from these types).

use crate::errors::{ErrorKind, UploadError};
use crate::options::Protocol;

/// How far an upload is.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(rename_all = "camelCase")
)]
pub struct Progress {
    /// Bytes the server acknowledged (never decreasing).
    #[cfg_attr(feature = "typescript", ts(rename = "bytesAcknowledged"))]
    pub acknowledged: u64,
    /// Acknowledged bytes plus the bytes of the request in flight already
    /// handed to the network (smoother, for byte-level bars).
    #[cfg_attr(feature = "typescript", ts(rename = "bytesSent"))]
    pub sent: u64,
    /// The upload's size (while a stream's end is unknown: what is
    /// acknowledged so far).
    #[cfg_attr(feature = "typescript", ts(rename = "bytesTotal"))]
    pub total: u64,
    /// Recent speed, bytes per second.
    #[cfg_attr(feature = "typescript", ts(rename = "speed"))]
    pub bytes_per_second: f64,
    /// Estimated milliseconds to completion at that speed, when known.
    pub eta_ms: Option<u64>,
}

impl From<&chunkup_core::Progress> for Progress {
    fn from(progress: &chunkup_core::Progress) -> Self {
        Progress {
            acknowledged: progress.acknowledged,
            sent: progress.sent,
            total: progress.total,
            bytes_per_second: progress.bytes_per_second,
            eta_ms: progress
                .eta
                .map(|eta| u64::try_from(eta.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Something that happened to an upload.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(
        tag = "type",
        rename_all = "camelCase",
        rename_all_fields = "camelCase"
    )
)]
pub enum UploadEvent {
    /// The protocol is settled: spoken from now on. `assumed` when no
    /// server answer backs it (named by the user, or guessed).
    Discovered {
        protocol: Protocol,
        assumed: bool,
        /// tus extensions the server listed (or that are assumed).
        extensions: Vec<String>,
        /// The largest upload the server takes, if it said.
        max_size: Option<u64>,
    },
    /// The upload exists on the server at this URL.
    Created {
        #[cfg_attr(feature = "typescript", ts(rename = "url"))]
        upload_url: String,
    },
    /// An earlier upload was found holding this many bytes.
    Resumed { offset: u64 },
    /// The server acknowledged bytes up to this offset.
    #[cfg_attr(feature = "typescript", ts(rename = "chunk"))]
    ChunkAcknowledged { offset: u64 },
    /// Progress (throttled).
    Progress {
        #[cfg_attr(feature = "typescript", ts(flatten))]
        progress: Progress,
    },
    /// A problem; the upload tries again after `delay_ms`.
    Retrying {
        attempt: u32,
        delay_ms: u64,
        /// The reason's kind (`status`, `transport`, `stalled`,
        /// `credentialsRefused`, `signatureExpired`, …).
        #[cfg_attr(feature = "typescript", ts(rename = "reasonKind"))]
        reason: String,
        /// The HTTP status, when the reason was an answer.
        status: Option<u16>,
        /// The reason, for people.
        #[cfg_attr(feature = "typescript", ts(rename = "reason"))]
        message: String,
    },
    /// The server holds fewer bytes than it had acknowledged (a failover
    /// lost its newest bytes); they are sent again.
    #[cfg_attr(feature = "typescript", ts(rename = "rewound"))]
    ServerRewound { from: u64, to: u64 },
    /// The upload is paused.
    Paused,
    /// The server will forget the upload at this time (ms since the epoch).
    Expires {
        #[cfg_attr(feature = "typescript", ts(rename = "at"))]
        at_unix_ms: i64,
    },
    /// The resume store failed; the upload goes on but may not resume later.
    StoreFailed { message: String },
    /// The server holds every byte (`upload_url` is null when the server
    /// completed it at creation without naming it).
    Completed {
        #[cfg_attr(feature = "typescript", ts(rename = "url"))]
        upload_url: Option<String>,
    },
    /// The upload cannot complete (the fields of its [`UploadError`]).
    Failed {
        kind: ErrorKind,
        #[cfg_attr(feature = "typescript", ts(rename = "message"))]
        reason: String,
        status: Option<u16>,
        retryable: bool,
    },
    /// Stopped: the upload is kept and can be continued.
    Stopped,
    /// Terminated: the upload was removed where the protocol allows.
    Terminated,
}

impl UploadEvent {
    /// The event of a failure.
    pub fn failed(error: &UploadError) -> Self {
        UploadEvent::Failed {
            kind: error.kind(),
            reason: error.reason().to_string(),
            status: error.status(),
            retryable: error.retryable(),
        }
    }

    /// The event's name, as TypeScript's `type` field shows it.
    pub fn type_name(&self) -> &'static str {
        match self {
            UploadEvent::Discovered { .. } => "discovered",
            UploadEvent::Created { .. } => "created",
            UploadEvent::Resumed { .. } => "resumed",
            UploadEvent::ChunkAcknowledged { .. } => "chunk",
            UploadEvent::Progress { .. } => "progress",
            UploadEvent::Retrying { .. } => "retrying",
            UploadEvent::ServerRewound { .. } => "rewound",
            UploadEvent::Paused => "paused",
            UploadEvent::Expires { .. } => "expires",
            UploadEvent::StoreFailed { .. } => "storeFailed",
            UploadEvent::Completed { .. } => "completed",
            UploadEvent::Failed { .. } => "failed",
            UploadEvent::Stopped => "stopped",
            UploadEvent::Terminated => "terminated",
        }
    }
}

impl From<&chunkup_core::Event> for UploadEvent {
    fn from(event: &chunkup_core::Event) -> Self {
        use chunkup_core::Event as Core;
        match event {
            Core::Discovered(caps) => UploadEvent::Discovered {
                protocol: caps.protocol.into(),
                assumed: caps.assumed,
                extensions: caps.extensions.clone(),
                max_size: caps.max_size,
            },
            Core::Created { upload_url } => UploadEvent::Created {
                upload_url: upload_url.clone(),
            },
            Core::ResumedAt { offset } => UploadEvent::Resumed { offset: *offset },
            Core::ChunkAcknowledged { offset } => {
                UploadEvent::ChunkAcknowledged { offset: *offset }
            }
            Core::Progress(progress) => UploadEvent::Progress {
                progress: progress.into(),
            },
            Core::Retrying {
                attempt,
                delay,
                reason,
            } => UploadEvent::Retrying {
                attempt: *attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason: reason.kind().to_string(),
                status: reason.status(),
                message: reason.to_string(),
            },
            Core::ServerRewound { from, to } => UploadEvent::ServerRewound {
                from: *from,
                to: *to,
            },
            Core::Paused => UploadEvent::Paused,
            Core::Expires { at_unix_ms } => UploadEvent::Expires {
                at_unix_ms: *at_unix_ms,
            },
            Core::StoreFailed { message } => UploadEvent::StoreFailed {
                message: message.clone(),
            },
            Core::Completed { upload_url } => UploadEvent::Completed {
                upload_url: upload_url.clone(),
            },
            Core::Failed(error) => UploadEvent::failed(&error.into()),
            Core::Stopped => UploadEvent::Stopped,
            Core::Terminated => UploadEvent::Terminated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn engine_events_become_typed_fields() {
        let retrying = chunkup_core::Event::Retrying {
            attempt: 2,
            delay: Duration::from_millis(1500),
            reason: chunkup_core::RetryReason::Status(503),
        };
        match UploadEvent::from(&retrying) {
            UploadEvent::Retrying {
                attempt: 2,
                delay_ms: 1500,
                reason,
                status: Some(503),
                message,
            } => {
                assert_eq!(reason, "status");
                assert!(message.contains("503"));
            }
            other => panic!("{other:?}"),
        }
        let progress = chunkup_core::Event::Progress(chunkup_core::Progress {
            acknowledged: 5,
            sent: 7,
            total: 10,
            bytes_per_second: 2.5,
            eta: Some(Duration::from_secs(2)),
        });
        assert_eq!(
            UploadEvent::from(&progress),
            UploadEvent::Progress {
                progress: Progress {
                    acknowledged: 5,
                    sent: 7,
                    total: 10,
                    bytes_per_second: 2.5,
                    eta_ms: Some(2000),
                }
            }
        );
        assert_eq!(UploadEvent::Stopped.type_name(), "stopped");
    }
}
