//! Google-style resumable sessions through the engine: one scripted
//! exchange per rule of the protocol.
#![allow(clippy::unwrap_used)]

mod support;

use chunkup_core::{
    Capabilities, ChunkSizing, Error, Event, Method, RequestKind, RequestSpec, ResolvedProtocol,
    Response, UploadConfig,
};
use support::Harness;

const ENDPOINT: &str = "http://127.0.0.1:9/upload/storage/v1/b/b/o?uploadType=resumable&name=x";
const SESSION: &str = "http://127.0.0.1:9/upload/storage/v1/b/b/o?upload_id=abc";
/// The protocol's granularity: chunks but the last are multiples of it.
const U: u64 = 256 * 1024;

/// `Content-Range` of bytes `[s, e)` of `total` (`None`: unknown yet).
fn cr(s: u64, e: u64, total: Option<u64>) -> String {
    let total = total.map_or_else(|| "*".to_string(), |t| t.to_string());
    format!("bytes {s}-{}/{total}", e - 1)
}

fn gcs(config: UploadConfig, chunk: u64) -> UploadConfig {
    config
        .speaking(Capabilities::assumed(ResolvedProtocol::Gcs))
        .with_settings(|s| {
            s.chunking = ChunkSizing::Fixed(chunk);
            s.content_type = "video/mp4".into();
        })
}

fn incomplete(held: u64) -> Response {
    match held {
        0 => Response::status(308),
        n => Response::status(308).with_header("Range", format!("bytes=0-{}", n - 1)),
    }
}

fn content_range(spec: &RequestSpec) -> &str {
    spec.header("Content-Range").unwrap()
}

#[test]
fn initiate_then_chunks_with_308_then_done() {
    let total = 2 * U + 5;
    let mut h = Harness::new(gcs(UploadConfig::create(ENDPOINT, total), U));
    let init = h.expect_request();
    assert_eq!(init.kind, RequestKind::Create);
    assert_eq!(init.method, Method::Post);
    assert_eq!(
        init.header("X-Upload-Content-Length"),
        Some(total.to_string().as_str())
    );
    assert_eq!(init.header("X-Upload-Content-Type"), Some("video/mp4"));
    assert_eq!(init.body, None);
    h.respond(
        &init,
        Response::status(200).with_header("Location", SESSION),
    );

    let first = h.expect_request();
    assert_eq!(first.method, Method::Put);
    assert_eq!(first.url, SESSION);
    assert_eq!(content_range(&first), cr(0, U, Some(total)));
    h.respond(&first, incomplete(U));
    let second = h.expect_request();
    assert_eq!(content_range(&second), cr(U, 2 * U, Some(total)));
    // The server kept none of it: it is sent again.
    h.respond(&second, incomplete(U));
    let again = h.expect_request();
    assert_eq!(content_range(&again), cr(U, 2 * U, Some(total)));
    h.respond(&again, incomplete(2 * U));
    let last = h.expect_request();
    assert_eq!(content_range(&last), cr(2 * U, total, Some(total)));
    h.respond(&last, Response::status(200));
    assert!(h.next_request().is_none());
    assert!(h.completed());
    assert_eq!(h.upload.acknowledged(), total);
}

#[test]
fn a_given_session_is_asked_with_a_status_query_first() {
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 3 * U), U));
    let status = h.expect_request();
    assert_eq!(status.kind, RequestKind::Status);
    assert_eq!(status.method, Method::Put);
    assert_eq!(content_range(&status), format!("bytes */{}", 3 * U));
    assert_eq!(status.body, None);
    h.respond(&status, incomplete(2 * U));
    assert!(h.events.contains(&Event::ResumedAt { offset: 2 * U }));
    let chunk = h.expect_request();
    assert_eq!(content_range(&chunk), cr(2 * U, 3 * U, Some(3 * U)));
}

#[test]
fn a_308_without_range_after_a_break_means_nothing_is_held() {
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 2 * U), U));
    let status = h.expect_request();
    h.respond(&status, incomplete(U));
    let chunk = h.expect_request();
    h.break_connection(&chunk);
    let poll = h.expect_request();
    assert_eq!(poll.kind, RequestKind::Status);
    h.respond(&poll, Response::status(308));
    let again = h.expect_request();
    assert_eq!(content_range(&again), cr(0, U, Some(2 * U)));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ServerRewound { from, to: 0 } if *from == U))
    );
}

#[test]
fn a_session_that_is_gone_starts_over_or_fails() {
    for status in [404, 410] {
        let mut h = Harness::new(gcs(
            UploadConfig {
                endpoint: Some(ENDPOINT.into()),
                ..UploadConfig::resume(SESSION, 20)
            },
            10,
        ));
        let poll = h.expect_request();
        h.respond(&poll, Response::status(status));
        let init = h.expect_request();
        assert_eq!(init.kind, RequestKind::Create, "{status}: a new session");

        let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 20), 10));
        let poll = h.expect_request();
        h.respond(&poll, Response::status(status));
        assert!(h.next_request().is_none());
        assert!(
            matches!(h.failure(), Some(Error::UploadGone { .. })),
            "{status}"
        );
    }
}

#[test]
fn a_308_holding_every_byte_is_finished_by_a_status_query() {
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 10), U));
    let status = h.expect_request();
    h.respond(&status, incomplete(0));
    let chunk = h.expect_request();
    h.respond(&chunk, incomplete(10));
    // Every byte held, but the session is still open: finish it.
    let finish = h.expect_request();
    assert_eq!(content_range(&finish), "bytes */10");
    assert_eq!(finish.body.map(|r| r.len()), Some(0));
    assert!(!h.completed());
    h.respond(&finish, Response::status(201));
    assert!(h.completed());
}

#[test]
fn a_stream_sends_star_until_its_end() {
    let mut h = Harness::new(gcs(UploadConfig::create_stream(ENDPOINT), U));
    let init = h.expect_request();
    assert_eq!(init.header("X-Upload-Content-Length"), None);
    h.respond(
        &init,
        Response::status(200).with_header("Location", SESSION),
    );
    let first = h.expect_request();
    assert_eq!(content_range(&first), cr(0, U, None));
    h.respond(&first, incomplete(U));
    let second = h.expect_request();
    // The source ends at U + 4: the chunk is planned again with the length.
    h.input(chunkup_core::Input::SourceEnded {
        id: second.id,
        at: U + 4,
    });
    let last = h.expect_request();
    assert_eq!(content_range(&last), cr(U, U + 4, Some(U + 4)));
    h.respond(&last, Response::status(200));
    assert!(h.completed());
}

#[test]
fn terminate_deletes_the_session() {
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 20), 10));
    let status = h.expect_request();
    h.respond(&status, incomplete(0));
    let _chunk = h.expect_request();
    h.input(chunkup_core::Input::Terminate);
    let delete = h.expect_request();
    assert_eq!(delete.method, Method::Delete);
    assert_eq!(delete.url, SESSION);
    h.respond(&delete, Response::status(499));
    assert!(h.events.contains(&Event::Terminated));
}

#[test]
fn chunks_are_multiples_of_256_kib_but_the_last() {
    const KIB: u64 = 1024;
    let total = 3 * 1024 * KIB + 5;
    // An odd fixed size is rounded to the protocol's granularity.
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, total), 700 * KIB));
    let status = h.expect_request();
    h.respond(&status, incomplete(0));
    let mut sizes = Vec::new();
    while let Some(chunk) = h.next_request() {
        let range = chunk.body.unwrap();
        sizes.push(range.len());
        let response = if range.end == total {
            Response::status(200)
        } else {
            incomplete(range.end)
        };
        h.respond(&chunk, response);
    }
    assert!(h.completed());
    let (last, rest) = sizes.split_last().unwrap();
    assert!(rest.iter().all(|s| s % (256 * KIB) == 0), "{sizes:?}");
    assert!(*last > 0 && sizes.iter().sum::<u64>() == total);
}
