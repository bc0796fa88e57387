//! Hostile or buggy server answers end in a typed error or a safe choice,
//! never in a corrupt upload.
#![allow(clippy::unwrap_used)]

mod support;

use chunkup_core::{ChunkSizing, Error, RequestKind, Response, RetryPolicy, UploadConfig};
use support::{Harness, created, ok_lkb, range_of};

fn created_upload(total: u64, chunk: u64) -> Harness {
    let mut h = Harness::new(
        UploadConfig::create("http://127.0.0.1:9/ranged", total)
            .with_settings(|s| s.chunking = ChunkSizing::Fixed(chunk)),
    );
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    h
}

fn assert_violation(h: &Harness) {
    assert!(
        matches!(h.failure(), Some(Error::ProtocolViolation(_))),
        "{:?}",
        h.failure()
    );
    assert!(!h.completed());
}

#[test]
fn lkb_beyond_what_was_sent_is_refused() {
    let mut h = created_upload(100, 10);
    let chunk = h.expect_request();
    h.respond(&chunk, ok_lkb(50));
    assert!(h.next_request().is_none());
    assert_violation(&h);
}

#[test]
fn lkb_claiming_the_whole_file_after_one_chunk_is_refused() {
    let mut h = created_upload(100, 10);
    let chunk = h.expect_request();
    // "Complete!" after 10 bytes would be a silently corrupt upload.
    h.respond(&chunk, ok_lkb(99));
    assert!(h.next_request().is_none());
    assert_violation(&h);
}

#[test]
fn negative_and_garbage_lkb_are_refused() {
    for garbage in ["-2", "-100", "abc", "", "1e9", "9999999999999999999999"] {
        let mut h = created_upload(100, 10);
        let chunk = h.expect_request();
        h.respond(
            &chunk,
            Response::status(200).with_header("X-Last-Known-Byte", garbage),
        );
        assert!(h.next_request().is_none());
        assert_violation(&h);
    }
}

#[test]
fn status_beyond_total_is_refused() {
    let mut h = Harness::new(UploadConfig::resume("http://127.0.0.1:9/ranged/x", 100));
    let status = h.expect_request();
    h.respond(&status, ok_lkb(100));
    assert!(h.next_request().is_none());
    assert_violation(&h);
}

#[test]
fn status_body_with_another_total_is_refused() {
    let mut h = Harness::new(UploadConfig::resume("http://127.0.0.1:9/ranged/x", 100));
    let status = h.expect_request();
    h.respond(&status, Response::status(200).with_body("0-9/5000"));
    assert!(h.next_request().is_none());
    assert_violation(&h);
}

#[test]
fn an_offset_that_keeps_moving_backwards_ends_in_a_typed_error() {
    let mut h = Harness::new(
        UploadConfig::create("http://127.0.0.1:9/ranged", 100).with_settings(|s| {
            s.chunking = ChunkSizing::Fixed(10);
            s.retry = RetryPolicy {
                max_attempts: 4,
                ..RetryPolicy::default()
            };
        }),
    );
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    let mut sent = 0;
    while let Some(request) = h.next_request() {
        sent += 1;
        assert!(sent < 100, "must end");
        let (s, _, _) = range_of(&request);
        // Acknowledge the chunk, then claim to have lost it again: the
        // offset keeps going back to 5.
        let lkb = if s < 20 { s as i64 + 9 } else { 4 };
        h.respond(&request, ok_lkb(lkb));
    }
    assert!(
        matches!(h.failure(), Some(Error::RetriesExhausted { last, .. }) if last.contains("moved back")),
        "{:?}",
        h.failure()
    );
}

#[test]
fn cross_origin_location_gets_no_credentials() {
    let mut h = Harness::new(
        UploadConfig::create("http://127.0.0.1:9/ranged", 10).with_settings(|s| {
            s.headers = vec![
                ("Authorization".into(), "Bearer secret".into()),
                ("X-Trace".into(), "1".into()),
            ]
        }),
    );
    let create = h.expect_request();
    assert_eq!(create.header("Authorization"), Some("Bearer secret"));
    h.respond(&create, created("http://127.0.0.2:9/ranged/stolen"));
    let chunk = h.expect_request();
    assert_eq!(chunk.kind, RequestKind::Chunk);
    assert_eq!(chunk.header("Authorization"), None);
    assert_eq!(chunk.header("X-Trace"), Some("1"));
}

#[test]
fn non_http_location_is_refused() {
    let mut h = Harness::new(UploadConfig::create("http://127.0.0.1:9/ranged", 10));
    let create = h.expect_request();
    h.respond(&create, created("file:///etc/passwd"));
    assert!(h.next_request().is_none());
    assert!(matches!(h.failure(), Some(Error::InvalidUrl { .. })));
}

/// Found by fuzzing (`upload_machine`): a tus creation answered `460` (or a
/// `409`) asked the engine to resend a chunk of an upload that did not exist
/// yet, and it panicked for want of a URL. It is a refusal.
#[test]
fn chunk_only_answers_to_a_creation_are_refusals() {
    for status in [409, 460] {
        let mut h = Harness::new(UploadConfig::create("http://127.0.0.1:9/tus", 10).speaking(
            chunkup_core::Capabilities {
                protocol: chunkup_core::ResolvedProtocol::Tus,
                ..Default::default()
            },
        ));
        let create = h.expect_request();
        assert_eq!(create.kind, RequestKind::Create);
        h.respond(&create, Response::status(status));
        assert!(h.next_request().is_none());
        assert!(
            matches!(h.failure(), Some(Error::Rejected { status: s, .. }) if *s == status),
            "{status}: {:?}",
            h.failure()
        );
    }
}

/// Found by fuzzing (`upload_machine`): a driver reporting more body bytes
/// than the chunk holds overflowed the progress arithmetic. The count is
/// capped at the chunk; progress never passes the file.
#[test]
fn body_sent_beyond_the_chunk_is_capped() {
    let mut h = created_upload(100, 10);
    let chunk = h.expect_request();
    h.input(chunkup_core::Input::BodySent {
        id: chunk.id,
        bytes: u64::MAX,
    });
    h.respond(&chunk, ok_lkb(9));
    let next = h.expect_request();
    assert_eq!(range_of(&next).0, 10);
    assert!(h.progress_values().iter().all(|&p| p <= 100));
}

/// Found by fuzzing (`upload_machine`): a stream whose server lost its newest
/// bytes, then a source claiming to end before bytes it had already
/// produced, made an upload "complete" at a size below what was acknowledged.
/// Such a source is refused with a typed error.
#[test]
fn a_stream_cannot_end_before_acknowledged_bytes() {
    let mut h = Harness::new(
        UploadConfig::create_stream("http://127.0.0.1:9/ietf")
            .speaking(chunkup_core::Capabilities::assumed(
                chunkup_core::ResolvedProtocol::Ietf,
            ))
            .with_settings(|s| s.chunking = ChunkSizing::Fixed(10)),
    );
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/ietf/a"),
    );
    let first = h.expect_request();
    assert_eq!(first.body.map(|r| r.end), Some(10));
    h.respond(
        &first,
        Response::status(204).with_header("Upload-Offset", "10"),
    );
    let second = h.expect_request();
    // The server lost five bytes.
    h.respond(
        &second,
        Response::status(204).with_header("Upload-Offset", "5"),
    );
    let refill = h.expect_request();
    assert_eq!(refill.body.map(|r| r.start), Some(5));
    h.input(chunkup_core::Input::SourceEnded {
        id: refill.id,
        at: 5,
    });
    assert!(h.next_request().is_none());
    assert!(!h.completed());
    assert!(
        matches!(h.failure(), Some(Error::InvalidConfig(_))),
        "{:?}",
        h.failure()
    );
}

/// Found by the chaos soak: the last IETF append arrived whole but its
/// answer was lost (the server crashed before recording completion). The
/// offset answer then shows every byte held but `Upload-Complete: ?0`: the
/// upload is not complete until an (empty) append says `?1`.
#[test]
fn ietf_all_bytes_held_but_incomplete_is_finished_with_an_empty_append() {
    let mut h = Harness::new(
        UploadConfig::create("http://127.0.0.1:9/ietf", 20)
            .speaking(chunkup_core::Capabilities::assumed(
                chunkup_core::ResolvedProtocol::Ietf,
            ))
            .with_settings(|s| s.chunking = ChunkSizing::Fixed(10)),
    );
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/ietf/a"),
    );
    let first = h.expect_request();
    h.respond(
        &first,
        Response::status(204).with_header("Upload-Offset", "10"),
    );
    let last = h.expect_request();
    assert_eq!(last.header("Upload-Complete"), Some("?1"));
    h.break_connection(&last);
    let status = h.expect_request();
    assert_eq!(status.kind, RequestKind::Status);
    h.respond(
        &status,
        Response::status(204)
            .with_header("Upload-Offset", "20")
            .with_header("Upload-Length", "20")
            .with_header("Upload-Complete", "?0"),
    );
    assert!(!h.completed(), "every byte held is not complete");
    let finish = h.expect_request();
    assert_eq!(finish.kind, RequestKind::Chunk);
    assert_eq!(finish.body.map(|r| (r.start, r.end)), Some((20, 20)));
    assert_eq!(finish.header("Upload-Complete"), Some("?1"));
    h.respond(
        &finish,
        Response::status(204)
            .with_header("Upload-Offset", "20")
            .with_header("Upload-Complete", "?1"),
    );
    assert!(h.completed());
}
