//! S3 multipart uploads through the session, against a simulated S3: create,
//! parts in parallel windows, complete; resume from ListParts; expired
//! signatures; a part without ETag; abort; a vanished upload; part sizes
//! and counts up to 5 TiB.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use chunkup_core::session::{Outcome, SessionConfig, SessionInput, SourceInfo};
use chunkup_core::{
    ChunkSizing, Error, Event, Protocol, RequestSpec, ResolvedProtocol, ResumeRecord, RetryReason,
    S3Action,
};
use support::s3::S3Sim;
use support::session::SessionHarness;

const OBJECT: &str = "http://127.0.0.1:9/uploads/videos/clip.mp4";
const MIB: u64 = 1024 * 1024;

fn file(size: u64) -> SourceInfo {
    SourceInfo {
        size: Some(size),
        name: Some("/home/ana/clip.mp4".into()),
        modified_ms: Some(1_700_000_000_000),
        fingerprint: None,
    }
}

fn config(size: u64, parallel: usize, chunk: u64) -> SessionConfig {
    let mut config = SessionConfig::new(OBJECT, Protocol::S3, file(size));
    config.parallel = parallel;
    config.settings.chunking = ChunkSizing::Fixed(chunk);
    config.settings.seed = 3;
    config.wall_clock_ms = 1_800_000_000_000;
    config
}

/// Answers every request from `sim` until the session ends or `stop_after`
/// parts were stored; returns the most requests seen in flight at once.
fn serve(h: &mut SessionHarness, sim: &mut S3Sim, stop_after: Option<usize>) -> usize {
    let mut most = 0;
    for _ in 0..1_000_000 {
        let requests = h.requests();
        if requests.is_empty() {
            return most;
        }
        most = most.max(requests.len());
        for request in requests {
            let response = sim.answer(&request);
            h.respond(&request, response);
            if stop_after.is_some_and(|n| sim.count(S3Action::UploadPart) >= n) {
                h.input(SessionInput::Stop);
                h.requests();
                return most;
            }
        }
    }
    panic!("the session did not end");
}

fn upload_id(h: &SessionHarness) -> String {
    match &h.outcome {
        Some(Outcome::Completed(c)) => {
            assert_eq!(c.upload_url.as_deref(), Some(OBJECT), "the object's URL");
        }
        other => panic!("{other:?}"),
    }
    let created = h.events.iter().find_map(|e| match e {
        Event::Created { upload_url } => Some(upload_url.clone()),
        _ => None,
    });
    let url = created.expect("created");
    url.split("uploadId=").nth(1).unwrap().to_string()
}

#[test]
fn create_parts_complete() {
    let size = 23 * MIB + 7;
    let mut h = SessionHarness::new(config(size, 1, 5 * MIB));
    let mut sim = S3Sim::default();
    serve(&mut h, &mut sim, None);
    let id = upload_id(&h);
    assert_eq!(sim.completed_size(&id), size);
    // 5 MiB parts, the last one taking the rest.
    let parts = &sim.completed[&id];
    assert_eq!(
        parts.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // Remembered while it ran, forgotten once complete.
    let key = file(size).resume_key(OBJECT).unwrap();
    assert!(h.store_log.contains(&format!("persist {key}")));
    assert!(h.forgot(&key) && h.store.is_empty());
}

#[test]
fn windows_run_in_parallel_with_their_own_part_numbers() {
    let size = 64 * MIB;
    let mut h = SessionHarness::new(config(size, 4, 5 * MIB));
    let mut sim = S3Sim::default();
    let most = serve(&mut h, &mut sim, None);
    assert_eq!(most, 4, "four parts in flight at once");
    let id = upload_id(&h);
    assert_eq!(sim.completed_size(&id), size);
    let numbers: Vec<u32> = sim.completed[&id].iter().map(|p| p.0).collect();
    assert!(numbers.contains(&1) && numbers.contains(&2501) && numbers.contains(&7501));
    assert_eq!(sim.count(S3Action::CreateMultipartUpload), 1);
    assert_eq!(sim.count(S3Action::CompleteMultipartUpload), 1);
}

#[test]
fn a_stopped_upload_continues_from_list_parts_in_a_later_session() {
    let size = 64 * MIB;
    let mut h = SessionHarness::new(config(size, 4, 5 * MIB));
    let mut sim = S3Sim::default();
    serve(&mut h, &mut sim, Some(6));
    assert_eq!(h.outcome, Some(Outcome::Stopped));
    let stored_before = sim.count(S3Action::UploadPart);
    let key = file(size).resume_key(OBJECT).unwrap();
    let record = h.store[&key].clone();
    assert_eq!(record.protocol, ResolvedProtocol::S3);
    assert!(record.upload_url.contains("uploadId="), "{record:?}");

    let mut h = SessionHarness::with_store(config(size, 4, 5 * MIB), h.store.clone());
    serve(&mut h, &mut sim, None);
    assert!(matches!(&h.outcome, Some(Outcome::Completed(c)) if c.resumed_from.unwrap_or(0) > 0));
    assert_eq!(
        sim.count(S3Action::CreateMultipartUpload),
        1,
        "no second upload"
    );
    assert_eq!(
        sim.count(S3Action::ListParts),
        4,
        "each window asked once: {:?}",
        sim.log
    );
    let id = record.upload_url.split("uploadId=").nth(1).unwrap();
    assert_eq!(sim.completed_size(id), size);
    // Parts: 13 needed, at most those in flight at the stop sent twice.
    let total_parts = sim.count(S3Action::UploadPart);
    let needed = sim.completed[id].len();
    assert!(
        total_parts <= needed + 4,
        "{total_parts} part uploads for {needed} parts ({stored_before} before the stop)"
    );
}

#[test]
fn an_expired_signature_is_signed_again() {
    let mut h = SessionHarness::new(config(12 * MIB, 1, 5 * MIB));
    let mut sim = S3Sim {
        expire_next_parts: 2,
        ..S3Sim::default()
    };
    serve(&mut h, &mut sim, None);
    assert!(
        matches!(h.outcome, Some(Outcome::Completed(_))),
        "{:?}",
        h.outcome
    );
    let expired = h
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Retrying {
                    reason: RetryReason::SignatureExpired,
                    ..
                }
            )
        })
        .count();
    assert_eq!(expired, 2);
}

#[test]
fn a_part_without_etag_is_a_setup_error() {
    let mut h = SessionHarness::new(config(12 * MIB, 1, 5 * MIB));
    let mut sim = S3Sim {
        hide_etag: true,
        ..S3Sim::default()
    };
    serve(&mut h, &mut sim, None);
    match &h.outcome {
        Some(Outcome::Failed(error @ Error::ServerSetup(_))) => {
            assert!(error.to_string().contains("ExposeHeaders"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.count(S3Action::UploadPart), 1, "not retried");
}

#[test]
fn terminate_aborts_once_and_forgets() {
    let size = 64 * MIB;
    let mut h = SessionHarness::new(config(size, 4, 5 * MIB));
    let mut sim = S3Sim::default();
    for _ in 0..3 {
        for request in h.requests() {
            let response = sim.answer(&request);
            h.respond(&request, response);
        }
    }
    h.input(SessionInput::Terminate);
    serve(&mut h, &mut sim, None);
    assert_eq!(h.outcome, Some(Outcome::Terminated));
    assert_eq!(sim.count(S3Action::AbortMultipartUpload), 1);
    assert_eq!(sim.aborted.len(), 1);
    assert!(h.store.is_empty());
}

#[test]
fn a_vanished_upload_from_a_record_is_created_again() {
    let size = 12 * MIB;
    let key = file(size).resume_key(OBJECT).unwrap();
    let record = ResumeRecord::new(
        key.clone(),
        format!("{OBJECT}?uploadId=gone_1"),
        ResolvedProtocol::S3,
        size,
        1_800_000_000_000,
    );
    let mut h =
        SessionHarness::with_store(config(size, 1, 5 * MIB), HashMap::from([(key, record)]));
    let mut sim = S3Sim::default();
    serve(&mut h, &mut sim, None);
    let id = upload_id(&h);
    assert_eq!(sim.completed_size(&id), size);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Retrying {
            reason: RetryReason::UploadGone(404),
            ..
        }
    )));
}

#[test]
fn a_part_listed_twice_is_sent_again() {
    let size = 12 * MIB;
    let mut h = SessionHarness::new(config(size, 1, 5 * MIB));
    let mut sim = S3Sim::default();
    serve(&mut h, &mut sim, Some(1));
    let key = file(size).resume_key(OBJECT).unwrap();
    let id = h.store[&key]
        .upload_url
        .split("uploadId=")
        .nth(1)
        .unwrap()
        .to_string();
    // Part 1 stored twice (a retry whose first answer was lost).
    let first = sim.uploads[&id][&1][0].clone();
    sim.uploads
        .get_mut(&id)
        .unwrap()
        .get_mut(&1)
        .unwrap()
        .push((first.0, "\"other\"".into()));
    let before = sim.count(S3Action::UploadPart);
    let mut h = SessionHarness::with_store(config(size, 1, 5 * MIB), h.store.clone());
    serve(&mut h, &mut sim, None);
    assert!(matches!(h.outcome, Some(Outcome::Completed(_))));
    let parts_after: Vec<u32> = sim.log[before..]
        .iter()
        .filter(|(a, _)| *a == S3Action::UploadPart)
        .filter_map(|(_, n)| *n)
        .collect();
    assert_eq!(
        parts_after.first(),
        Some(&1),
        "part 1 sent again: {parts_after:?}"
    );
    assert_eq!(sim.completed_size(&id), size);
}

#[test]
fn an_empty_object_is_one_empty_part() {
    let mut h = SessionHarness::new(config(0, 4, 5 * MIB));
    let mut sim = S3Sim::default();
    serve(&mut h, &mut sim, None);
    let id = upload_id(&h);
    assert_eq!(sim.completed[&id].len(), 1);
    assert_eq!(sim.completed_size(&id), 0);
}

/// 5 TiB with a wish for 8 MiB parts: the sizer grows parts to keep within
/// 10,000, whatever the windows.
#[test]
fn five_tebibytes_fit_in_ten_thousand_parts() {
    for parallel in [1, 3] {
        let size = 5 * 1024 * 1024 * MIB;
        let mut h = SessionHarness::new(config(size, parallel, 8 * MIB));
        let mut sim = S3Sim::default();
        serve(&mut h, &mut sim, None);
        let id = upload_id(&h);
        let parts = sim.completed[&id].len();
        assert!(parts <= 10_000, "{parts} parts");
        assert_eq!(sim.completed_size(&id), size);
    }
}

/// More than S3's largest object is refused before any request: S3 would
/// only refuse it at completion, after 5 TiB were sent.
#[test]
fn more_than_five_tebibytes_is_refused_before_any_request() {
    let mut h = SessionHarness::new(config(5 * 1024 * 1024 * MIB + 1, 2, 8 * MIB));
    assert!(h.requests().is_empty());
    assert!(
        matches!(&h.outcome, Some(Outcome::Failed(Error::InvalidConfig(_)))),
        "{:?}",
        h.outcome
    );
}

/// Every request an S3 session sends says what to sign.
#[test]
fn every_request_carries_what_a_signer_needs() {
    let mut h = SessionHarness::new(config(6 * MIB, 1, 5 * MIB));
    let mut sim = S3Sim::default();
    let mut seen: Vec<RequestSpec> = Vec::new();
    loop {
        let requests = h.requests();
        if requests.is_empty() {
            break;
        }
        for request in requests {
            assert!(request.signing.is_some());
            let response = sim.answer(&request);
            h.respond(&request, response);
            seen.push(request);
        }
    }
    let actions: Vec<S3Action> = seen
        .iter()
        .map(|r| r.signing.as_ref().unwrap().action)
        .collect();
    assert_eq!(
        actions,
        vec![
            S3Action::CreateMultipartUpload,
            S3Action::UploadPart,
            S3Action::UploadPart,
            S3Action::CompleteMultipartUpload
        ]
    );
    assert!(seen[1].url.contains("partNumber=1") && seen[1].url.contains("uploadId="));
}
