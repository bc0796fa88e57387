//! S3 multipart uploads through presigned URLs (the application's backend
//! signs, or the driver signs with its credentials): CreateMultipartUpload,
//! UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload.
//!
//! The upload's URL is the multipart upload's resource,
//! `<object URL>?uploadId=U`. An engine ([`crate::Upload`]) sends the parts
//! of one *window* of the object — a range of bytes and of part numbers —
//! one at a time; the session runs several windows in parallel, creates
//! the multipart upload before them and completes it after them.
//!
//! - A part is `PUT <upload>&partNumber=N`; its answer's `ETag` is kept for
//!   the completion. A 2xx without `ETag` is a setup fault (in a browser:
//!   the bucket's CORS rule does not expose it), never retried.
//! - Where a window stands is asked with ListParts (`GET <upload>`): the
//!   parts present from its first number on, in order, each once. A part
//!   number listed twice (a retry of a part whose answer was lost; SeaweedFS
//!   keeps both) is sent again.
//! - An expired presigned URL (403 `AccessDenied`, "Request has expired") is
//!   signed again and retried, never a failure by itself.
//!
//! Responses are S3's XML; only the few elements needed are read
//! ([`xml`]), which keeps the browser package small.

use super::{RequestParts, UploadMeta, Verdict, generic_verdict};
use crate::retry::RetryReason;
use crate::{ByteRange, Error, Method, Response};

/// The part numbers one engine may use: `first` to `first + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartWindow {
    /// The first part number (S3 numbers parts from 1).
    pub first: u32,
    /// How many part numbers the window has.
    pub count: u32,
    /// The window ends the object: only its last part may be smaller than
    /// the minimum part size.
    pub last: bool,
}

impl PartWindow {
    /// S3's whole range: parts 1 to 10,000, the whole object.
    pub const ALL: PartWindow = PartWindow {
        first: 1,
        count: 10_000,
        last: true,
    };
}

impl Default for PartWindow {
    fn default() -> Self {
        PartWindow::ALL
    }
}

/// A part the server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// Its number.
    pub number: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Its `ETag`, as the server sent it (quotes included).
    pub etag: String,
}

/// One window's parts: request builders, and what the answers said.
#[derive(Debug, Clone, Default)]
pub(crate) struct S3 {
    pub window: PartWindow,
    /// The window's parts the server holds, in order from its first number.
    parts: Vec<UploadedPart>,
    /// While paging through a long listing: the part number to list after.
    list_after: Option<u32>,
    /// Parts found so far by a listing that spans pages.
    listed: Vec<UploadedPart>,
}

/// Parts asked for per ListParts page (S3's default and maximum).
const LIST_PAGE: u32 = 1000;

impl S3 {
    pub(crate) fn new(window: PartWindow) -> Self {
        S3 {
            window,
            ..S3::default()
        }
    }

    /// The window's parts the server holds, in order.
    pub(crate) fn parts(&self) -> &[UploadedPart] {
        &self.parts
    }

    /// Parts of the window already used.
    pub(crate) fn parts_done(&self) -> u64 {
        self.parts.len() as u64
    }

    /// ListParts, from the window's first part (or where the last page
    /// ended).
    pub(crate) fn status(&self) -> RequestParts {
        RequestParts {
            method: Method::Get,
            headers: Vec::new(),
        }
    }

    /// The query a ListParts request adds to the upload's URL.
    pub(crate) fn status_query(&self) -> String {
        let after = self
            .list_after
            .unwrap_or(self.window.first.saturating_sub(1));
        format!("max-parts={LIST_PAGE}&part-number-marker={after}")
    }

    /// The number of the part that starts at byte `start` of the window.
    pub(crate) fn part_number_at(&self, start: u64) -> u32 {
        let held: u64 = self.parts.iter().map(|p| p.size).sum();
        debug_assert_eq!(held, start, "parts are sent in order");
        self.window.first + self.parts.len() as u32
    }

    pub(crate) fn chunk(&self, _range: ByteRange, meta: &UploadMeta<'_>) -> RequestParts {
        RequestParts {
            method: Method::Put,
            headers: vec![("Content-Type".into(), meta.content_type.to_string())],
        }
    }

    pub(crate) fn terminate(&self) -> RequestParts {
        RequestParts {
            method: Method::Delete,
            headers: Vec::new(),
        }
    }

    pub(crate) fn on_chunk(&mut self, response: &Response, range: ByteRange) -> Verdict {
        if let Some(verdict) = refusal(response) {
            return verdict;
        }
        if !(200..=299).contains(&response.status) {
            return generic_verdict(response);
        }
        let Some(etag) = response.header("ETag").filter(|e| !e.is_empty()) else {
            return Verdict::Fatal(Error::ServerSetup(
                "the answer to an S3 part has no ETag; in a browser the bucket's CORS rule must expose it (ExposeHeaders: ETag)".into(),
            ));
        };
        let number = self.window.first + self.parts.len() as u32;
        if number >= self.window.first + self.window.count {
            return Verdict::Fatal(Error::InvalidConfig(
                "the upload needs more S3 parts than it may use".into(),
            ));
        }
        self.parts.push(UploadedPart {
            number,
            size: range.len(),
            etag: etag.to_string(),
        });
        Verdict::ServerHas(range.end)
    }

    /// A ListParts page: the window's leading parts, in order, each once.
    pub(crate) fn on_status(&mut self, response: &Response) -> Verdict {
        if let Some(verdict) = refusal(response) {
            return verdict;
        }
        if response.status != 200 {
            return generic_verdict(response);
        }
        let body = String::from_utf8_lossy(&response.body);
        let Some(page) = xml::list_parts(&body) else {
            return violation(format!(
                "ListParts answered without a part list: {}",
                response.body_excerpt()
            ));
        };
        let first_page = self.list_after.is_none();
        if first_page {
            self.listed.clear();
        }
        let end = self.window.first + self.window.count;
        self.listed
            .extend(page.parts.into_iter().filter(|p| p.number < end));
        match page.next_marker {
            Some(next) if page.truncated && next < end && self.list_after != Some(next) => {
                self.list_after = Some(next);
                Verdict::AskAgain
            }
            _ => {
                self.list_after = None;
                self.parts = leading_parts(&self.listed, self.window.first);
                self.listed.clear();
                Verdict::ServerHas(self.parts.iter().map(|p| p.size).sum())
            }
        }
    }
}

/// The parts numbered from `first` on, without a gap, each present once.
fn leading_parts(listed: &[UploadedPart], first: u32) -> Vec<UploadedPart> {
    let mut parts = Vec::new();
    let mut next = first;
    loop {
        let mut same = listed.iter().filter(|p| p.number == next);
        match (same.next(), same.next()) {
            (Some(part), None) if !part.etag.is_empty() => {
                parts.push(part.clone());
                next += 1;
            }
            // Missing, or listed twice (which one counts is unknown): send
            // it again from here.
            _ => return parts,
        }
    }
}

/// What an S3 answer means before its status: an expired presigned URL is
/// signed again; other S3 errors are refusals with S3's code and message.
fn refusal(response: &Response) -> Option<Verdict> {
    if !(400..=499).contains(&response.status) || response.status == 404 {
        return None;
    }
    let body = String::from_utf8_lossy(&response.body);
    let error = xml::error(&body)?;
    if response.status == 403 && error.code == "AccessDenied" && error.message.contains("expired") {
        return Some(Verdict::Retry {
            reason: RetryReason::SignatureExpired,
            retry_after: None,
        });
    }
    if matches!(error.code.as_str(), "RequestTimeout" | "SlowDown") {
        return None;
    }
    Some(Verdict::Fatal(Error::Rejected {
        status: response.status,
        message: format!("{}: {}", error.code, error.message),
    }))
}

/// The body of CompleteMultipartUpload, parts in order.
pub(crate) fn complete_body(parts: &[UploadedPart]) -> Vec<u8> {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for part in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            part.number,
            xml::escape(&part.etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml.into_bytes()
}

/// What the session's create and complete requests were answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StepAnswer {
    /// Done (for a create: the upload id).
    Done(Option<String>),
    /// Try again after a backoff (at least this long).
    Again(RetryReason, Option<std::time::Duration>),
    /// The upload cannot go on.
    Failed(Error),
}

/// The answer to CreateMultipartUpload.
pub(crate) fn on_create(response: &Response) -> StepAnswer {
    match step_verdict(response) {
        Ok(()) => {
            let body = String::from_utf8_lossy(&response.body);
            match xml::text(&body, "UploadId") {
                Some(id) if !id.is_empty() => StepAnswer::Done(Some(id)),
                _ => StepAnswer::Failed(Error::ProtocolViolation(format!(
                    "CreateMultipartUpload answered without an UploadId: {}",
                    response.body_excerpt()
                ))),
            }
        }
        Err(answer) => answer,
    }
}

/// The answer to CompleteMultipartUpload (S3 may answer 200 with an error
/// in the body).
pub(crate) fn on_complete(response: &Response) -> StepAnswer {
    match step_verdict(response) {
        Ok(()) => StepAnswer::Done(None),
        Err(answer) => answer,
    }
}

fn step_verdict(response: &Response) -> Result<(), StepAnswer> {
    let body = String::from_utf8_lossy(&response.body);
    if response.status == 200
        && let Some(error) = xml::error(&body)
    {
        // An error inside a 200: S3's way of failing a long completion.
        return Err(match error.code.as_str() {
            "InternalError" | "SlowDown" | "ServiceUnavailable" => {
                StepAnswer::Again(RetryReason::Status(500), None)
            }
            _ => StepAnswer::Failed(Error::Rejected {
                status: 200,
                message: format!("{}: {}", error.code, error.message),
            }),
        });
    }
    let verdict = refusal(response).unwrap_or_else(|| match response.status {
        200..=299 => Verdict::ServerHas(0),
        _ => generic_verdict(response),
    });
    match verdict {
        Verdict::ServerHas(_) => Ok(()),
        Verdict::Retry {
            reason,
            retry_after,
        } => Err(StepAnswer::Again(reason, retry_after)),
        Verdict::Gone(status) => Err(StepAnswer::Failed(Error::UploadGone { status })),
        Verdict::Fatal(error) => Err(StepAnswer::Failed(error)),
        _ => Err(StepAnswer::Failed(Error::Rejected {
            status: response.status,
            message: response.body_excerpt(),
        })),
    }
}

fn violation(message: String) -> Verdict {
    Verdict::Fatal(Error::ProtocolViolation(message))
}

/// The few elements of S3's XML the client reads. S3's answers are flat
/// documents without attributes or CDATA in these elements; entities are
/// decoded (SeaweedFS escapes the ETag's quotes as `&#34;`).
pub(crate) mod xml {
    use super::UploadedPart;

    /// An S3 `<Error>`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct S3Error {
        pub code: String,
        pub message: String,
    }

    /// A page of a ListParts answer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct PartsPage {
        pub parts: Vec<UploadedPart>,
        pub truncated: bool,
        pub next_marker: Option<u32>,
    }

    /// The contents of each `<tag>…</tag>` in `doc`, in order.
    pub(crate) fn elements<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let mut found = Vec::new();
        let mut rest = doc;
        while let Some(start) = rest.find(&open) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(&close) else { break };
            found.push(&after[..end]);
            rest = &after[end + close.len()..];
        }
        found
    }

    /// The decoded text of the first `<tag>` in `doc`.
    pub(crate) fn text(doc: &str, tag: &str) -> Option<String> {
        elements(doc, tag).first().map(|t| unescape(t.trim()))
    }

    /// The `<Error>` of an S3 answer, if it is one.
    pub(crate) fn error(doc: &str) -> Option<S3Error> {
        let error = *elements(doc, "Error").first()?;
        Some(S3Error {
            code: text(error, "Code").unwrap_or_default(),
            message: text(error, "Message").unwrap_or_default(),
        })
    }

    /// A ListParts answer; `None` when it is not one.
    pub(crate) fn list_parts(doc: &str) -> Option<PartsPage> {
        if !doc.contains("<ListPartsResult") {
            return None;
        }
        let parts = elements(doc, "Part")
            .into_iter()
            .filter_map(|part| {
                Some(UploadedPart {
                    number: text(part, "PartNumber")?.parse().ok()?,
                    size: text(part, "Size")?.parse().ok()?,
                    etag: text(part, "ETag")?,
                })
            })
            .collect();
        Some(PartsPage {
            parts,
            truncated: text(doc, "IsTruncated").is_some_and(|t| t == "true"),
            next_marker: text(doc, "NextPartNumberMarker").and_then(|m| m.parse().ok()),
        })
    }

    /// XML text with the five predefined entities and numeric references
    /// decoded (an unknown one is kept as it is).
    pub(crate) fn unescape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let tail = &rest[amp..];
            let Some(semi) = tail.find(';') else {
                out.push_str(tail);
                return out;
            };
            let entity = &tail[1..semi];
            let decoded = match entity {
                "quot" => Some('"'),
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            match decoded {
                Some(c) => out.push(c),
                None => out.push_str(&tail[..=semi]),
            }
            rest = &tail[semi + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Text made safe as XML element content.
    pub(crate) fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>uploads</Bucket><Key>a</Key><UploadId>U</UploadId>
<Part><PartNumber>1</PartNumber><LastModified>x</LastModified><ETag>&#34;aa&#34;</ETag><Size>5242880</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag><Size>5242880</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>&quot;b2&quot;</ETag><Size>5242880</Size></Part>
<Part><PartNumber>3</PartNumber><ETag>"cc"</ETag><Size>7</Size></Part>
<IsTruncated>false</IsTruncated></ListPartsResult>"#;

    #[test]
    fn listing_gives_the_leading_parts_each_once() {
        let page = xml::list_parts(LISTING).expect("a listing");
        assert_eq!(page.parts.len(), 4);
        assert_eq!(page.parts[0].etag, "\"aa\"");
        let mut s3 = S3::new(PartWindow::ALL);
        let ok = Response::status(200).with_body(LISTING);
        // Part 2 is listed twice: it is sent again, from its start.
        assert_eq!(s3.on_status(&ok), Verdict::ServerHas(5_242_880));
        assert_eq!(s3.parts().len(), 1);
        assert_eq!(s3.part_number_at(5_242_880), 2);
        // A window that starts at part 3 holds its first part.
        let mut later = S3::new(PartWindow {
            first: 3,
            count: 2,
            last: true,
        });
        assert_eq!(later.on_status(&ok), Verdict::ServerHas(7));
        assert!(later.status_query().ends_with("part-number-marker=2"));
    }

    #[test]
    fn long_listings_are_paged() {
        let mut s3 = S3::new(PartWindow::ALL);
        let first = Response::status(200).with_body(
            "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>e1</ETag><Size>5</Size></Part>\
             <IsTruncated>true</IsTruncated><NextPartNumberMarker>1</NextPartNumberMarker></ListPartsResult>",
        );
        assert_eq!(s3.on_status(&first), Verdict::AskAgain);
        assert!(s3.status_query().ends_with("part-number-marker=1"));
        let second = Response::status(200).with_body(
            "<ListPartsResult><Part><PartNumber>2</PartNumber><ETag>e2</ETag><Size>5</Size></Part>\
             <IsTruncated>false</IsTruncated></ListPartsResult>",
        );
        assert_eq!(s3.on_status(&second), Verdict::ServerHas(10));
        assert!(s3.status_query().ends_with("part-number-marker=0"));
    }

    #[test]
    fn parts_need_an_etag_and_expired_urls_are_signed_again() {
        let mut s3 = S3::new(PartWindow::ALL);
        let range = ByteRange { start: 0, end: 5 };
        assert!(matches!(
            s3.on_chunk(&Response::status(200), range),
            Verdict::Fatal(Error::ServerSetup(_))
        ));
        let ok = Response::status(200).with_header("ETag", "\"e\"");
        assert_eq!(s3.on_chunk(&ok, range), Verdict::ServerHas(5));
        let expired = Response::status(403).with_body(
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        );
        assert!(matches!(
            s3.on_chunk(&expired, range),
            Verdict::Retry {
                reason: RetryReason::SignatureExpired,
                ..
            }
        ));
        let wrong = Response::status(403)
            .with_body("<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>");
        assert!(matches!(
            s3.on_chunk(&wrong, range),
            Verdict::Fatal(Error::Rejected { status: 403, .. })
        ));
        assert_eq!(
            s3.on_chunk(&Response::status(404), range),
            Verdict::Gone(404)
        );
    }

    #[test]
    fn create_and_complete_answers() {
        let created = Response::status(200).with_body(
            "<InitiateMultipartUploadResult><UploadId>abc_def</UploadId></InitiateMultipartUploadResult>",
        );
        assert_eq!(
            on_create(&created),
            StepAnswer::Done(Some("abc_def".into()))
        );
        assert!(matches!(
            on_create(&Response::status(200)),
            StepAnswer::Failed(Error::ProtocolViolation(_))
        ));
        let late_error = Response::status(200)
            .with_body("<Error><Code>InternalError</Code><Message>x</Message></Error>");
        assert!(matches!(on_complete(&late_error), StepAnswer::Again(..)));
        assert_eq!(
            on_complete(&Response::status(200).with_body("<CompleteMultipartUploadResult/>")),
            StepAnswer::Done(None)
        );
        assert!(matches!(
            on_complete(&Response::status(404)),
            StepAnswer::Failed(Error::UploadGone { status: 404 })
        ));
        let body = complete_body(&[UploadedPart {
            number: 1,
            size: 5,
            etag: "\"a&b\"".into(),
        }]);
        assert_eq!(
            String::from_utf8(body).unwrap_or_default(),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a&amp;b\"</ETag></Part></CompleteMultipartUpload>"
        );
    }

    #[test]
    fn entities() {
        assert_eq!(
            xml::unescape("&#34;a&#x27;&amp;&lt;&unknown;"),
            "\"a'&<&unknown;"
        );
        assert_eq!(xml::unescape("tail &"), "tail &");
    }
}
