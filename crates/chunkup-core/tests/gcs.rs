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
    let mut h = Harness::new(gcs(UploadConfig::create(ENDPOINT, 25), 10));
    let init = h.expect_request();
    assert_eq!(init.kind, RequestKind::Create);
    assert_eq!(init.method, Method::Post);
    assert_eq!(init.header("X-Upload-Content-Length"), Some("25"));
    assert_eq!(init.header("X-Upload-Content-Type"), Some("video/mp4"));
    assert_eq!(init.body, None);
    h.respond(
        &init,
        Response::status(200).with_header("Location", SESSION),
    );

    let first = h.expect_request();
    assert_eq!(first.method, Method::Put);
    assert_eq!(first.url, SESSION);
    assert_eq!(content_range(&first), "bytes 0-9/25");
    h.respond(&first, incomplete(10));
    let second = h.expect_request();
    assert_eq!(content_range(&second), "bytes 10-19/25");
    // The server kept only part of it: the rest is sent again.
    h.respond(&second, incomplete(15));
    let third = h.expect_request();
    assert_eq!(content_range(&third), "bytes 15-24/25");
    h.respond(&third, Response::status(200));
    assert!(h.next_request().is_none());
    assert!(h.completed());
    assert_eq!(h.upload.acknowledged(), 25);
}

#[test]
fn a_given_session_is_asked_with_a_status_query_first() {
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 30), 10));
    let status = h.expect_request();
    assert_eq!(status.kind, RequestKind::Status);
    assert_eq!(status.method, Method::Put);
    assert_eq!(content_range(&status), "bytes */30");
    assert_eq!(status.body, None);
    h.respond(&status, incomplete(20));
    assert!(h.events.contains(&Event::ResumedAt { offset: 20 }));
    let chunk = h.expect_request();
    assert_eq!(content_range(&chunk), "bytes 20-29/30");
}

#[test]
fn a_308_without_range_after_a_break_means_nothing_is_held() {
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 20), 10));
    let status = h.expect_request();
    h.respond(&status, incomplete(10));
    let chunk = h.expect_request();
    h.break_connection(&chunk);
    let poll = h.expect_request();
    assert_eq!(poll.kind, RequestKind::Status);
    h.respond(&poll, Response::status(308));
    let again = h.expect_request();
    assert_eq!(content_range(&again), "bytes 0-9/20");
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ServerRewound { from: 10, to: 0 }))
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
    let mut h = Harness::new(gcs(UploadConfig::resume(SESSION, 10), 10));
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
    let mut h = Harness::new(gcs(UploadConfig::create_stream(ENDPOINT), 10));
    let init = h.expect_request();
    assert_eq!(init.header("X-Upload-Content-Length"), None);
    h.respond(
        &init,
        Response::status(200).with_header("Location", SESSION),
    );
    let first = h.expect_request();
    assert_eq!(content_range(&first), "bytes 0-9/*");
    h.respond(&first, incomplete(10));
    let second = h.expect_request();
    // The source ends at 14: the chunk is planned again with the length.
    h.input(chunkup_core::Input::SourceEnded {
        id: second.id,
        at: 14,
    });
    let last = h.expect_request();
    assert_eq!(content_range(&last), "bytes 10-13/14");
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
