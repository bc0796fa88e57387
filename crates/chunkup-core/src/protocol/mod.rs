//! The wire protocols. Each one turns the engine's intent (discover, create,
//! ask for the offset, send bytes `[s, e)`, terminate) into a request, and a
//! response into a protocol-neutral [`Verdict`] the engine acts on.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Quoted;
use crate::retry::RetryReason;
use crate::{ByteRange, ChecksumAlgorithm, Error, Method, Response};

pub(crate) mod discovery;
mod gcs;
pub(crate) mod headers;
mod ietf;
mod ranged;
mod s3;
pub(crate) mod structured;
mod tus;

pub use discovery::{Capabilities, announced};
pub(crate) use gcs::Gcs;
pub(crate) use ietf::Ietf;
pub(crate) use ranged::Ranged;
pub use s3::{PartWindow, UploadedPart};
pub(crate) use s3::{S3, StepAnswer, complete_body, on_complete, on_create as on_s3_create};
pub(crate) use tus::Tus;

/// The upload protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// The ranged protocol (`Content-Range` chunks, `X-Last-Known-Byte`).
    #[default]
    Ranged,
    /// tus 1.0.0 and its extensions.
    Tus,
    /// The IETF Resumable Uploads for HTTP draft (see [`IetfVersion`]).
    Ietf,
    /// Google-style resumable sessions (GCS, YouTube, Drive, Mux direct
    /// uploads): `308 Resume Incomplete` with `Range`. Never discovered:
    /// such endpoints do not describe themselves.
    Gcs,
    /// S3 multipart uploads through presigned URLs (signed by the
    /// application's signer, or with credentials by the native driver).
    /// Never discovered.
    S3,
    /// Ask the endpoint (`OPTIONS`) and pick tus, IETF or ranged.
    Auto,
}

impl Protocol {
    /// The protocol's name as users type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ranged => "ranged",
            Protocol::Tus => "tus",
            Protocol::Ietf => "ietf",
            Protocol::Gcs => "gcs",
            Protocol::S3 => "s3",
            Protocol::Auto => "auto",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "ranged" => Ok(Protocol::Ranged),
            "tus" => Ok(Protocol::Tus),
            "ietf" => Ok(Protocol::Ietf),
            "gcs" => Ok(Protocol::Gcs),
            "s3" => Ok(Protocol::S3),
            "auto" => Ok(Protocol::Auto),
            other => Err(Error::InvalidConfig(format!(
                "unknown protocol {} (known: ranged, tus, ietf, gcs, s3, auto)",
                Quoted(other)
            ))),
        }
    }
}

/// A protocol that is settled: the one spoken on the wire. Unlike
/// [`Protocol`] it has no "ask the server" value, so code that needs a
/// decided protocol (the engine, resume records) cannot be handed a guess
/// that was never made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResolvedProtocol {
    /// The ranged protocol.
    #[default]
    Ranged,
    /// tus 1.0.0.
    Tus,
    /// The IETF Resumable Uploads for HTTP draft.
    Ietf,
    /// Google-style resumable sessions.
    Gcs,
    /// S3 multipart uploads.
    S3,
}

impl ResolvedProtocol {
    /// The protocol's name as users type it.
    pub fn as_str(self) -> &'static str {
        Protocol::from(self).as_str()
    }
}

impl fmt::Display for ResolvedProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ResolvedProtocol> for Protocol {
    fn from(protocol: ResolvedProtocol) -> Self {
        match protocol {
            ResolvedProtocol::Ranged => Protocol::Ranged,
            ResolvedProtocol::Tus => Protocol::Tus,
            ResolvedProtocol::Ietf => Protocol::Ietf,
            ResolvedProtocol::Gcs => Protocol::Gcs,
            ResolvedProtocol::S3 => Protocol::S3,
        }
    }
}

impl Protocol {
    /// The protocol itself when the user named one; `None` for
    /// [`Protocol::Auto`], which discovery resolves.
    pub fn resolved(self) -> Option<ResolvedProtocol> {
        match self {
            Protocol::Ranged => Some(ResolvedProtocol::Ranged),
            Protocol::Tus => Some(ResolvedProtocol::Tus),
            Protocol::Ietf => Some(ResolvedProtocol::Ietf),
            Protocol::Gcs => Some(ResolvedProtocol::Gcs),
            Protocol::S3 => Some(ResolvedProtocol::S3),
            Protocol::Auto => None,
        }
    }
}

/// Which revision of the IETF draft to speak, named by its interop version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum IetfVersion {
    /// draft-ietf-httpbis-resumable-upload-05, interop version 6 (tusd).
    Interop6,
    /// draft-ietf-httpbis-resumable-upload-11, interop version 8.
    #[default]
    Interop8,
}

impl IetfVersion {
    /// The `Upload-Draft-Interop-Version` value.
    pub fn interop(self) -> u8 {
        match self {
            IetfVersion::Interop6 => 6,
            IetfVersion::Interop8 => 8,
        }
    }

    /// The version for an interop number, if chunkup speaks it.
    pub fn from_interop(value: u64) -> Option<Self> {
        match value {
            6 => Some(IetfVersion::Interop6),
            8 => Some(IetfVersion::Interop8),
            _ => None,
        }
    }
}

/// The role of an upload in a tus concatenation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Concat {
    /// An ordinary upload.
    #[default]
    None,
    /// One part of a file uploaded in parallel parts.
    Partial,
    /// The final upload joining these part URLs, in order.
    Final(Vec<String>),
}

/// The request a protocol wants, before the engine adds ids, the body and
/// the user's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestParts {
    pub method: Method,
    pub headers: Vec<(String, String)>,
}

/// What a response means, independent of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The upload was created at this location (not yet resolved); with
    /// creation-with-upload the server may already hold `offset` bytes.
    /// Without a location the server took the whole upload in the creation
    /// request and named no URL (IETF; valid only for a request that
    /// completed the upload).
    Created {
        location: Option<String>,
        offset: Option<u64>,
    },
    /// The server holds bytes `[0, n)`.
    ServerHas(u64),
    /// Our offset and the server's disagree: ask for its offset.
    Resync,
    /// Send the same chunk again (e.g. a checksum mismatch).
    ResendChunk(RetryReason),
    /// The server refused the range without saying what it has: go back one
    /// chunk.
    StepBack,
    /// Ask for the offset again at once (a listing continues on a next
    /// page); not a failure.
    AskAgain,
    /// A passing failure: try again after a backoff, at least `retry_after`.
    Retry {
        reason: RetryReason,
        retry_after: Option<Duration>,
    },
    /// The upload does not exist (any more).
    Gone(u16),
    /// The chunk was too large for the server.
    TooLarge,
    /// Stop: the upload cannot succeed.
    Fatal(Error),
}

/// What a protocol needs to know about the upload to build requests.
#[derive(Debug, Clone)]
pub(crate) struct UploadMeta<'a> {
    /// Size, unless still unknown (a stream; tus creation-defer-length).
    pub total: Option<u64>,
    pub file_name: &'a str,
    pub content_type: &'a str,
    /// User metadata (tus `Upload-Metadata`).
    pub metadata: &'a [(String, String)],
    pub concat: &'a Concat,
}

/// The protocol in use, with what it learned about the server.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    Ranged(Ranged),
    Tus(Tus),
    Ietf(Ietf),
    Gcs(Gcs),
    S3(S3),
}

impl Codec {
    /// The codec for a server with `capabilities`.
    pub(crate) fn for_capabilities(
        capabilities: &Capabilities,
        settings: &crate::UploadSettings,
    ) -> Self {
        match capabilities.protocol {
            ResolvedProtocol::Ranged => Codec::Ranged(Ranged {
                chunk_method: settings.chunk_method,
            }),
            ResolvedProtocol::Tus => Codec::Tus(Tus {
                extensions: capabilities.extensions.clone(),
            }),
            ResolvedProtocol::Ietf => Codec::Ietf(Ietf {
                version: capabilities.ietf_version.unwrap_or(settings.ietf_version),
            }),
            ResolvedProtocol::Gcs => Codec::Gcs(Gcs),
            // The engine gives the window (`Upload::new`).
            ResolvedProtocol::S3 => Codec::S3(S3::default()),
        }
    }

    pub(crate) fn protocol(&self) -> ResolvedProtocol {
        match self {
            Codec::Ranged(_) => ResolvedProtocol::Ranged,
            Codec::Tus(_) => ResolvedProtocol::Tus,
            Codec::Ietf(_) => ResolvedProtocol::Ietf,
            Codec::Gcs(_) => ResolvedProtocol::Gcs,
            Codec::S3(_) => ResolvedProtocol::S3,
        }
    }

    /// Whether data may travel in the creation request.
    pub(crate) fn creation_with_upload(&self) -> bool {
        match self {
            Codec::Ranged(_) | Codec::Gcs(_) | Codec::S3(_) => false,
            Codec::Tus(tus) => tus.has("creation-with-upload"),
            Codec::Ietf(_) => true,
        }
    }

    /// Whether the length may be announced after creation.
    pub(crate) fn defers_length(&self) -> bool {
        match self {
            Codec::Ranged(_) | Codec::S3(_) => false,
            Codec::Tus(tus) => tus.has("creation-defer-length"),
            Codec::Ietf(_) | Codec::Gcs(_) => true,
        }
    }

    /// What the protocol requires of chunk sizes, if anything.
    pub(crate) fn chunk_constraints(&self) -> Option<crate::ChunkConstraints> {
        match self {
            Codec::Gcs(_) => Some(crate::ChunkConstraints::RESUMABLE_SESSION),
            Codec::S3(s3) => Some(crate::ChunkConstraints {
                max_parts: Some(u64::from(s3.window.count)),
                ..crate::ChunkConstraints::S3_MULTIPART
            }),
            _ => None,
        }
    }

    /// For S3: the query the request adds to the upload's URL and what its
    /// signer must know. `part_start` is where a part starts in the window.
    pub(crate) fn s3_request(
        &self,
        kind: crate::RequestKind,
        upload_id: &str,
        part_start: Option<u64>,
    ) -> Option<(Option<String>, crate::SignRequest)> {
        use crate::{RequestKind, S3Action};
        let Codec::S3(s3) = self else { return None };
        let (query, action, part_number) = match kind {
            RequestKind::Chunk => {
                let number = s3.part_number_at(part_start.unwrap_or(0));
                (
                    Some(format!("partNumber={number}")),
                    S3Action::UploadPart,
                    Some(number),
                )
            }
            RequestKind::Status => (Some(s3.status_query()), S3Action::ListParts, None),
            RequestKind::Terminate => (None, S3Action::AbortMultipartUpload, None),
            RequestKind::Create | RequestKind::Discover => {
                (None, S3Action::CreateMultipartUpload, None)
            }
        };
        let signing = crate::SignRequest {
            action,
            upload_id: Some(upload_id.to_string()),
            part_number,
        };
        Some((query, signing))
    }

    /// For S3: the parts this window's server holds.
    pub(crate) fn s3_parts(&self) -> &[UploadedPart] {
        match self {
            Codec::S3(s3) => s3.parts(),
            _ => &[],
        }
    }

    /// A request that removes the upload, if the protocol has one.
    pub(crate) fn terminate(&self) -> Option<RequestParts> {
        match self {
            Codec::Ranged(ranged) => Some(ranged.terminate()),
            Codec::Tus(tus) if tus.has("termination") => Some(tus.terminate()),
            Codec::Tus(_) => None,
            Codec::Ietf(ietf) => Some(ietf.terminate()),
            Codec::Gcs(gcs) => Some(gcs.terminate()),
            Codec::S3(s3) => Some(s3.terminate()),
        }
    }

    pub(crate) fn create(&self, meta: &UploadMeta<'_>, body: Option<ByteRange>) -> RequestParts {
        match self {
            Codec::Ranged(ranged) => ranged.create(meta),
            Codec::Tus(tus) => tus.create(meta, body),
            Codec::Ietf(ietf) => ietf.create(meta, body),
            Codec::Gcs(gcs) => gcs.create(meta),
            // The session creates multipart uploads; an engine never does
            // (`Upload::new` refuses a window without its upload).
            Codec::S3(_) => RequestParts {
                method: Method::Post,
                headers: Vec::new(),
            },
        }
    }

    pub(crate) fn status(&self, meta: &UploadMeta<'_>) -> RequestParts {
        match self {
            Codec::Ranged(ranged) => ranged.status(),
            Codec::Tus(tus) => tus.status(),
            Codec::Ietf(ietf) => ietf.status(),
            Codec::Gcs(gcs) => gcs.status(meta),
            Codec::S3(s3) => s3.status(),
        }
    }

    /// A chunk request; `last` when the chunk ends the upload (IETF
    /// `Upload-Complete`), `announce_length` when it must also tell a
    /// deferred length (tus `Upload-Length`).
    pub(crate) fn chunk(
        &self,
        range: ByteRange,
        meta: &UploadMeta<'_>,
        last: bool,
        announce_length: bool,
    ) -> RequestParts {
        match self {
            Codec::Ranged(ranged) => ranged.chunk(range, meta),
            Codec::Tus(tus) => tus.chunk(range, meta, announce_length),
            Codec::Ietf(ietf) => ietf.chunk(range, meta, last),
            Codec::Gcs(gcs) => gcs.chunk(range, meta),
            Codec::S3(s3) => s3.chunk(range, meta),
        }
    }

    pub(crate) fn on_create(&self, response: &Response) -> Verdict {
        if let Some(verdict) = self.wrong_protocol(response) {
            return verdict;
        }
        match self {
            Codec::Ranged(ranged) => ranged.on_create(response),
            Codec::Tus(tus) => tus.on_create(response),
            Codec::Ietf(ietf) => ietf.on_create(response),
            Codec::Gcs(gcs) => gcs.on_create(response),
            Codec::S3(_) => Verdict::Fatal(Error::ProtocolViolation(
                "an S3 part window cannot create its upload".into(),
            )),
        }
    }

    pub(crate) fn on_status(&mut self, response: &Response, meta: &UploadMeta<'_>) -> Verdict {
        match self {
            Codec::Ranged(ranged) => ranged.on_status(response, meta),
            Codec::Tus(tus) => tus.on_status(response, meta),
            Codec::Ietf(ietf) => ietf.on_status(response, meta),
            Codec::Gcs(gcs) => gcs.on_status(response, meta),
            Codec::S3(s3) => s3.on_status(response),
        }
    }

    pub(crate) fn on_chunk(&mut self, response: &Response, range: ByteRange) -> Verdict {
        match self {
            Codec::Ranged(ranged) => ranged.on_chunk(response, range),
            Codec::Tus(tus) => tus.on_chunk(response, range),
            Codec::Ietf(ietf) => ietf.on_chunk(response, range),
            Codec::Gcs(gcs) => gcs.on_chunk(response, range),
            Codec::S3(s3) => s3.on_chunk(response, range),
        }
    }

    /// A refusal of a ranged creation that announces another protocol: a
    /// tus server answers a request without `Tus-Resumable` with `412` and
    /// `Tus-Version`. The ranged protocol is the one spoken without being
    /// asked for by name only when discovery found nothing, so this is how
    /// the session learns it guessed wrong.
    fn wrong_protocol(&self, response: &Response) -> Option<Verdict> {
        let refused = matches!(response.status, 400 | 405 | 412 | 415);
        if !matches!(self, Codec::Ranged(_)) || !refused {
            return None;
        }
        let server = discovery::announced(response)?;
        Some(Verdict::Fatal(Error::WrongProtocol {
            spoken: self.protocol(),
            announced: server.protocol,
            status: response.status,
        }))
    }

    /// Append-size limits a response announced (IETF `Upload-Limit`).
    pub(crate) fn append_limits(&self, response: &Response) -> Option<(Option<u64>, Option<u64>)> {
        match self {
            Codec::Ietf(_) => ietf::append_limits(response),
            _ => None,
        }
    }

    /// Whether an offset answer shows that the server knows the final length
    /// (so a deferred length must not be sent again).
    pub(crate) fn server_knows_length(&self, response: &Response) -> bool {
        match self {
            Codec::Ranged(_) => true,
            Codec::Tus(_) => response.header("Upload-Length").is_some(),
            Codec::Ietf(_) => ietf::knows_length(response),
            // Its status query names the total whenever the source knows it.
            Codec::Gcs(_) => true,
            // The completion tells the length (the session sends it).
            Codec::S3(_) => true,
        }
    }

    /// Whether an offset answer shows the server still waits for the end of
    /// the upload to be declared (IETF `Upload-Complete: ?0`), even if it
    /// holds every byte (an append whose answer was lost).
    pub(crate) fn awaits_completion(&self, response: &Response) -> bool {
        match self {
            Codec::Ietf(_) => ietf::says_incomplete(response),
            Codec::Gcs(_) => gcs::says_incomplete(response),
            _ => false,
        }
    }

    /// When the server will forget the upload (tus `Upload-Expires`), in
    /// milliseconds since the Unix epoch.
    pub(crate) fn expires_ms(&self, response: &Response) -> Option<i64> {
        match self {
            Codec::Tus(_) => {
                let value = response.header("Upload-Expires")?;
                let at = httpdate::parse_http_date(value).ok()?;
                let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
                i64::try_from(ms).ok()
            }
            _ => None,
        }
    }

    /// The checksum algorithm to use for chunks, if any.
    pub(crate) fn checksum(&self, wanted: bool, caps: &Capabilities) -> Option<ChecksumAlgorithm> {
        match self {
            Codec::Tus(tus) if wanted && tus.has("checksum") => caps.checksum,
            _ => None,
        }
    }
}

/// How a status code is classified when a protocol has no special meaning
/// for it: shared by every protocol so they agree on what is retryable.
pub(crate) fn generic_verdict(response: &Response) -> Verdict {
    let status = response.status;
    match status {
        404 | 410 => Verdict::Gone(status),
        413 => Verdict::TooLarge,
        408 | 423 | 429 | 500 | 502 | 503 | 504 => Verdict::Retry {
            reason: RetryReason::Status(status),
            retry_after: response
                .header("Retry-After")
                .and_then(headers::parse_retry_after),
        },
        _ => Verdict::Fatal(Error::Rejected {
            status,
            message: response.body_excerpt(),
        }),
    }
}

/// Checks that a range is something the engine would ask for.
pub(crate) fn debug_check_range(range: ByteRange, total: Option<u64>) {
    debug_assert!(range.start <= range.end, "{range:?}");
    debug_assert!(total.is_none_or(|t| range.end <= t), "{range:?}");
}
