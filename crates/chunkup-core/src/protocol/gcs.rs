//! Google-style resumable sessions: what GCS, YouTube, Drive and Mux direct
//! uploads speak (cloud.google.com/storage/docs/performing-resumable-uploads).
//!
//! - The session URI comes from the application (its backend initiated
//!   it), or from the initiation: `POST <endpoint>` with
//!   `X-Upload-Content-Length` and `X-Upload-Content-Type`, answered with
//!   `Location: <session URI>`.
//! - Chunks: `PUT <session>` with `Content-Range: bytes s-e/total` (`/*`
//!   while the length is unknown). `308 Resume Incomplete` with
//!   `Range: bytes=0-N` says the server holds `N + 1` bytes; a 308 without
//!   `Range` says it holds none. `200`/`201` says the upload is complete.
//! - The status query: `PUT <session>` with no body and
//!   `Content-Range: bytes */total` (`bytes */*` for an unknown length).
//! - Every chunk but the last is a multiple of 256 KiB.
//! - `404`/`410` on the session: it is gone (expired or cancelled).
//! - A `DELETE` cancels the session (GCS answers 499).

use super::headers::{content_range, parse_u64};
use super::{RequestParts, UploadMeta, Verdict, generic_verdict};
use crate::error::Quoted;
use crate::{ByteRange, Error, Method, Response};

/// Google-style resumable-session request builders and response
/// interpretation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gcs;

impl Gcs {
    pub(crate) fn create(&self, meta: &UploadMeta<'_>) -> RequestParts {
        let mut headers = vec![(
            "X-Upload-Content-Type".to_string(),
            meta.content_type.to_string(),
        )];
        if let Some(total) = meta.total {
            headers.push(("X-Upload-Content-Length".into(), total.to_string()));
        }
        RequestParts {
            method: Method::Post,
            headers,
        }
    }

    pub(crate) fn status(&self, meta: &UploadMeta<'_>) -> RequestParts {
        let total = meta
            .total
            .map_or_else(|| "*".to_string(), |t| t.to_string());
        RequestParts {
            method: Method::Put,
            headers: vec![("Content-Range".into(), format!("bytes */{total}"))],
        }
    }

    /// A chunk (a stream's total is known by its last chunk: the driver
    /// reports the end before the chunk that reaches it is sent).
    pub(crate) fn chunk(&self, range: ByteRange, meta: &UploadMeta<'_>) -> RequestParts {
        let value = match (range.is_empty(), meta.total) {
            // Nothing left to send but the length: the status-query form
            // also finishes an upload that holds every byte.
            (true, Some(total)) => format!("bytes */{total}"),
            (true, None) => "bytes */*".to_string(),
            (false, Some(total)) => content_range(range.start, range.end, total),
            (false, None) => format!("bytes {}-{}/*", range.start, range.end - 1),
        };
        RequestParts {
            method: Method::Put,
            headers: vec![
                ("Content-Range".into(), value),
                ("Content-Type".into(), meta.content_type.to_string()),
            ],
        }
    }

    pub(crate) fn terminate(&self) -> RequestParts {
        RequestParts {
            method: Method::Delete,
            headers: Vec::new(),
        }
    }

    pub(crate) fn on_create(&self, response: &Response) -> Verdict {
        match response.status {
            200 | 201 => match response.header("Location") {
                Some(location) if !location.is_empty() => Verdict::Created {
                    location: Some(location.to_string()),
                    offset: None,
                },
                _ => violation("the session was initiated without a Location header".into()),
            },
            _ => generic_verdict(response),
        }
    }

    pub(crate) fn on_status(&self, response: &Response, meta: &UploadMeta<'_>) -> Verdict {
        match response.status {
            308 => held(response),
            // The session is complete: the server holds every byte.
            200 | 201 => match meta.total {
                Some(total) => completed(response, total),
                None => violation("a stream's session completed before its end".into()),
            },
            _ => generic_verdict(response),
        }
    }

    pub(crate) fn on_chunk(&self, response: &Response, range: ByteRange) -> Verdict {
        match response.status {
            308 => held(response),
            // Complete: only an answer to the chunk that ended the upload.
            200 | 201 => completed(response, range.end),
            _ => generic_verdict(response),
        }
    }
}

/// The object a completed session answers with, as GCS describes it
/// (`"size": "1048576"`, a string) or as others might (a number). Other
/// servers (YouTube, Mux) answer with other bodies; those are not checked.
#[derive(serde::Deserialize)]
struct StoredObject {
    size: Option<ObjectSize>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ObjectSize {
    Text(String),
    Number(u64),
}

/// A `200`/`201` that completes the session at `expected` bytes. When the
/// answer describes the stored object, its size must be `expected`: a server
/// that commits the object with what it holds when asked for its status
/// (fake-gcs-server does) would otherwise turn a truncated upload into a
/// success.
fn completed(response: &Response, expected: u64) -> Verdict {
    let Ok(object) = serde_json::from_slice::<StoredObject>(&response.body) else {
        return Verdict::ServerHas(expected);
    };
    let stored = match object.size {
        None => return Verdict::ServerHas(expected),
        Some(ObjectSize::Number(size)) => Some(size),
        Some(ObjectSize::Text(text)) => parse_u64(&text),
    };
    match stored {
        Some(size) if size == expected => Verdict::ServerHas(expected),
        Some(size) => violation(format!(
            "the session completed with {size} bytes stored, but the upload has {expected}"
        )),
        None => violation("the completed object's size is not a number".into()),
    }
}

/// Whether an answer says the session is still open (308): then the upload
/// is not complete, whatever the offset.
pub(crate) fn says_incomplete(response: &Response) -> bool {
    response.status == 308
}

/// The bytes a `308` says the server holds: `Range: bytes=0-N` is `N + 1`;
/// no `Range` is none.
fn held(response: &Response) -> Verdict {
    let Some(value) = response.header("Range") else {
        return Verdict::ServerHas(0);
    };
    match parse_range(value) {
        Some(held) => Verdict::ServerHas(held),
        None => violation(format!("Range {} is not bytes=0-N", Quoted(value))),
    }
}

/// `bytes=0-N` → `N + 1`. Ranges not starting at 0 are not what a session
/// holds.
fn parse_range(value: &str) -> Option<u64> {
    let last = value.trim().strip_prefix("bytes=")?.strip_prefix("0-")?;
    parse_u64(last)?.checked_add(1)
}

fn violation(message: String) -> Verdict {
    Verdict::Fatal(Error::ProtocolViolation(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Concat;

    fn meta(total: Option<u64>) -> UploadMeta<'static> {
        UploadMeta {
            total,
            file_name: "a.mp4",
            content_type: "video/mp4",
            metadata: &[],
            concat: &Concat::None,
        }
    }

    #[test]
    fn ranges_and_status_queries() {
        let gcs = Gcs;
        let range = ByteRange {
            start: 0,
            end: 256 * 1024,
        };
        let known = gcs.chunk(range, &meta(Some(1_000_000)));
        assert_eq!(known.method, Method::Put);
        assert_eq!(known.headers[0].1, "bytes 0-262143/1000000");
        let stream = gcs.chunk(range, &meta(None));
        assert_eq!(stream.headers[0].1, "bytes 0-262143/*");
        let empty = ByteRange { start: 9, end: 9 };
        assert_eq!(gcs.chunk(empty, &meta(Some(9))).headers[0].1, "bytes */9");
        assert_eq!(gcs.status(&meta(None)).headers[0].1, "bytes */*");
        assert_eq!(gcs.status(&meta(Some(5))).headers[0].1, "bytes */5");
    }

    #[test]
    fn resume_incomplete_says_what_is_held() {
        let gcs = Gcs;
        let range = ByteRange { start: 0, end: 10 };
        let some = Response::status(308).with_header("Range", "bytes=0-4");
        assert_eq!(gcs.on_chunk(&some, range), Verdict::ServerHas(5));
        assert_eq!(
            gcs.on_chunk(&Response::status(308), range),
            Verdict::ServerHas(0)
        );
        assert_eq!(
            gcs.on_chunk(&Response::status(200), range),
            Verdict::ServerHas(10)
        );
        assert!(matches!(
            gcs.on_chunk(
                &Response::status(308).with_header("Range", "bytes=3-4"),
                range
            ),
            Verdict::Fatal(_)
        ));
        assert_eq!(
            gcs.on_status(&Response::status(201), &meta(Some(10))),
            Verdict::ServerHas(10)
        );
        assert_eq!(
            gcs.on_status(&Response::status(404), &meta(Some(10))),
            Verdict::Gone(404)
        );
        assert_eq!(
            gcs.on_status(&Response::status(410), &meta(Some(10))),
            Verdict::Gone(410)
        );
        assert!(says_incomplete(&some) && !says_incomplete(&Response::status(200)));
    }

    #[test]
    fn a_completed_object_must_hold_every_byte() {
        let gcs = Gcs;
        let object = |size: &str| {
            Response::status(200).with_body(format!(r#"{{"name":"a","size":{size}}}"#))
        };
        assert_eq!(
            gcs.on_status(&object(r#""10""#), &meta(Some(10))),
            Verdict::ServerHas(10)
        );
        assert_eq!(
            gcs.on_status(&object("10"), &meta(Some(10))),
            Verdict::ServerHas(10)
        );
        // fake-gcs-server commits what it holds when asked for its status.
        assert!(matches!(
            gcs.on_status(&object(r#""4""#), &meta(Some(10))),
            Verdict::Fatal(Error::ProtocolViolation(_))
        ));
        let range = ByteRange { start: 5, end: 10 };
        assert!(matches!(
            gcs.on_chunk(&object(r#""7""#), range),
            Verdict::Fatal(Error::ProtocolViolation(_))
        ));
        assert!(matches!(
            gcs.on_chunk(&object(r#""ten""#), range),
            Verdict::Fatal(Error::ProtocolViolation(_))
        ));
        // Bodies that do not describe an object (YouTube, Mux) are not checked.
        let other = Response::status(201).with_body(r#"{"kind":"youtube#video"}"#);
        assert_eq!(gcs.on_chunk(&other, range), Verdict::ServerHas(10));
        let text = Response::status(200).with_body("done");
        assert_eq!(gcs.on_chunk(&text, range), Verdict::ServerHas(10));
    }
}
