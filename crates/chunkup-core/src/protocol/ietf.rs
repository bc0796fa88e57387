//! IETF Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload),
//! interop versions 6 (draft -05, tusd) and 8 (draft -11). See
//! docs/PROTOCOLS.md for the differences that matter on the wire.

use super::headers::parse_u64;
use super::structured::Dictionary;
use super::{IetfVersion, RequestParts, UploadMeta, Verdict, generic_verdict};
use crate::error::Quoted;
use crate::{ByteRange, Error, Method, Response};

const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// IETF-draft request builders and response interpretation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ietf {
    pub version: IetfVersion,
}

impl Ietf {
    fn base_headers(&self) -> Vec<(String, String)> {
        vec![(
            "Upload-Draft-Interop-Version".into(),
            self.version.interop().to_string(),
        )]
    }

    pub(crate) fn create(&self, meta: &UploadMeta<'_>, body: Option<ByteRange>) -> RequestParts {
        let mut headers = self.base_headers();
        let complete = match (meta.total, body) {
            (Some(total), Some(range)) => range.end == total,
            (Some(0), None) => true,
            _ => false,
        };
        headers.push(("Upload-Complete".into(), sf_bool(complete)));
        if let Some(total) = meta.total {
            headers.push(("Upload-Length".into(), total.to_string()));
        }
        headers.push(("Content-Type".into(), meta.content_type.to_string()));
        headers.push((
            "Content-Disposition".into(),
            super::headers::content_disposition(meta.file_name),
        ));
        RequestParts {
            method: Method::Post,
            headers,
        }
    }

    pub(crate) fn status(&self) -> RequestParts {
        RequestParts {
            method: Method::Head,
            headers: self.base_headers(),
        }
    }

    pub(crate) fn chunk(
        &self,
        range: ByteRange,
        _meta: &UploadMeta<'_>,
        last: bool,
    ) -> RequestParts {
        let mut headers = self.base_headers();
        headers.push(("Upload-Offset".into(), range.start.to_string()));
        headers.push(("Upload-Complete".into(), sf_bool(last)));
        // Required from interop version 6 on.
        headers.push(("Content-Type".into(), PARTIAL_UPLOAD.into()));
        RequestParts {
            method: Method::Patch,
            headers,
        }
    }

    pub(crate) fn terminate(&self) -> RequestParts {
        RequestParts {
            method: Method::Delete,
            headers: self.base_headers(),
        }
    }

    pub(crate) fn on_create(&self, response: &Response) -> Verdict {
        match response.status {
            // Draft -11 requires `Location` only for an upload left
            // incomplete; whether the request completed it is the engine's
            // to check.
            200..=299 => match offset(response) {
                Ok(offset) => Verdict::Created {
                    location: response
                        .header("Location")
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                    offset,
                },
                Err(verdict) => verdict,
            },
            _ => generic_verdict(response),
        }
    }

    pub(crate) fn on_status(&self, response: &Response, meta: &UploadMeta<'_>) -> Verdict {
        if !(200..=299).contains(&response.status) {
            return generic_verdict(response);
        }
        if let (Some(length), Some(total)) = (
            response.header("Upload-Length").and_then(parse_u64),
            meta.total,
        ) && length != total
        {
            return violation(format!(
                "the server says the upload has {length} bytes, the source has {total}"
            ));
        }
        match offset(response) {
            Ok(Some(offset)) => Verdict::ServerHas(offset),
            Ok(None) => violation("the offset answer has no Upload-Offset".into()),
            Err(verdict) => verdict,
        }
    }

    pub(crate) fn on_chunk(&self, response: &Response, range: ByteRange) -> Verdict {
        match response.status {
            200..=299 => match offset(response) {
                Ok(Some(offset)) => Verdict::ServerHas(offset),
                // Without an offset, success means the whole append arrived.
                Ok(None) => Verdict::ServerHas(range.end),
                Err(verdict) => verdict,
            },
            // A conflict carries the server's offset (when it does not, ask).
            409 => match offset(response) {
                Ok(Some(offset)) => Verdict::ServerHas(offset),
                Ok(None) => Verdict::Resync,
                Err(verdict) => verdict,
            },
            _ => generic_verdict(response),
        }
    }
}

/// Whether an offset answer shows the server already knows the final length.
pub(crate) fn knows_length(response: &Response) -> bool {
    response.header("Upload-Length").is_some() || response.header("Upload-Complete") == Some("?1")
}

/// Whether an offset answer says the upload is not complete yet
/// (`Upload-Complete: ?0`): then it is not, whatever the offset — only an
/// append carrying `?1` completes it.
pub(crate) fn says_incomplete(response: &Response) -> bool {
    response.header("Upload-Complete") == Some("?0")
}

/// Structured-field boolean.
fn sf_bool(value: bool) -> String {
    if value { "?1" } else { "?0" }.to_string()
}

fn offset(response: &Response) -> Result<Option<u64>, Verdict> {
    match response.header("Upload-Offset") {
        None => Ok(None),
        Some(value) => parse_u64(value).map(Some).ok_or_else(|| {
            violation(format!(
                "Upload-Offset {} is not a byte offset",
                Quoted(value)
            ))
        }),
    }
}

/// `Upload-Limit` (a structured dictionary): `(min-append-size,
/// max-append-size)`, with `max-size` bounding appends too. A field that is
/// not a dictionary is ignored whole; a member that is not a non-negative
/// integer is no limit.
pub(crate) fn append_limits(response: &Response) -> Option<(Option<u64>, Option<u64>)> {
    let value = response.header("Upload-Limit")?;
    let dictionary = Dictionary::parse(value)?;
    let integer = |key: &str| -> Option<u64> { u64::try_from(dictionary.integer(key)?).ok() };
    let max = match (integer("max-append-size"), integer("max-size")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Some((integer("min-append-size"), max))
}

fn violation(message: String) -> Verdict {
    Verdict::Fatal(Error::ProtocolViolation(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_limit_is_a_structured_dictionary() {
        let response = Response::status(204).with_header(
            "Upload-Limit",
            "max-size=1000000, min-append-size=10, max-append-size=5000",
        );
        assert_eq!(append_limits(&response), Some((Some(10), Some(5000))));
        let garbage = Response::status(204).with_header("Upload-Limit", "max-size=\"x\", ;;");
        assert_eq!(append_limits(&garbage), None);
        let negative = Response::status(204).with_header("Upload-Limit", "max-append-size=-5");
        assert_eq!(append_limits(&negative), Some((None, None)));
    }

    #[test]
    fn conflict_carries_the_offset() {
        let ietf = Ietf::default();
        let range = ByteRange { start: 10, end: 20 };
        let conflict = Response::status(409).with_header("Upload-Offset", "7");
        assert_eq!(ietf.on_chunk(&conflict, range), Verdict::ServerHas(7));
        assert_eq!(
            ietf.on_chunk(&Response::status(409), range),
            Verdict::Resync
        );
    }
}
