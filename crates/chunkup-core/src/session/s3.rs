//! The session's side of an S3 multipart upload: the requests that belong
//! to the whole object (create, complete, abort) and the split of the
//! object into windows of bytes and part numbers that engines send in
//! parallel (each window's parts are the engine's chunks, see
//! `protocol/s3.rs`).

use std::time::Duration;

use crate::protocol::{
    PartWindow, StepAnswer, UploadedPart, complete_body, on_complete, on_s3_create,
};
use crate::retry::RetryState;
use crate::{
    ByteRange, Error, Instant, Method, RequestId, RequestKind, RequestSpec, Response, RetryPolicy,
    RetryReason, S3Action, SignRequest, TransportError, UploadSettings,
};

/// S3 numbers parts 1 to 10,000.
const MAX_PARTS: u32 = 10_000;
/// S3's largest object: a multipart upload of more is refused at completion,
/// after every byte was sent.
pub(super) const MAX_OBJECT: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Every part but the object's last is at least 5 MiB: so is every window.
const MIN_PART: u64 = 5 * 1024 * 1024;

/// Which object-wide request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// CreateMultipartUpload.
    Create,
    /// CompleteMultipartUpload with these parts, in order.
    Complete(Vec<UploadedPart>),
    /// AbortMultipartUpload (terminate).
    Abort,
}

/// What an exchange concluded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Concluded {
    /// Done; a create gives the upload id.
    Done(Option<String>),
    /// Send it again after this delay.
    Again(Duration, RetryReason),
    /// The upload cannot go on.
    Failed(Error),
}

/// One object-wide request, sent until it is answered for good.
#[derive(Debug)]
pub(super) struct Exchange {
    pub step: Step,
    pub in_flight: Option<(RequestId, Instant)>,
    pub ask_at: Option<Instant>,
    retry: RetryState,
    policy: RetryPolicy,
}

impl Exchange {
    pub(super) fn new(step: Step, settings: &UploadSettings) -> Self {
        Exchange {
            step,
            in_flight: None,
            ask_at: None,
            retry: RetryState::new(&settings.retry, settings.seed),
            policy: settings.retry.clone(),
        }
    }

    /// The request, to the object (`create`) or to its multipart upload.
    pub(super) fn request(
        &self,
        id: RequestId,
        object_url: &str,
        upload_url: Option<&str>,
        settings: &UploadSettings,
    ) -> RequestSpec {
        let upload_id = upload_url.and_then(upload_id_of);
        let (method, url, action, payload, kind) = match &self.step {
            Step::Create => (
                Method::Post,
                with_query(object_url, "uploads"),
                S3Action::CreateMultipartUpload,
                None,
                RequestKind::Create,
            ),
            Step::Complete(parts) => (
                Method::Post,
                upload_url.unwrap_or(object_url).to_string(),
                S3Action::CompleteMultipartUpload,
                Some(complete_body(parts)),
                RequestKind::Chunk,
            ),
            Step::Abort => (
                Method::Delete,
                upload_url.unwrap_or(object_url).to_string(),
                S3Action::AbortMultipartUpload,
                None,
                RequestKind::Terminate,
            ),
        };
        let mut headers = match &self.step {
            Step::Create => vec![("Content-Type".to_string(), settings.content_type.clone())],
            Step::Complete(_) => vec![("Content-Type".to_string(), "application/xml".to_string())],
            Step::Abort => Vec::new(),
        };
        for (name, value) in &settings.headers {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                headers.push((name.clone(), value.clone()));
            }
        }
        RequestSpec {
            id,
            kind,
            method,
            url,
            headers,
            body: None,
            checksum: None,
            new_connection: false,
            refresh_credentials: false,
            payload,
            signing: Some(SignRequest {
                action,
                upload_id,
                part_number: None,
            }),
        }
    }

    /// What an answer (or its absence) means.
    pub(super) fn conclude(&mut self, answer: Result<&Response, &TransportError>) -> Concluded {
        let answer = match answer {
            Ok(response) => match &self.step {
                Step::Create => on_s3_create(response),
                Step::Complete(_) => on_complete(response),
                // Whatever the server says, the upload is to be forgotten.
                Step::Abort => StepAnswer::Done(None),
            },
            Err(_) if self.step == Step::Abort => StepAnswer::Done(None),
            Err(error) => StepAnswer::Again(RetryReason::Transport(error.clone()), None),
        };
        match answer {
            StepAnswer::Done(id) => Concluded::Done(id),
            StepAnswer::Failed(error) => Concluded::Failed(error),
            StepAnswer::Again(reason, retry_after) => {
                if !self.retry.record_failure(&self.policy) {
                    return Concluded::Failed(Error::RetriesExhausted {
                        attempts: self.retry.failures,
                        last: reason.to_string(),
                    });
                }
                let floor = retry_after
                    .map(|d| d.min(self.policy.max_retry_after))
                    .unwrap_or_default();
                Concluded::Again(self.retry.next_delay(floor), reason)
            }
        }
    }
}

/// The windows an object of `total` bytes is sent in, with at most
/// `parallel` of them: each at least 5 MiB (its last part may then be that
/// small), with an equal share of the 10,000 part numbers.
pub(super) fn windows(total: u64, parallel: usize) -> Vec<(ByteRange, PartWindow)> {
    let most = (total / MIN_PART).clamp(1, 100);
    let count = (parallel.max(1) as u64).min(most);
    let size = total.div_ceil(count).max(1);
    let numbers = MAX_PARTS / count as u32;
    (0..count)
        .map(|i| {
            let range = ByteRange {
                start: (i * size).min(total),
                end: ((i + 1) * size).min(total),
            };
            let window = PartWindow {
                first: i as u32 * numbers + 1,
                count: numbers,
                last: i + 1 == count,
            };
            (range, window)
        })
        .collect()
}

/// `url` with `query` added to its query string.
pub(super) fn with_query(url: &str, query: &str) -> String {
    let (base, fragment) = url.split_once('#').unwrap_or((url, ""));
    let joined = match base.split_once('?') {
        Some((_, existing)) if !existing.is_empty() => format!("{base}&{query}"),
        Some((path, _)) => format!("{path}?{query}"),
        None => format!("{base}?{query}"),
    };
    if fragment.is_empty() {
        joined
    } else {
        format!("{joined}#{fragment}")
    }
}

/// The multipart upload's URL: the object's, with `uploadId` (and nothing
/// else) as its query.
pub(super) fn upload_url(object_url: &str, upload_id: &str) -> String {
    let base = object_url.split(['?', '#']).next().unwrap_or(object_url);
    format!("{base}?uploadId={}", encode(upload_id))
}

/// The object's URL: the upload's without its query.
pub(super) fn object_url(upload_url: &str) -> String {
    upload_url
        .split(['?', '#'])
        .next()
        .unwrap_or(upload_url)
        .to_string()
}

/// The `uploadId` of a multipart upload's URL.
pub(super) fn upload_id_of(upload_url: &str) -> Option<String> {
    let query = upload_url.split_once('?')?.1.split('#').next()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("uploadId="))
        .map(crate::url::percent_decode)
}

/// Percent-encodes what is not unreserved (RFC 3986).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn windows_are_big_enough_and_share_the_part_numbers() {
        let one = windows(3 * MIB, 4);
        assert_eq!(one.len(), 1, "too small to split");
        assert_eq!(one[0].1, PartWindow::ALL);
        let four = windows(100 * MIB + 1, 4);
        assert_eq!(four.len(), 4);
        assert_eq!(four[0].0.start, 0);
        assert_eq!(four[3].0.end, 100 * MIB + 1);
        assert!(four.windows(2).all(|w| w[0].0.end == w[1].0.start));
        assert!(four.iter().all(|(r, _)| r.len() >= 5 * MIB));
        assert_eq!(four[1].1.first, 2501);
        assert_eq!(four[3].1.count, 2500);
        assert!(four[3].1.last && !four[2].1.last);
        assert_eq!(windows(0, 4).len(), 1);
    }

    #[test]
    fn upload_urls() {
        let url = upload_url("http://h:1/b/a%20b.mp4?x=1", "id/+=1");
        assert_eq!(url, "http://h:1/b/a%20b.mp4?uploadId=id%2F%2B%3D1");
        assert_eq!(upload_id_of(&url).as_deref(), Some("id/+=1"));
        assert_eq!(object_url(&url), "http://h:1/b/a%20b.mp4");
        assert_eq!(with_query("http://h/k", "uploads"), "http://h/k?uploads");
        assert_eq!(
            with_query("http://h/k?a=1", "uploads"),
            "http://h/k?a=1&uploads"
        );
    }
}
