//! The session layer with a simulated clock: identity, continuation,
//! persistence, discovery, parallel parts, outcomes and the two controls.
//! Each of the faults the session layer was built to end has a test here
//! (the same faults are also tested against real servers and platforms).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use chunkup_core::session::{Outcome, SessionConfig, SessionInput, SourceInfo};
use chunkup_core::{
    ChunkSizing, Error, Event, IetfVersion, Method, Protocol, RequestKind, RequestSpec,
    ResolvedProtocol, Response, ResumeRecord, TransportErrorKind,
};
use support::session::SessionHarness;
use support::{created, ok_lkb};

const ENDPOINT: &str = "http://127.0.0.1:9/files";

fn file(size: u64) -> SourceInfo {
    SourceInfo {
        size: Some(size),
        name: Some("/home/ana/clip.mp4".into()),
        modified_ms: Some(1_700_000_000_000),
        fingerprint: None,
    }
}

fn config(protocol: Protocol, source: SourceInfo) -> SessionConfig {
    let mut config = SessionConfig::new(ENDPOINT, protocol, source);
    config.settings.chunking = ChunkSizing::Fixed(10);
    config.settings.seed = 1;
    config.wall_clock_ms = 1_800_000_000_000;
    config
}

fn tus_ok(offset: u64) -> Response {
    Response::status(204)
        .with_header("Tus-Resumable", "1.0.0")
        .with_header("Upload-Offset", offset.to_string())
}

fn tus_options(extensions: &str) -> Response {
    Response::status(204)
        .with_header("Tus-Version", "1.0.0")
        .with_header("Tus-Extension", extensions)
}

/// Answers every request as a well-behaved server of `protocol` would,
/// until the session ends.
fn serve_to_the_end(h: &mut SessionHarness, protocol: ResolvedProtocol) {
    for _ in 0..1000 {
        let requests = h.requests();
        if requests.is_empty() {
            return;
        }
        for request in requests {
            let response = match (protocol, request.kind) {
                (ResolvedProtocol::Tus, RequestKind::Create) => Response::status(201)
                    .with_header("Location", format!("/files/{}", request.id.0)),
                (ResolvedProtocol::Tus, RequestKind::Chunk) => tus_ok(request.body.unwrap().end),
                (ResolvedProtocol::Tus, RequestKind::Status) => tus_ok(0),
                (ResolvedProtocol::Ranged, RequestKind::Create) => created("/files/r"),
                (ResolvedProtocol::Ranged, RequestKind::Chunk) => {
                    ok_lkb(request.body.unwrap().end as i64 - 1)
                }
                (ResolvedProtocol::Ranged, RequestKind::Status) => ok_lkb(-1),
                (_, RequestKind::Terminate) => Response::status(204),
                other => panic!("unexpected {other:?}: {request:?}"),
            };
            h.respond(&request, response);
        }
    }
    panic!("the session did not end");
}

fn record(key: &str, url: &str, protocol: ResolvedProtocol, total: u64) -> ResumeRecord {
    ResumeRecord {
        offset: 10,
        created_ms: 1,
        file_name: Some("clip.mp4".into()),
        endpoint: Some(ENDPOINT.into()),
        ..ResumeRecord::new(key, url, protocol, total, 1_800_000_000_000)
    }
}

// --- identity ------------------------------------------------------------

/// Fault 1 (npm): two different anonymous Blobs of one size must never
/// continue each other's upload. Without an identity the session neither
/// looks up nor writes a record.
#[test]
fn anonymous_content_is_never_matched_or_remembered() {
    let mut h = SessionHarness::new(config(Protocol::Ranged, SourceInfo::anonymous(Some(30))));
    let create = h.expect_request();
    assert_eq!(create.kind, RequestKind::Create);
    h.respond(&create, created("/files/a"));
    let chunk = h.expect_request();
    h.input(SessionInput::Stop);
    let _ = chunk;
    h.requests();
    assert_eq!(h.outcome, Some(Outcome::Stopped));
    assert!(h.store_log.is_empty(), "{:?}", h.store_log);
}

#[test]
fn a_file_continues_its_own_record_and_no_other() {
    let key = file(30).resume_key(ENDPOINT).unwrap();
    let store = HashMap::from([(
        key.clone(),
        record(
            &key,
            "http://127.0.0.1:9/files/old",
            ResolvedProtocol::Ranged,
            30,
        ),
    )]);
    let mut h = SessionHarness::with_store(config(Protocol::Auto, file(30)), store.clone());
    let status = h.expect_request();
    assert_eq!(
        status.kind,
        RequestKind::Status,
        "no discovery, no creation"
    );
    assert_eq!(status.url, "http://127.0.0.1:9/files/old");
    h.respond(&status, ok_lkb(9));
    assert!(h.events.contains(&Event::ResumedAt { offset: 10 }));
    serve_to_the_end(&mut h, ResolvedProtocol::Ranged);
    assert!(matches!(
        h.outcome,
        Some(Outcome::Completed(ref c)) if c.resumed_from == Some(10)
    ));
    assert!(h.forgot(&key) && h.store.is_empty());

    // The same name with another size or modification time is another file.
    for other in [
        file(31),
        SourceInfo {
            modified_ms: Some(5),
            ..file(30)
        },
    ] {
        let mut store = store.clone();
        let other_key = other.resume_key(ENDPOINT).unwrap();
        assert_ne!(other_key, key);
        store.insert(
            other_key.clone(),
            ResumeRecord {
                total: 30,
                ..record(
                    &other_key,
                    "http://127.0.0.1:9/files/old",
                    ResolvedProtocol::Ranged,
                    30,
                )
            },
        );
        let mut h = SessionHarness::with_store(config(Protocol::Ranged, other.clone()), store);
        let first = h.expect_request();
        if other.size == Some(31) {
            assert_eq!(first.kind, RequestKind::Create, "a record of another size");
        } else {
            assert_eq!(first.kind, RequestKind::Status);
        }
    }
}

#[test]
fn an_app_fingerprint_identifies_anonymous_content() {
    let source = SourceInfo {
        fingerprint: Some("photo-library:1234".into()),
        ..SourceInfo::anonymous(Some(30))
    };
    let mut h = SessionHarness::new(config(Protocol::Ranged, source.clone()));
    let create = h.expect_request();
    h.respond(&create, created("/files/a"));
    let key = source.resume_key(ENDPOINT).unwrap();
    assert_eq!(
        h.store_log,
        vec![format!("load {key}"), format!("persist {key}")]
    );
    let saved = &h.store[&key];
    assert_eq!(saved.upload_url, "http://127.0.0.1:9/files/a");
    assert_eq!(saved.protocol, ResolvedProtocol::Ranged);
    assert_eq!(saved.endpoint.as_deref(), Some(ENDPOINT));
    assert_eq!(saved.created_ms, 1_800_000_000_000 + 10);
}

#[test]
fn expired_or_other_protocol_records_are_not_continued() {
    let key = file(30).resume_key(ENDPOINT).unwrap();
    let expired = ResumeRecord {
        expires_ms: Some(1_800_000_000_000),
        ..record(
            &key,
            "http://127.0.0.1:9/files/old",
            ResolvedProtocol::Tus,
            30,
        )
    };
    let mut h = SessionHarness::with_store(
        config(Protocol::Tus, file(30)),
        HashMap::from([(key.clone(), expired)]),
    );
    let options = h.expect_request();
    assert_eq!(options.kind, RequestKind::Discover);
    h.respond(&options, tus_options("creation"));
    assert_eq!(h.expect_request().kind, RequestKind::Create);

    let ranged = record(
        &key,
        "http://127.0.0.1:9/files/old",
        ResolvedProtocol::Ranged,
        30,
    );
    let mut h = SessionHarness::with_store(
        config(Protocol::Tus, file(30)),
        HashMap::from([(key, ranged)]),
    );
    let options = h.expect_request();
    h.respond(&options, tus_options("creation"));
    assert_eq!(h.expect_request().kind, RequestKind::Create);
}

// --- discovery -------------------------------------------------------------

/// Fault 2: `--protocol tus` against a tus server that answers `OPTIONS`
/// with 405 must speak tus, remember the upload as tus and terminate it.
#[test]
fn a_named_protocol_survives_a_failed_discovery() {
    let mut h = SessionHarness::new(config(Protocol::Tus, file(30)));
    let options = h.expect_request();
    assert_eq!(options.method, Method::Options);
    h.respond(&options, Response::status(405));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Discovered(c) if c.protocol == ResolvedProtocol::Tus && c.assumed
    )));
    let create = h.expect_request();
    assert_eq!(create.header("Tus-Resumable"), Some("1.0.0"));
    h.respond(
        &create,
        Response::status(201).with_header("Location", "/files/t"),
    );
    let key = file(30).resume_key(ENDPOINT).unwrap();
    assert_eq!(h.store[&key].protocol, ResolvedProtocol::Tus);
    let _patch = h.expect_request();
    h.input(SessionInput::Terminate);
    let delete = h.expect_request();
    assert_eq!(delete.method, Method::Delete);
    assert_eq!(delete.url, "http://127.0.0.1:9/files/t");
    assert_eq!(delete.header("Tus-Resumable"), Some("1.0.0"));
    h.respond(&delete, Response::status(204));
    h.requests();
    assert_eq!(h.outcome, Some(Outcome::Terminated));
    assert!(h.forgot(&key) && h.store.is_empty());
}

/// Fault 2, second half: `auto` against that server guesses ranged, and the
/// creation's `412` with `Tus-Version` corrects the guess.
#[test]
fn auto_learns_tus_from_a_refused_ranged_creation() {
    let mut h = SessionHarness::new(config(Protocol::Auto, file(25)));
    let options = h.expect_request();
    h.respond(&options, Response::status(405));
    let ranged = h.expect_request();
    assert!(ranged.header("X-Upload-Content-Length").is_some());
    h.respond(
        &ranged,
        Response::status(412).with_header("Tus-Version", "1.0.0"),
    );
    let tus = h.expect_request();
    assert_eq!(tus.kind, RequestKind::Create);
    assert_eq!(tus.header("Tus-Resumable"), Some("1.0.0"));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Discovered(c) if c.protocol == ResolvedProtocol::Tus && !c.assumed
    )));
    h.respond(
        &tus,
        Response::status(201).with_header("Location", "/files/t"),
    );
    serve_to_the_end(&mut h, ResolvedProtocol::Tus);
    assert!(
        matches!(h.outcome, Some(Outcome::Completed(_))),
        "{:?}",
        h.outcome
    );
}

#[test]
fn a_named_protocol_is_not_replaced_by_a_refusal_either() {
    let mut h = SessionHarness::new(config(Protocol::Ranged, file(25)));
    let create = h.expect_request();
    h.respond(
        &create,
        Response::status(412).with_header("Tus-Version", "1.0.0"),
    );
    h.requests();
    match &h.outcome {
        Some(Outcome::Failed(error @ Error::WrongProtocol { announced, .. })) => {
            assert_eq!(*announced, ResolvedProtocol::Tus);
            assert!(error.to_string().contains("speaks tus"), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

/// Fault 4: discovery carries nothing that a browser's CORS preflight
/// against a server allowing only its own protocol's headers would refuse.
#[test]
fn discovery_sends_only_the_users_headers() {
    let mut config = config(Protocol::Auto, file(25));
    config.settings.headers = vec![("Authorization".into(), "Bearer t".into())];
    let mut h = SessionHarness::new(config);
    let options = h.expect_request();
    assert_eq!(options.kind, RequestKind::Discover);
    assert_eq!(
        options.headers,
        vec![("Authorization".to_string(), "Bearer t".to_string())]
    );
}

/// Fault 4: a request the browser blocked ends discovery at once with an
/// error that names CORS, instead of a minute of retries.
#[test]
fn a_blocked_discovery_fails_fast_and_says_cors() {
    let mut h = SessionHarness::new(config(Protocol::Auto, file(25)));
    let options = h.expect_request();
    h.fail_transport(&options, TransportErrorKind::Blocked);
    assert!(h.requests().is_empty());
    match &h.outcome {
        Some(Outcome::Failed(error @ Error::DiscoveryFailed { .. })) => {
            assert!(error.to_string().contains("CORS"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(h.now < support::at_ms(1_000));
}

#[test]
fn an_unreachable_endpoint_fails_discovery_within_seconds() {
    let mut h = SessionHarness::new(config(Protocol::Auto, file(25)));
    let mut tries = 0;
    loop {
        let requests = h.requests();
        let Some(options) = requests.first() else {
            break;
        };
        tries += 1;
        h.fail_transport(options, TransportErrorKind::Connect);
    }
    assert_eq!(tries, 3);
    assert!(matches!(
        h.outcome,
        Some(Outcome::Failed(Error::DiscoveryFailed { status: None, .. }))
    ));
    assert!(h.now < support::at_ms(15_000), "{:?}", h.now);
}

#[test]
fn auto_discovery_picks_ietf_tus_or_ranged() {
    let cases = [
        (
            Response::status(204).with_header("Accept-Patch", "application/partial-upload"),
            ResolvedProtocol::Ietf,
        ),
        (tus_options("creation"), ResolvedProtocol::Tus),
        (Response::status(405), ResolvedProtocol::Ranged),
        (Response::status(204), ResolvedProtocol::Ranged),
    ];
    for (answer, protocol) in cases {
        let mut h = SessionHarness::new(config(Protocol::Auto, file(10)));
        let options = h.expect_request();
        h.respond(&options, answer);
        let create = h.expect_request();
        assert_eq!(create.method, Method::Post);
        assert_eq!(h.session.capabilities().unwrap().protocol, protocol);
        match protocol {
            ResolvedProtocol::Tus => assert!(create.header("Tus-Resumable").is_some()),
            ResolvedProtocol::Ietf => assert!(create.header("Upload-Complete").is_some()),
            _ => assert!(create.header("X-Upload-Content-Length").is_some()),
        }
    }
}

#[test]
fn tus_discovery_learns_extensions_and_a_record_keeps_its_protocol() {
    let mut h = SessionHarness::new(config(Protocol::Auto, file(25)));
    let options = h.expect_request();
    assert_eq!(options.header("Tus-Resumable"), None, "not on OPTIONS");
    h.respond(
        &options,
        tus_options("creation,creation-with-upload,termination"),
    );
    let create = h.expect_request();
    assert_eq!(create.header("Tus-Resumable"), Some("1.0.0"));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Discovered(c) if c.has_extension("creation-with-upload") && !c.assumed
    )));

    // An IETF record is continued in its own draft version, without asking.
    let key = file(25).resume_key(ENDPOINT).unwrap();
    let ietf = ResumeRecord {
        ietf_version: Some(IetfVersion::Interop6),
        ..record(
            &key,
            "http://127.0.0.1:9/files/i",
            ResolvedProtocol::Ietf,
            25,
        )
    };
    let mut h = SessionHarness::with_store(
        config(Protocol::Auto, file(25)),
        HashMap::from([(key, ietf)]),
    );
    let status = h.expect_request();
    assert_eq!(status.method, Method::Head);
    assert_eq!(status.header("Upload-Draft-Interop-Version"), Some("6"));
}

// --- controls and outcomes ---------------------------------------------------

/// Fault 5: stopping keeps the upload and its record; terminating removes
/// both.
#[test]
fn stop_keeps_and_terminate_removes() {
    let key = file(30).resume_key(ENDPOINT).unwrap();
    let mut h = SessionHarness::new(config(Protocol::Ranged, file(30)));
    let create = h.expect_request();
    h.respond(&create, created("/files/s"));
    let chunk = h.expect_request();
    h.respond(&chunk, ok_lkb(9));
    let chunk = h.expect_request();
    h.input(SessionInput::Stop);
    assert!(h.requests().is_empty(), "no DELETE on stop");
    assert_eq!(h.aborted, vec![chunk.id]);
    assert_eq!(h.outcome, Some(Outcome::Stopped));
    assert_eq!(h.events.last(), Some(&Event::Stopped));
    assert!(!h.forgot(&key));
    assert_eq!(h.store[&key].offset, 10, "the record holds the last offset");

    // A later session continues it; terminating it removes it.
    let mut h = SessionHarness::with_store(config(Protocol::Auto, file(30)), h.store.clone());
    let status = h.expect_request();
    assert_eq!(status.url, "http://127.0.0.1:9/files/s");
    h.input(SessionInput::Terminate);
    let delete = h.expect_request();
    assert_eq!(delete.method, Method::Delete);
    h.respond(&delete, Response::status(204));
    h.requests();
    assert_eq!(h.outcome, Some(Outcome::Terminated));
    assert!(h.forgot(&key) && h.store.is_empty());
}

#[test]
fn terminate_before_anything_was_sent_removes_the_remembered_upload() {
    let key = file(30).resume_key(ENDPOINT).unwrap();
    let store = HashMap::from([(
        key.clone(),
        record(
            &key,
            "http://127.0.0.1:9/files/old",
            ResolvedProtocol::Tus,
            30,
        ),
    )]);
    let mut h = SessionHarness::with_store(config(Protocol::Auto, file(30)), store);
    h.input(SessionInput::Terminate);
    let delete = h.expect_request();
    assert_eq!(delete.method, Method::Delete);
    assert_eq!(delete.url, "http://127.0.0.1:9/files/old");
    h.respond(&delete, Response::status(204));
    h.requests();
    assert_eq!(h.outcome, Some(Outcome::Terminated));
    assert!(h.store.is_empty());

    // Nothing remembered: nothing to send.
    let mut h = SessionHarness::new(config(Protocol::Auto, file(30)));
    let options = h.expect_request();
    h.input(SessionInput::Terminate);
    assert!(h.requests().is_empty());
    assert_eq!(h.aborted, vec![options.id]);
    assert_eq!(h.outcome, Some(Outcome::Terminated));
}

#[test]
fn refusals_forget_and_passing_failures_keep_the_record() {
    let key = file(30).resume_key(ENDPOINT).unwrap();
    let mut h = SessionHarness::new(config(Protocol::Ranged, file(30)));
    let create = h.expect_request();
    h.respond(&create, created("/files/f"));
    let chunk = h.expect_request();
    h.respond(&chunk, Response::status(403));
    h.requests();
    assert!(matches!(
        h.outcome,
        Some(Outcome::Failed(Error::Rejected { status: 403, .. }))
    ));
    assert!(h.forgot(&key));

    let mut config = config(Protocol::Ranged, file(30));
    config.settings.retry.max_attempts = 1;
    let mut h = SessionHarness::new(config);
    let create = h.expect_request();
    h.respond(&create, created("/files/f"));
    for _ in 0..4 {
        let Some(request) = h.requests().pop() else {
            break;
        };
        h.respond(&request, Response::status(503));
    }
    assert!(matches!(
        h.outcome,
        Some(Outcome::Failed(Error::RetriesExhausted { .. }))
    ));
    assert!(!h.forgot(&key) && h.store.contains_key(&key));
}

#[test]
fn offsets_are_persisted_at_most_once_a_second() {
    let mut config = config(Protocol::Ranged, file(1000));
    config.settings.chunking = ChunkSizing::Fixed(10);
    let mut h = SessionHarness::new(config);
    let create = h.expect_request();
    h.respond(&create, created("/files/p"));
    assert_eq!(h.persisted(), 1, "the URL is saved at once");
    // 50 chunks, 10 ms each: half a second.
    for _ in 0..50 {
        let chunk = h.expect_request();
        h.respond(&chunk, ok_lkb(chunk.body.unwrap().end as i64 - 1));
    }
    assert_eq!(h.persisted(), 1);
    h.advance(Duration::from_secs(1));
    let chunk = h.expect_request();
    h.respond(&chunk, ok_lkb(chunk.body.unwrap().end as i64 - 1));
    h.requests();
    assert_eq!(h.persisted(), 2);
}

// --- parallel parts ------------------------------------------------------------

/// Fault 3: with parts and `auto`, discovery is the session's (with the
/// user's headers, retried when busy) and decides the protocol; an answer
/// that is not 2xx never turns into "use the ranged codec".
#[test]
fn parts_are_planned_from_a_real_discovery() {
    let size = 40 * 1024 * 1024;
    let mut config = config(Protocol::Auto, file(size));
    config.parallel = 4;
    config.settings.chunking = ChunkSizing::Fixed(4 * 1024 * 1024);
    config.settings.headers = vec![("Authorization".into(), "Bearer t".into())];
    let mut h = SessionHarness::new(config);
    let options = h.expect_request();
    assert_eq!(options.header("Authorization"), Some("Bearer t"));
    h.respond(&options, Response::status(503));
    let options = h.expect_request();
    assert_eq!(options.kind, RequestKind::Discover, "asked again");
    h.respond(&options, tus_options("creation,concatenation,termination"));
    let creations = h.requests();
    assert_eq!(creations.len(), 4, "four parts at once");
    let key = file(size).resume_key(ENDPOINT).unwrap();
    for create in &creations {
        assert_eq!(create.header("Upload-Concat"), Some("partial"));
        h.respond(
            create,
            Response::status(201).with_header("Location", format!("/files/p{}", create.id.0)),
        );
    }
    let first_chunks = h.requests();
    assert_eq!(first_chunks.len(), 4);
    let parts: Vec<ResumeRecord> = h.store.values().cloned().collect();
    assert_eq!(parts.len(), 4);
    assert!(
        parts
            .iter()
            .all(|r| r.part_of.as_deref() == Some(key.as_str()))
    );
    // Stop mid-way: every part stays remembered.
    h.input(SessionInput::Stop);
    h.requests();
    assert_eq!(h.outcome, Some(Outcome::Stopped));
    assert_eq!(h.store.len(), 4);

    // The next session continues each part, then joins them.
    let mut config2 = self::config(Protocol::Auto, file(size));
    config2.parallel = 4;
    config2.settings.chunking = ChunkSizing::Fixed(4 * 1024 * 1024);
    let mut h = SessionHarness::with_store(config2, h.store.clone());
    let options = h.expect_request();
    h.respond(&options, tus_options("creation,concatenation,termination"));
    let statuses = h.requests();
    assert_eq!(statuses.len(), 4);
    assert!(statuses.iter().all(|s| s.kind == RequestKind::Status));
    for status in &statuses {
        h.respond(status, tus_ok(0));
    }
    let mut final_create = None;
    for _ in 0..1000 {
        let requests = h.requests();
        if requests.is_empty() {
            break;
        }
        for request in requests {
            match request.kind {
                RequestKind::Chunk => h.respond(
                    &request,
                    tus_ok(request.body.unwrap().end - part_start(&h, &request)),
                ),
                RequestKind::Create => {
                    final_create = Some(request.clone());
                    h.respond(
                        &request,
                        Response::status(201).with_header("Location", "/files/final"),
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let final_create = final_create.expect("the final upload");
    assert!(
        final_create
            .header("Upload-Concat")
            .is_some_and(|v| v.starts_with("final;"))
    );
    assert!(matches!(
        &h.outcome,
        Some(Outcome::Completed(c)) if c.upload_url.as_deref() == Some("http://127.0.0.1:9/files/final")
    ));
    assert!(
        h.store.is_empty(),
        "every part forgotten: {:?}",
        h.store.keys()
    );
}

/// Where the part a chunk belongs to starts in the file (4 parts of 10 MiB).
fn part_start(_h: &SessionHarness, request: &RequestSpec) -> u64 {
    let part = 10 * 1024 * 1024;
    request.body.unwrap().start / part * part
}

#[test]
fn a_busy_or_refusing_discovery_never_becomes_a_ranged_guess_for_parts() {
    let mut config = config(Protocol::Auto, file(40 * 1024 * 1024));
    config.parallel = 4;
    let mut h = SessionHarness::new(config);
    let options = h.expect_request();
    h.respond(&options, Response::status(401));
    assert!(h.requests().is_empty());
    assert!(matches!(
        h.outcome,
        Some(Outcome::Failed(Error::DiscoveryFailed {
            status: Some(401),
            ..
        }))
    ));
}

// --- IETF completion at creation -------------------------------------------------

/// Fault 7: a strict draft -11 server completes an upload sent whole in the
/// creation request and answers 200 without `Location`.
#[test]
fn ietf_completed_at_creation_without_location_is_a_success() {
    for size in [0, 7] {
        let mut config = config(Protocol::Ietf, file(size));
        config.settings.chunking = ChunkSizing::Fixed(1024);
        let mut h = SessionHarness::new(config);
        let create = h.expect_request();
        assert_eq!(create.header("Upload-Complete"), Some("?1"));
        h.respond(&create, Response::status(200));
        h.requests();
        assert!(
            matches!(
                &h.outcome,
                Some(Outcome::Completed(c)) if c.upload_url.is_none() && c.size == size
            ),
            "{size}: {:?}",
            h.outcome
        );
    }
    // Without `Location` for an upload left incomplete, it is a violation.
    let mut config = config(Protocol::Ietf, file(30));
    config.settings.chunking = ChunkSizing::Fixed(10);
    let mut h = SessionHarness::new(config);
    let create = h.expect_request();
    assert_eq!(create.header("Upload-Complete"), Some("?0"));
    h.respond(&create, Response::status(201));
    h.requests();
    assert!(matches!(
        h.outcome,
        Some(Outcome::Failed(Error::ProtocolViolation(_)))
    ));
}

/// Fault 8: after an early refusal of a request with a body, the next
/// request asks for a new connection.
#[test]
fn an_early_refusal_of_a_body_asks_for_a_new_connection() {
    let mut config = config(Protocol::Ranged, file(30));
    config.settings.chunking = ChunkSizing::Fixed(20);
    let mut h = SessionHarness::new(config);
    let create = h.expect_request();
    assert!(!create.new_connection);
    h.respond(&create, created("/files/n"));
    let chunk = h.expect_request();
    assert!(!chunk.new_connection);
    h.respond(&chunk, Response::status(413));
    let smaller = h.expect_request();
    assert!(
        smaller.new_connection,
        "the 413 came before the body was read"
    );
    h.respond(&smaller, ok_lkb(9));
    let next = h.expect_request();
    assert!(!next.new_connection);
}
