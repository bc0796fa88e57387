//! Records that only the bindings need: what a completed upload reports and
//! what the app's hooks are given and give back. Options, events, errors
//! and remembered uploads are the api crate's (`chunkup_api`), not here.

/// What a completed upload did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct UploadReport {
    /// The upload's URL on the server (`None` when the server completed it
    /// in its creation request without naming it).
    pub upload_url: Option<String>,
    /// Bytes uploaded in total (the file size).
    pub size: u64,
    /// Where an earlier upload of the same file was continued from, if it was.
    pub resumed_from: Option<u64>,
    /// Every problem survived on the way, as readable text, in order.
    pub retries: Vec<String>,
    /// Wall time of this run in milliseconds.
    pub elapsed_ms: u64,
}

impl From<chunkup::UploadReport> for UploadReport {
    fn from(report: chunkup::UploadReport) -> Self {
        UploadReport {
            upload_url: report.upload_url,
            size: report.size,
            resumed_from: report.resumed_from,
            retries: report.retries.iter().map(ToString::to_string).collect(),
            elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A request about to be sent, as a `HeaderProvider` sees it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RequestInfo {
    /// The method (`PATCH`, `POST`, …).
    pub method: String,
    /// The URL the request goes to.
    pub url: String,
    /// The server refused the last credentials (401 or 403): return fresh
    /// ones. The request is sent once more with them.
    pub refresh: bool,
}

/// The problem a retry would follow, as a `RetryDecision` sees it (the same
/// fields as `UploadEvent.Retrying`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RetryProblem {
    /// The problem's kind (`status`, `transport`, `stalled`, …).
    pub reason: String,
    /// The HTTP status, when the problem was an answer.
    pub status: Option<u16>,
    /// The problem, for people.
    pub message: String,
}

/// The S3 operation a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum S3Operation {
    /// `POST ?uploads`.
    CreateMultipartUpload,
    /// `PUT ?partNumber=N&uploadId=U`.
    UploadPart,
    /// `GET ?uploadId=U`.
    ListParts,
    /// `POST ?uploadId=U`.
    CompleteMultipartUpload,
    /// `DELETE ?uploadId=U`.
    AbortMultipartUpload,
}

impl From<chunkup::S3Action> for S3Operation {
    fn from(action: chunkup::S3Action) -> Self {
        match action {
            chunkup::S3Action::CreateMultipartUpload => S3Operation::CreateMultipartUpload,
            chunkup::S3Action::UploadPart => S3Operation::UploadPart,
            chunkup::S3Action::ListParts => S3Operation::ListParts,
            chunkup::S3Action::CompleteMultipartUpload => S3Operation::CompleteMultipartUpload,
            chunkup::S3Action::AbortMultipartUpload => S3Operation::AbortMultipartUpload,
        }
    }
}

/// An S3 request to sign, as a `Signer` sees it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignRequest {
    /// The method.
    pub method: String,
    /// The unsigned URL (the object's, with the operation's query).
    pub url: String,
    /// The headers the request will carry.
    pub headers: Vec<chunkup_api::KeyValue>,
    /// The S3 operation.
    pub operation: S3Operation,
    /// The multipart upload, once created.
    pub upload_id: Option<String>,
    /// The part, for `UploadPart`.
    pub part_number: Option<u32>,
}

/// A signed request: where to send it and the headers to add.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedRequest {
    /// The signed URL (a presigned URL carries its signature in the query).
    pub url: String,
    /// Headers to add (or replace), for signatures carried in headers.
    #[uniffi(default)]
    pub headers: Vec<chunkup_api::KeyValue>,
}
