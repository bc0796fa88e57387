//! The ranged protocol (Odnoklassniki / FileAPI style): chunks carry
//! `Content-Range`, the server answers with `X-Last-Known-Byte` (an inclusive
//! index), a `GET` on the upload URL polls the status, and `416` reports a
//! hole after a failover.

use super::headers::{
    content_disposition, content_range, parse_last_known_byte, parse_status_body,
};
use super::{RequestParts, UploadMeta, Verdict, debug_check_range, generic_verdict};
use crate::error::Quoted;
use crate::{ByteRange, Error, Method, Response};

const LAST_KNOWN_BYTE: &str = "X-Last-Known-Byte";

/// The ranged protocol's request builders and response interpretation.
#[derive(Debug, Clone)]
pub(crate) struct Ranged {
    /// `POST` (the default) or `PUT` for chunks.
    pub chunk_method: Method,
}

impl Ranged {
    pub(crate) fn create(&self, meta: &UploadMeta<'_>) -> RequestParts {
        RequestParts {
            method: Method::Post,
            headers: vec![
                (
                    "X-Upload-Content-Length".into(),
                    meta.total.unwrap_or_default().to_string(),
                ),
                ("Content-Type".into(), meta.content_type.to_string()),
                (
                    "Content-Disposition".into(),
                    content_disposition(meta.file_name),
                ),
            ],
        }
    }

    pub(crate) fn terminate(&self) -> RequestParts {
        RequestParts {
            method: Method::Delete,
            headers: Vec::new(),
        }
    }

    pub(crate) fn status(&self) -> RequestParts {
        RequestParts {
            method: Method::Get,
            headers: Vec::new(),
        }
    }

    pub(crate) fn chunk(&self, range: ByteRange, meta: &UploadMeta<'_>) -> RequestParts {
        debug_check_range(range, meta.total);
        RequestParts {
            method: self.chunk_method,
            headers: vec![
                (
                    "Content-Range".into(),
                    content_range(range.start, range.end, meta.total.unwrap_or(range.end)),
                ),
                (
                    "Content-Disposition".into(),
                    content_disposition(meta.file_name),
                ),
                ("Content-Type".into(), meta.content_type.to_string()),
            ],
        }
    }

    pub(crate) fn on_create(&self, response: &Response) -> Verdict {
        match response.status {
            200 | 201 => match response.header("Location") {
                Some(location) if !location.is_empty() => Verdict::Created {
                    location: Some(location.to_string()),
                    offset: None,
                },
                _ => violation("the upload was created without a Location header".into()),
            },
            _ => generic_verdict(response),
        }
    }

    pub(crate) fn on_status(&self, response: &Response, meta: &UploadMeta<'_>) -> Verdict {
        if response.status != 200 {
            return generic_verdict(response);
        }
        if let Some(value) = response.header(LAST_KNOWN_BYTE) {
            return match parse_last_known_byte(value) {
                Ok(held) => Verdict::ServerHas(held),
                Err(message) => violation(message),
            };
        }
        let body = String::from_utf8_lossy(&response.body);
        match parse_status_body(&body) {
            Some((_, total)) if Some(total) != meta.total => violation(format!(
                "status reports a total of {total} bytes, the upload has {}",
                meta.total.unwrap_or_default()
            )),
            Some((held, _)) => Verdict::ServerHas(held),
            None => violation(format!(
                "status answer has neither X-Last-Known-Byte nor a range body (got {})",
                Quoted(&response.body_excerpt())
            )),
        }
    }

    pub(crate) fn on_chunk(&self, response: &Response, range: ByteRange) -> Verdict {
        let last_known = response.header(LAST_KNOWN_BYTE).map(parse_last_known_byte);
        match (response.status, last_known) {
            (_, Some(Err(message))) if matches!(response.status, 200 | 201 | 416) => {
                violation(message)
            }
            (200 | 201, Some(Ok(held))) | (416, Some(Ok(held))) => Verdict::ServerHas(held),
            (200 | 201, None) => Verdict::ServerHas(range.end),
            (416, None) => Verdict::StepBack,
            _ => generic_verdict(response),
        }
    }
}

fn violation(message: String) -> Verdict {
    Verdict::Fatal(Error::ProtocolViolation(message))
}
