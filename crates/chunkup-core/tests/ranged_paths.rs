//! Every status-code path of the ranged protocol, one scripted exchange each.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use chunkup_core::{
    ChunkSizing, Error, Event, Input, Method, RequestKind, Response, RetryPolicy, RetryReason,
    UploadConfig,
};
use support::{Harness, created, ok_lkb, range_of};

const ENDPOINT: &str = "http://127.0.0.1:9/ranged";

fn config(total: u64, chunk: u64) -> UploadConfig {
    UploadConfig::create(ENDPOINT, total).with_settings(|s| {
        s.chunking = ChunkSizing::Fixed(chunk);
        s.file_name = "movie.mp4".into();
        s.content_type = "video/mp4".into();
        s.seed = 1;
    })
}

/// Creates the upload and returns the harness ready for the first chunk.
fn created_upload(total: u64, chunk: u64) -> Harness {
    let mut h = Harness::new(config(total, chunk));
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    h
}

#[test]
fn create_then_chunks_with_content_range_then_complete() {
    let mut h = Harness::new(config(25, 10));
    let create = h.expect_request();
    assert_eq!(create.kind, RequestKind::Create);
    assert_eq!(create.method, Method::Post);
    assert_eq!(create.url, ENDPOINT);
    assert_eq!(create.header("X-Upload-Content-Length"), Some("25"));
    assert_eq!(create.body, None);
    h.respond(&create, created("/ranged/abc"));

    let mut ranges = Vec::new();
    while let Some(chunk) = h.next_request() {
        assert_eq!(chunk.url, "http://127.0.0.1:9/ranged/abc");
        assert_eq!(chunk.kind, RequestKind::Chunk);
        assert_eq!(
            chunk.header("Content-Disposition"),
            Some("attachment; filename=\"movie.mp4\"")
        );
        assert_eq!(chunk.header("Content-Type"), Some("video/mp4"));
        let (s, e, t) = range_of(&chunk);
        let body = chunk.body.unwrap();
        assert_eq!((body.start, body.end - 1), (s, e));
        ranges.push((s, e, t));
        h.respond(&chunk, Response::status(201));
    }
    assert_eq!(ranges, vec![(0, 9, 25), (10, 19, 25), (20, 24, 25)]);
    assert!(h.completed());
    assert_eq!(h.upload.acknowledged(), 25);
    assert!(h.events.contains(&Event::Created {
        upload_url: "http://127.0.0.1:9/ranged/abc".into()
    }));
}

#[test]
fn last_known_byte_on_success_decides_where_to_continue() {
    let mut h = created_upload(30, 10);
    let first = h.expect_request();
    // The server stored only 0..=4 of the chunk.
    h.respond(&first, ok_lkb(4));
    let second = h.expect_request();
    assert_eq!(range_of(&second).0, 5);
}

#[test]
fn last_known_byte_zero_is_a_value_not_absent() {
    let mut h = created_upload(30, 10);
    let first = h.expect_request();
    h.respond(&first, ok_lkb(0));
    let second = h.expect_request();
    assert_eq!(range_of(&second).0, 1, "LKB 0 means byte 0 is stored");
}

#[test]
fn status_poll_minus_one_means_nothing_stored() {
    let mut h = Harness::new(
        UploadConfig::resume("http://127.0.0.1:9/ranged/abc", 30)
            .with_settings(|s| s.chunking = ChunkSizing::Fixed(10)),
    );
    let status = h.expect_request();
    assert_eq!(status.kind, RequestKind::Status);
    assert_eq!(status.method, Method::Get);
    h.respond(&status, ok_lkb(-1).with_body(""));
    assert!(h.events.contains(&Event::ResumedAt { offset: 0 }));
    let chunk = h.expect_request();
    assert_eq!(range_of(&chunk).0, 0);
}

#[test]
fn status_body_is_the_fallback_when_the_header_is_missing() {
    let mut h = Harness::new(
        UploadConfig::resume("http://127.0.0.1:9/ranged/abc", 30)
            .with_settings(|s| s.chunking = ChunkSizing::Fixed(10)),
    );
    let status = h.expect_request();
    h.respond(&status, Response::status(200).with_body("0-14/30"));
    let chunk = h.expect_request();
    assert_eq!(range_of(&chunk).0, 15);
}

#[test]
fn resuming_a_complete_upload_sends_nothing() {
    let mut h = Harness::new(UploadConfig::resume("http://127.0.0.1:9/ranged/abc", 30));
    let status = h.expect_request();
    h.respond(&status, ok_lkb(29));
    assert!(h.next_request().is_none());
    assert!(h.completed());
}

#[test]
fn hole_after_failover_416_with_lkb_resends_from_the_hole() {
    let mut h = created_upload(50, 10);
    for _ in 0..3 {
        let chunk = h.expect_request();
        let (_, e, _) = range_of(&chunk);
        h.respond(&chunk, ok_lkb(e as i64));
    }
    // The server failed over and lost 15..30.
    let chunk = h.expect_request();
    assert_eq!(range_of(&chunk).0, 30);
    h.respond(
        &chunk,
        Response::status(416).with_header("X-Last-Known-Byte", "14"),
    );
    let resend = h.expect_request();
    assert_eq!(range_of(&resend).0, 15);
    // Progress never went backwards while bytes were re-sent.
    let progress = h.progress_values();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(h.upload.acknowledged(), 30);
}

#[test]
fn hole_reported_on_a_200_is_honoured_too() {
    let mut h = created_upload(50, 10);
    let chunk = h.expect_request();
    h.respond(&chunk, ok_lkb(9));
    let chunk = h.expect_request();
    h.respond(&chunk, ok_lkb(4));
    let resend = h.expect_request();
    assert_eq!(range_of(&resend).0, 5);
}

#[test]
fn status_416_without_lkb_steps_back_one_chunk() {
    let mut h = created_upload(50, 10);
    for _ in 0..2 {
        let chunk = h.expect_request();
        h.respond(&chunk, Response::status(200));
    }
    let chunk = h.expect_request();
    assert_eq!(range_of(&chunk).0, 20);
    h.respond(&chunk, Response::status(416));
    let back = h.expect_request();
    assert_eq!(range_of(&back).0, 10);
}

#[test]
fn duplicated_ack_is_harmless() {
    let mut h = created_upload(30, 10);
    let first = h.expect_request();
    h.respond(&first, ok_lkb(9));
    // A stale duplicate of the same answer for an old request id is ignored.
    h.respond(&first, ok_lkb(9));
    let second = h.expect_request();
    assert_eq!(range_of(&second).0, 10);
    // An ack that repeats the previous offset stores nothing new: resend.
    h.respond(&second, ok_lkb(9));
    let again = h.expect_request();
    assert_eq!(range_of(&again).0, 10);
    h.respond(&again, ok_lkb(19));
    let third = h.expect_request();
    h.respond(&third, ok_lkb(29));
    assert!(h.completed());
}

#[test]
fn retryable_statuses_back_off_then_poll_status_before_resending() {
    for status in [500, 502, 503, 504, 408, 429, 423] {
        let mut h = created_upload(30, 10);
        let chunk = h.expect_request();
        h.respond(&chunk, Response::status(status));
        let before = h.now;
        let poll = h.expect_request();
        assert_eq!(poll.kind, RequestKind::Status, "after {status}");
        assert!(h.now >= before);
        h.respond(&poll, ok_lkb(-1));
        let resend = h.expect_request();
        assert_eq!(range_of(&resend).0, 0);
        h.respond(&resend, ok_lkb(9));
        assert!(h.failure().is_none());
    }
}

#[test]
fn transport_error_breaks_then_polls_status() {
    let mut h = created_upload(30, 10);
    let chunk = h.expect_request();
    h.input(Input::BodySent {
        id: chunk.id,
        bytes: 6,
    });
    h.break_connection(&chunk);
    let poll = h.expect_request();
    assert_eq!(poll.kind, RequestKind::Status);
    // The server kept the 6 bytes that arrived before the break.
    h.respond(&poll, ok_lkb(5));
    let resend = h.expect_request();
    assert_eq!(range_of(&resend).0, 6);
}

#[test]
fn retry_after_is_honoured_and_clamped() {
    let mut h = created_upload(30, 10);
    let chunk = h.expect_request();
    h.respond(
        &chunk,
        Response::status(503).with_header("Retry-After", "7"),
    );
    assert!(h.retry_delays()[0] >= Duration::from_secs(7));
    let t0 = h.now;
    let poll = h.expect_request();
    assert!(h.now.saturating_since(t0) >= Duration::from_secs(7));
    h.respond(&poll, ok_lkb(-1));

    let chunk = h.expect_request();
    h.respond(
        &chunk,
        Response::status(429).with_header("Retry-After", "999999999"),
    );
    let delay = *h.retry_delays().last().unwrap();
    assert_eq!(delay, RetryPolicy::default().max_retry_after);
}

#[test]
fn a_502_status_502_loop_ends_within_the_budget() {
    let policy = RetryPolicy {
        max_attempts: 5,
        ..RetryPolicy::default()
    };
    let mut h = Harness::new(config(30, 10).with_settings(|s| s.retry = policy));
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    let mut chunks = 0;
    while let Some(request) = h.next_request() {
        match request.kind {
            RequestKind::Chunk => {
                chunks += 1;
                h.respond(&request, Response::status(502));
            }
            // The status always says nothing moved.
            _ => h.respond(&request, ok_lkb(-1)),
        }
        assert!(chunks <= 6, "the loop must end");
    }
    assert_eq!(chunks, 6, "1 try + 5 retries");
    match h.failure() {
        Some(Error::RetriesExhausted { attempts, last }) => {
            assert_eq!(*attempts, 6);
            assert!(last.contains("502"), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
}

#[test]
fn the_budget_refills_only_when_the_offset_advances() {
    let policy = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let mut h = Harness::new(config(40, 10).with_settings(|s| s.retry = policy));
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    // Each chunk fails twice, then succeeds: 2 failures per advance is
    // within a budget of 2, so the upload completes.
    while let Some(request) = h.next_request() {
        match request.kind {
            RequestKind::Status => {
                let held = h.upload.acknowledged();
                h.respond(&request, ok_lkb(held as i64 - 1));
            }
            _ => {
                let failures = h
                    .events
                    .iter()
                    .rev()
                    .take_while(|e| !matches!(e, Event::ChunkAcknowledged { .. }))
                    .filter(|e| matches!(e, Event::Retrying { .. }))
                    .count();
                if failures < 2 {
                    h.respond(&request, Response::status(500));
                } else {
                    let (_, e, _) = range_of(&request);
                    h.respond(&request, ok_lkb(e as i64));
                }
            }
        }
    }
    assert!(h.completed(), "{:?}", h.failure());
}

#[test]
fn backoff_grows_exponentially_with_jitter_under_the_cap() {
    let policy = RetryPolicy {
        max_attempts: 30,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let mut h = Harness::new(config(30, 10).with_settings(|s| s.retry = policy));
    for _ in 0..30 {
        let Some(request) = h.next_request() else {
            break;
        };
        h.break_connection(&request);
    }
    let delays = h.retry_delays();
    assert!(delays.len() >= 20);
    assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
    let distinct: std::collections::HashSet<_> = delays.iter().collect();
    assert!(distinct.len() > delays.len() / 2, "jitter varies delays");
    let late_mean: f64 = delays[10..20]
        .iter()
        .map(Duration::as_secs_f64)
        .sum::<f64>()
        / 10.0;
    let early_mean: f64 = delays[0..3].iter().map(Duration::as_secs_f64).sum::<f64>() / 3.0;
    assert!(late_mean > early_mean, "{early_mean} vs {late_mean}");
}

#[test]
fn deadline_ends_the_upload() {
    let policy = RetryPolicy {
        deadline: Some(Duration::from_secs(60)),
        max_attempts: 1000,
        ..RetryPolicy::default()
    };
    let mut h = Harness::new(config(30, 10).with_settings(|s| s.retry = policy));
    while let Some(request) = h.next_request() {
        h.break_connection(&request);
    }
    assert!(matches!(h.failure(), Some(Error::DeadlineExceeded { .. })));
    assert!(h.now <= chunkup_core::Instant::from_elapsed(Duration::from_secs(61)));
}

#[test]
fn stall_aborts_the_request_and_polls_status() {
    let mut h = created_upload(30, 10);
    let chunk = h.expect_request();
    h.input(Input::BodySent {
        id: chunk.id,
        bytes: 3,
    });
    // No answer: the harness lets simulated time run to the stall timeout.
    let poll = h.expect_request();
    assert_eq!(poll.kind, RequestKind::Status);
    assert_eq!(h.aborted, vec![chunk.id]);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Retrying {
            reason: RetryReason::Stalled,
            ..
        }
    )));
    assert!(h.now >= chunkup_core::Instant::from_elapsed(RetryPolicy::default().stall_timeout));
}

#[test]
fn upload_gone_on_resume_starts_a_new_upload_when_an_endpoint_is_known() {
    let mut h = Harness::new(UploadConfig {
        endpoint: Some(ENDPOINT.into()),
        ..UploadConfig::resume("http://127.0.0.1:9/ranged/old", 30)
    });
    let status = h.expect_request();
    h.respond(&status, Response::status(404));
    let create = h.expect_request();
    assert_eq!(create.kind, RequestKind::Create);
    h.respond(&create, created("/ranged/new"));
    let chunk = h.expect_request();
    assert_eq!(chunk.url, "http://127.0.0.1:9/ranged/new");
    assert_eq!(range_of(&chunk).0, 0);
}

#[test]
fn upload_gone_without_an_endpoint_is_a_typed_error() {
    let mut h = Harness::new(UploadConfig::resume("http://127.0.0.1:9/ranged/old", 30));
    let status = h.expect_request();
    h.respond(&status, Response::status(410));
    assert!(h.next_request().is_none());
    assert_eq!(h.failure(), Some(&Error::UploadGone { status: 410 }));
}

#[test]
fn client_errors_are_rejections_with_the_server_message() {
    let mut h = created_upload(30, 10);
    let chunk = h.expect_request();
    h.respond(&chunk, Response::status(400).with_body("bad Content-Range"));
    assert!(h.next_request().is_none());
    assert_eq!(
        h.failure(),
        Some(&Error::Rejected {
            status: 400,
            message: "bad Content-Range".into()
        })
    );
    let mut h = Harness::new(config(30, 10));
    let create = h.expect_request();
    h.respond(&create, Response::status(403));
    assert!(matches!(
        h.failure(),
        Some(Error::Rejected { status: 403, .. })
    ));
}

#[test]
fn payload_too_large_shrinks_the_chunk() {
    let mut h = created_upload(64, 32);
    let chunk = h.expect_request();
    assert_eq!(chunk.body.unwrap().len(), 32);
    h.respond(&chunk, Response::status(413));
    let smaller = h.expect_request();
    assert_eq!(smaller.body.unwrap().len(), 16);
    assert_eq!(range_of(&smaller).0, 0);
}

#[test]
fn create_without_location_is_a_protocol_violation() {
    let mut h = Harness::new(config(30, 10));
    let create = h.expect_request();
    h.respond(&create, Response::status(201));
    assert!(matches!(h.failure(), Some(Error::ProtocolViolation(_))));
}

#[test]
fn empty_file_completes_after_create() {
    let mut h = Harness::new(config(0, 10));
    let create = h.expect_request();
    h.respond(&create, created("/ranged/empty"));
    assert!(h.next_request().is_none());
    assert!(h.completed());
}

#[test]
fn pause_aborts_and_resume_polls_status() {
    let mut h = created_upload(30, 10);
    let chunk = h.expect_request();
    h.input(Input::Pause);
    assert!(h.next_request().is_none());
    assert_eq!(h.aborted, vec![chunk.id]);
    assert!(h.events.contains(&Event::Paused));
    h.input(Input::Resume);
    let poll = h.expect_request();
    assert_eq!(poll.kind, RequestKind::Status);
}

#[test]
fn terminate_removes_the_upload_on_the_server() {
    let mut h = created_upload(30, 10);
    let chunk = h.expect_request();
    h.input(Input::Terminate);
    let delete = h.expect_request();
    assert_eq!(delete.kind, RequestKind::Terminate);
    assert_eq!(delete.method, Method::Delete);
    assert_eq!(delete.url, "http://127.0.0.1:9/ranged/abc");
    assert_eq!(h.aborted, vec![chunk.id]);
    h.respond(&delete, Response::status(204));
    assert!(h.next_request().is_none());
    assert!(h.events.contains(&Event::Terminated));
}

#[test]
fn stop_ends_at_once_and_keeps_the_upload() {
    let mut h = Harness::new(config(30, 10));
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    let chunk = h.expect_request();
    h.input(Input::Stop);
    assert!(h.next_request().is_none(), "no DELETE: the upload is kept");
    assert_eq!(h.aborted, vec![chunk.id]);
    assert!(h.events.contains(&Event::Stopped));
    // A late answer changes nothing.
    h.respond(&chunk, ok_lkb(9));
    assert!(h.next_request().is_none());
    assert!(!h.completed());
}

#[test]
fn invalid_urls_are_typed_errors() {
    for url in ["not a url", "ftp://host/x", "file:///etc/passwd", "http://"] {
        let result = chunkup_core::Upload::new(UploadConfig::create(url, 10));
        assert!(
            matches!(result, Err(Error::InvalidUrl { .. })),
            "{url}: {result:?}"
        );
    }
    let config = UploadConfig {
        endpoint: None,
        ..UploadConfig::create(ENDPOINT, 1)
    };
    assert!(matches!(
        chunkup_core::Upload::new(config),
        Err(Error::InvalidConfig(_))
    ));
}

/// `onShouldRetry`: the application is asked before each retry after a
/// failure; a "no" ends the upload with a typed error, a "yes" backs off.
#[test]
fn the_application_decides_each_retry() {
    let mut h = Harness::new(config(30, 10).with_settings(|s| s.ask_before_retry = true));
    let create = h.expect_request();
    h.respond(&create, created("/ranged/abc"));
    let chunk = h.expect_request();
    h.respond(&chunk, Response::status(503));
    // No request until the application answers.
    assert!(h.next_request().is_none());
    assert!(!h.events.iter().any(|e| matches!(e, Event::Retrying { .. })));
    h.input(Input::RetryAnswer { retry: true });
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Retrying { attempt: 1, .. }))
    );
    let poll = h.expect_request();
    assert_eq!(poll.kind, RequestKind::Status);
    h.respond(&poll, Response::status(503));
    h.input(Input::RetryAnswer { retry: false });
    assert!(h.next_request().is_none());
    assert!(matches!(
        h.failure(),
        Some(Error::RetryDeclined { attempt: 2, .. })
    ));
}

/// A header provider that can refresh: a 401 is sent again once with fresh
/// credentials; a second refusal in a row is final; success allows the next
/// refresh (a token expiring again later in a long upload).
#[test]
fn refused_credentials_are_refreshed_once_in_a_row() {
    let mut h = Harness::new(config(30, 10).with_settings(|s| s.refresh_credentials = true));
    let create = h.expect_request();
    assert!(!create.refresh_credentials);
    h.respond(&create, created("/ranged/abc"));
    let chunk = h.expect_request();
    h.respond(&chunk, Response::status(401));
    let again = h.expect_request();
    assert!(again.refresh_credentials, "asks for fresh credentials");
    assert_eq!(again.body, chunk.body);
    h.respond(&again, ok_lkb(9));
    let next = h.expect_request();
    assert!(!next.refresh_credentials);
    // Expired again later: refreshed again.
    h.respond(&next, Response::status(403));
    let refreshed = h.expect_request();
    assert!(refreshed.refresh_credentials);
    h.respond(&refreshed, Response::status(403));
    assert!(h.next_request().is_none());
    assert!(matches!(
        h.failure(),
        Some(Error::Rejected { status: 403, .. })
    ));
    // Without a provider a 401 is final at once.
    let mut h = Harness::new(config(30, 10));
    let create = h.expect_request();
    h.respond(&create, Response::status(401));
    assert!(h.next_request().is_none());
    assert!(matches!(
        h.failure(),
        Some(Error::Rejected { status: 401, .. })
    ));
}
