use std::fmt;

/// HTTP methods the protocols use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one request the engine asked for, so that its outcome can be
/// matched (and a late answer to an abandoned request ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What a request is for; informative for drivers (logs, timeouts, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Creates the upload on the server.
    Create,
    /// Asks the server how many bytes it holds.
    Status,
    /// Sends a chunk of the source.
    Chunk,
    /// Removes the upload on the server.
    Terminate,
    /// Asks the endpoint which protocol it speaks (`OPTIONS`).
    Discover,
}

/// A half-open byte range `[start, end)` of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True when the range holds no byte.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A request for the driver to perform. The body, if any, is the given byte
/// range of the source: the driver reads it lazily and streams it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// Echo this in the [`crate::Input`] that reports the outcome.
    pub id: RequestId,
    /// What the request is for.
    pub kind: RequestKind,
    /// HTTP method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Headers to send, in order (the configured extra headers included).
    pub headers: Vec<(String, String)>,
    /// The source bytes to send as the body, if any.
    pub body: Option<ByteRange>,
    /// Add an `Upload-Checksum` header computed with this algorithm over the
    /// body's bytes ([`crate::ChecksumAlgorithm::header_value`]).
    pub checksum: Option<crate::ChecksumAlgorithm>,
    /// Send this request over a new connection, not a pooled one: the last
    /// request's connection may be unusable (a server that refused a body
    /// before reading it may never read another request on it).
    pub new_connection: bool,
    /// Ask the header provider for fresh credentials for this request (the
    /// last ones were refused).
    pub refresh_credentials: bool,
    /// A body that is not a part of the source (the XML that completes an
    /// S3 multipart upload). A request has `body` or `payload`, not both.
    pub payload: Option<Vec<u8>>,
    /// The request must be signed before it is sent (S3 through presigned
    /// URLs): the driver asks the application's signer, or signs with its
    /// credentials, and sends to the signed URL with the signed headers.
    /// `url` is then the unsigned URL.
    pub signing: Option<SignRequest>,
}

/// What a signer needs to know about an S3 request besides its method and
/// unsigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The S3 operation.
    pub action: S3Action,
    /// The multipart upload, once created.
    pub upload_id: Option<String>,
    /// The part, for [`S3Action::UploadPart`].
    pub part_number: Option<u32>,
}

/// The S3 operations of a multipart upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Action {
    /// `POST ?uploads`: CreateMultipartUpload.
    CreateMultipartUpload,
    /// `PUT ?partNumber=N&uploadId=U`: UploadPart.
    UploadPart,
    /// `GET ?uploadId=U`: ListParts.
    ListParts,
    /// `POST ?uploadId=U`: CompleteMultipartUpload.
    CompleteMultipartUpload,
    /// `DELETE ?uploadId=U`: AbortMultipartUpload.
    AbortMultipartUpload,
}

impl S3Action {
    /// The operation's name in the S3 API.
    pub fn as_str(self) -> &'static str {
        match self {
            S3Action::CreateMultipartUpload => "CreateMultipartUpload",
            S3Action::UploadPart => "UploadPart",
            S3Action::ListParts => "ListParts",
            S3Action::CompleteMultipartUpload => "CompleteMultipartUpload",
            S3Action::AbortMultipartUpload => "AbortMultipartUpload",
        }
    }
}

impl RequestSpec {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response as the driver received it. Drivers read at most
/// [`crate::MAX_RESPONSE_BODY`] bytes of the body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// Final status code (interim 1xx responses are not reported here).
    pub status: u16,
    /// Response headers (names in any case).
    pub headers: Vec<(String, String)>,
    /// The start of the body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a status and no headers or body.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            ..Default::default()
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text for messages, lossily and shortened.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        }
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}
