//! tus 1.0 and the IETF draft through the same engine: one scripted exchange
//! per rule, so each extension has a test that fails without it.
#![allow(clippy::unwrap_used)]

mod support;

use chunkup_core::{
    Capabilities, ChecksumAlgorithm, ChunkSizing, Concat, Error, Event, IetfVersion, Input, Method,
    RequestKind, RequestSpec, ResolvedProtocol, Response, RetryReason, UploadConfig,
};
use support::Harness;

const TUS: &str = "http://127.0.0.1:9/tus";
const IETF: &str = "http://127.0.0.1:9/ietf";

fn tus_caps(extensions: &[&str]) -> Capabilities {
    Capabilities {
        protocol: ResolvedProtocol::Tus,
        extensions: extensions.iter().map(|e| e.to_string()).collect(),
        ..Capabilities::default()
    }
}

fn tus_config(total: u64, chunk: u64, caps: Capabilities) -> UploadConfig {
    UploadConfig::create(TUS, total)
        .speaking(caps)
        .with_settings(|s| {
            s.chunking = ChunkSizing::Fixed(chunk);
            s.file_name = "clip.mp4".into();
            s.content_type = "video/mp4".into();
            s.metadata = vec![("owner".into(), "ana".into())];
        })
}

fn offset_of(spec: &RequestSpec) -> u64 {
    spec.header("Upload-Offset").unwrap().parse().unwrap()
}

fn tus_ok(offset: u64) -> Response {
    Response::status(204)
        .with_header("Tus-Resumable", "1.0.0")
        .with_header("Upload-Offset", offset.to_string())
}

/// Answers PATCHes with the offset after the whole body, until done.
fn finish_tus(h: &mut Harness) -> Vec<RequestSpec> {
    let mut seen = Vec::new();
    while let Some(request) = h.next_request() {
        let response = match request.kind {
            RequestKind::Chunk => tus_ok(request.body.unwrap().end),
            RequestKind::Status => tus_ok(h.upload.acknowledged()),
            other => panic!("unexpected {other:?}"),
        };
        h.respond(&request, response);
        seen.push(request);
    }
    seen
}

#[test]
fn tus_creates_then_patches() {
    let mut h = Harness::new(tus_config(25, 10, tus_caps(&["creation", "termination"])));
    let create = h.expect_request();
    assert_eq!(create.method, Method::Post);
    assert_eq!(create.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(create.header("Upload-Length"), Some("25"));
    assert_eq!(
        create.header("Upload-Metadata"),
        Some("filename Y2xpcC5tcDQ=,filetype dmlkZW8vbXA0,owner YW5h")
    );
    assert_eq!(create.body, None);
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/x"),
    );

    let patches = finish_tus(&mut h);
    assert_eq!(patches.len(), 3);
    for patch in &patches {
        assert_eq!(patch.method, Method::Patch);
        assert_eq!(patch.url, "http://127.0.0.1:9/tus/x");
        assert_eq!(
            patch.header("Content-Type"),
            Some("application/offset+octet-stream")
        );
        assert_eq!(offset_of(patch), patch.body.unwrap().start);
        assert_eq!(
            patch.header("Upload-Length"),
            None,
            "length was given at creation"
        );
        assert_eq!(patch.checksum, None, "the server offered no checksum");
    }
    assert!(h.completed());
}

#[test]
fn creation_with_upload_sends_a_small_file_in_one_request() {
    let caps = tus_caps(&["creation", "creation-with-upload"]);
    let mut h = Harness::new(tus_config(8, 100, caps));
    let create = h.expect_request();
    assert_eq!(create.kind, RequestKind::Create);
    assert_eq!(create.body.map(|b| (b.start, b.end)), Some((0, 8)));
    assert_eq!(
        create.header("Content-Type"),
        Some("application/offset+octet-stream")
    );
    h.respond(
        &create,
        Response::status(201)
            .with_header("Location", "/tus/small")
            .with_header("Upload-Offset", "8"),
    );
    assert!(h.next_request().is_none());
    assert!(h.completed());
    // Without the extension the data waits for a PATCH.
    let mut plain = Harness::new(tus_config(8, 100, tus_caps(&["creation"])));
    assert_eq!(plain.expect_request().body, None);
}

#[test]
fn deferred_length_that_is_a_multiple_of_the_chunk_size_does_not_hang() {
    let caps = tus_caps(&["creation", "creation-defer-length"]);
    let mut h = Harness::new(UploadConfig {
        total_size: None,
        ..tus_config(0, 10, caps)
    });
    let create = h.expect_request();
    assert_eq!(create.header("Upload-Defer-Length"), Some("1"));
    assert_eq!(create.header("Upload-Length"), None);
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/s"),
    );
    // The stream holds exactly 20 bytes: two full chunks, then the end.
    for expected in [0, 10] {
        let patch = h.expect_request();
        assert_eq!(offset_of(&patch), expected);
        assert_eq!(patch.body.unwrap().len(), 10);
        h.respond(&patch, tus_ok(expected + 10));
    }
    let probe = h.expect_request();
    assert_eq!(offset_of(&probe), 20);
    h.input(Input::SourceEnded {
        id: probe.id,
        at: 20,
    });
    let last = h.expect_request();
    assert_eq!(last.header("Upload-Length"), Some("20"));
    assert_eq!(
        last.body.unwrap().len(),
        0,
        "an empty PATCH announces the length"
    );
    h.respond(&last, tus_ok(20));
    assert!(h.next_request().is_none());
    assert!(h.completed());
}

#[test]
fn deferred_length_ending_mid_chunk_sends_the_rest_with_the_length() {
    let caps = tus_caps(&["creation", "creation-defer-length"]);
    let mut h = Harness::new(UploadConfig {
        total_size: None,
        ..tus_config(0, 10, caps)
    });
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/s"),
    );
    let first = h.expect_request();
    h.input(Input::SourceEnded {
        id: first.id,
        at: 7,
    });
    let again = h.expect_request();
    assert_eq!(again.body.map(|b| (b.start, b.end)), Some((0, 7)));
    assert_eq!(again.header("Upload-Length"), Some("7"));
    h.respond(&again, tus_ok(7));
    assert!(h.completed());
}

#[test]
fn unknown_length_needs_a_protocol_that_can_defer_it() {
    let config = UploadConfig {
        total_size: None,
        ..tus_config(0, 10, tus_caps(&["creation"]))
    };
    assert!(matches!(
        chunkup_core::Upload::new(config),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn checksum_uses_the_strongest_algorithm_and_460_resends() {
    let caps = Capabilities {
        checksum: Some(ChecksumAlgorithm::Sha256),
        ..tus_caps(&["creation", "checksum"])
    };
    let mut h = Harness::new(tus_config(20, 10, caps.clone()).with_settings(|s| s.checksum = true));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/c"),
    );
    let patch = h.expect_request();
    assert_eq!(patch.checksum, Some(ChecksumAlgorithm::Sha256));
    h.respond(&patch, Response::status(460));
    let resend = h.expect_request();
    assert_eq!(offset_of(&resend), 0);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Retrying {
            reason: RetryReason::ChecksumMismatch,
            ..
        }
    )));
    // Off (the default): no checksum.
    let mut off = Harness::new(tus_config(20, 10, caps).with_settings(|s| s.checksum = false));
    let create = off.expect_request();
    off.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/c"),
    );
    assert_eq!(off.expect_request().checksum, None);
}

#[test]
fn conflict_409_asks_the_offset_then_continues_there() {
    let mut h = Harness::new(tus_config(30, 10, tus_caps(&["creation"])));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/r"),
    );
    let patch = h.expect_request();
    h.respond(&patch, Response::status(409));
    let head = h.expect_request();
    assert_eq!(head.method, Method::Head);
    assert_eq!(head.header("Tus-Resumable"), Some("1.0.0"));
    h.respond(&head, tus_ok(4).with_header("Upload-Length", "30"));
    assert_eq!(offset_of(&h.expect_request()), 4);
}

#[test]
fn locked_423_is_retried_after_a_backoff() {
    let mut h = Harness::new(tus_config(30, 10, tus_caps(&["creation"])));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/r"),
    );
    let patch = h.expect_request();
    h.respond(&patch, Response::status(423));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Retrying {
            reason: RetryReason::Status(423),
            ..
        }
    )));
    assert_eq!(h.expect_request().method, Method::Head);
}

#[test]
fn resuming_a_vanished_or_expired_upload_starts_a_new_one() {
    for status in [404, 410] {
        let mut h = Harness::new(UploadConfig {
            upload_url: Some("http://127.0.0.1:9/tus/old".into()),
            ..tus_config(30, 10, tus_caps(&["creation"]))
        });
        let head = h.expect_request();
        assert_eq!(head.url, "http://127.0.0.1:9/tus/old");
        h.respond(&head, Response::status(status));
        assert_eq!(h.expect_request().kind, RequestKind::Create, "{status}");
    }
}

#[test]
fn expiration_is_reported_and_makes_records_unresumable() {
    let mut h = Harness::new(tus_config(30, 10, tus_caps(&["creation", "expiration"])));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201)
            .with_header("Location", "/tus/e")
            .with_header("Upload-Expires", "Wed, 25 Jun 2031 16:00:00 GMT"),
    );
    let at = h
        .events
        .iter()
        .find_map(|e| match e {
            Event::Expires { at_unix_ms } => Some(*at_unix_ms),
            _ => None,
        })
        .unwrap();
    assert_eq!(at, 1_940_169_600_000);
    let record = chunkup_core::ResumeRecord {
        expires_ms: Some(at),
        ..chunkup_core::ResumeRecord::new(
            "ab",
            "http://127.0.0.1:9/tus/e",
            ResolvedProtocol::Tus,
            30,
            0,
        )
    };
    assert!(record.is_resumable(at - 3_600_000));
    assert!(!record.is_resumable(at));
}

#[test]
fn termination_deletes_with_the_tus_header() {
    let mut h = Harness::new(tus_config(30, 10, tus_caps(&["creation", "termination"])));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/t"),
    );
    let _patch = h.expect_request();
    h.input(Input::Terminate);
    let delete = h.expect_request();
    assert_eq!(delete.method, Method::Delete);
    assert_eq!(delete.header("Tus-Resumable"), Some("1.0.0"));
    h.respond(&delete, Response::status(204));
    assert!(h.events.contains(&Event::Terminated));
    // Without the extension there is nothing to send.
    let mut h = Harness::new(tus_config(30, 10, tus_caps(&["creation"])));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/t"),
    );
    let _patch = h.expect_request();
    h.input(Input::Terminate);
    assert!(h.next_request().is_none());
    assert!(h.events.contains(&Event::Terminated));
}

#[test]
fn max_size_and_version_mismatch_are_refused() {
    let caps = Capabilities {
        max_size: Some(10),
        ..tus_caps(&["creation"])
    };
    assert!(matches!(
        chunkup_core::Upload::new(tus_config(30, 10, caps)),
        Err(Error::Rejected { status: 413, .. })
    ));
    let mut h = Harness::new(tus_config(30, 10, tus_caps(&["creation"])));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(412).with_header("Tus-Version", "0.2.2"),
    );
    assert!(
        matches!(h.failure(), Some(Error::Rejected { status: 412, message }) if message.contains("0.2.2"))
    );
}

#[test]
fn concatenation_final_joins_the_parts() {
    let parts = vec![
        "http://127.0.0.1:9/tus/a".to_string(),
        "http://127.0.0.1:9/tus/b".to_string(),
    ];
    let mut h = Harness::new(UploadConfig {
        concat: Concat::Final(parts),
        ..tus_config(30, 10, tus_caps(&["creation", "concatenation"]))
    });
    let create = h.expect_request();
    assert_eq!(
        create.header("Upload-Concat"),
        Some("final;http://127.0.0.1:9/tus/a http://127.0.0.1:9/tus/b")
    );
    assert_eq!(create.header("Upload-Length"), None);
    assert_eq!(create.body, None);
    let metadata = create.header("Upload-Metadata").unwrap_or_default();
    assert!(
        metadata.contains("filename Y2xpcC5tcDQ=") && metadata.contains("owner YW5h"),
        "the final upload carries the file's metadata: {metadata}"
    );
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/tus/final"),
    );
    assert!(h.next_request().is_none());
    assert!(h.completed());

    let mut part = Harness::new(UploadConfig {
        concat: Concat::Partial,
        ..tus_config(30, 10, tus_caps(&["creation", "concatenation"]))
    });
    let create = part.expect_request();
    assert_eq!(create.header("Upload-Concat"), Some("partial"));
    assert_eq!(create.header("Upload-Metadata"), None);
}

fn ietf_config(total: u64, chunk: u64, version: IetfVersion) -> UploadConfig {
    UploadConfig::create(IETF, total)
        .speaking(Capabilities::assumed(ResolvedProtocol::Ietf))
        .with_settings(|s| {
            s.ietf_version = version;
            s.chunking = ChunkSizing::Fixed(chunk);
        })
}

fn ietf_ok(offset: u64, complete: bool) -> Response {
    Response::status(204)
        .with_header("Upload-Offset", offset.to_string())
        .with_header("Upload-Complete", if complete { "?1" } else { "?0" })
}

#[test]
fn ietf_creates_then_appends_with_upload_complete_on_the_last() {
    for (version, interop) in [(IetfVersion::Interop8, "8"), (IetfVersion::Interop6, "6")] {
        let mut h = Harness::new(ietf_config(25, 10, version));
        let create = h.expect_request();
        assert_eq!(create.method, Method::Post);
        assert_eq!(create.header("Upload-Draft-Interop-Version"), Some(interop));
        assert_eq!(create.header("Upload-Complete"), Some("?0"));
        assert_eq!(create.header("Upload-Length"), Some("25"));
        assert_eq!(create.body, None);
        h.respond(
            &create,
            Response::status(201)
                .with_header("Location", "/ietf/u")
                .with_header("Upload-Offset", "0"),
        );
        let mut completes = Vec::new();
        while let Some(patch) = h.next_request() {
            assert_eq!(patch.method, Method::Patch);
            assert_eq!(
                patch.header("Content-Type"),
                Some("application/partial-upload")
            );
            assert_eq!(patch.header("Upload-Draft-Interop-Version"), Some(interop));
            completes.push(patch.header("Upload-Complete").unwrap().to_string());
            let end = patch.body.unwrap().end;
            h.respond(&patch, ietf_ok(end, end == 25));
        }
        assert_eq!(completes, ["?0", "?0", "?1"]);
        assert!(h.completed());
    }
}

#[test]
fn ietf_small_file_travels_in_the_creation_request() {
    let mut h = Harness::new(ietf_config(5, 10, IetfVersion::Interop8));
    let create = h.expect_request();
    assert_eq!(create.header("Upload-Complete"), Some("?1"));
    assert_eq!(create.body.map(|b| b.len()), Some(5));
    // -11 need not send Upload-Offset: the engine asks.
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/ietf/s"),
    );
    let head = h.expect_request();
    assert_eq!(head.method, Method::Head);
    h.respond(&head, ietf_ok(5, true).with_header("Upload-Length", "5"));
    assert!(h.completed());
}

#[test]
fn ietf_409_carries_the_offset_and_upload_limit_bounds_appends() {
    let mut h = Harness::new(ietf_config(100, 50, IetfVersion::Interop8));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(201)
            .with_header("Location", "/ietf/l")
            .with_header("Upload-Offset", "0")
            .with_header("Upload-Limit", "max-size=1000, max-append-size=20"),
    );
    let patch = h.expect_request();
    assert_eq!(patch.body.unwrap().len(), 20, "max-append-size");
    h.respond(
        &patch,
        Response::status(409).with_header("Upload-Offset", "7"),
    );
    let next = h.expect_request();
    assert_eq!(offset_of(&next), 7);
    // A 413 shrinks appends further.
    h.respond(&next, Response::status(413));
    assert_eq!(h.expect_request().body.unwrap().len(), 10);
}
