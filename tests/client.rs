//! The native client against the reference server on a clean link: exact
//! uploads with fixed and adaptive chunks, resuming through the resume store,
//! typed errors for bad input, and a source that changes mid-upload.

use std::path::Path;
use std::time::Duration;

use chunkup::{FileResumeStore, ResumeStore, RetryReason, UploadEvent as Event, UploadOptions};
use chunkup_e2e::*;
use chunkup_server::{FaultSpec, ServerConfig};

/// Uploads `source` to a fault-free server and checks everything a clean
/// upload promises; returns the events.
async fn clean_upload(source: &SourceFile, options: UploadOptions) -> Vec<Event> {
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    let endpoint = server.ranged_endpoint();
    let mut events = Vec::new();
    let adaptive = options.chunk_size.is_none();
    let report = client()
        .upload(options)
        .to(endpoint.as_str())
        .tune(|settings| {
            if adaptive {
                small_adaptive(settings);
            }
        })
        .on_event(|e| events.push(e.clone()))
        .file(&source.path)
        .await
        .expect("a clean upload completes");

    assert!(
        report.retries.is_empty(),
        "no retries on a clean link: {:?}",
        report.retries
    );
    assert_eq!(report.size, source.size);
    assert_eq!(report.resumed_from, None);
    assert!(
        report.url().starts_with(&format!("{endpoint}/")),
        "{} is not under {endpoint}",
        report.url()
    );
    // The protocol settled first (the one asked for: no server answer
    // backs it), then Created, Completed last, both naming the upload.
    assert!(
        matches!(
            events.first(),
            Some(Event::Discovered { assumed: true, .. })
        ),
        "{:?}",
        events.first()
    );
    assert_eq!(
        events.get(1),
        Some(&Event::Created {
            upload_url: report.url().to_string()
        })
    );
    assert_eq!(
        events.last(),
        Some(&Event::Completed {
            upload_url: report.upload_url.clone()
        })
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Retrying { .. } | Event::Failed { .. } | Event::ServerRewound { .. }
        )),
        "{events:?}"
    );
    assert_progress_monotonic(&events, source.size);

    let stored = assert_stored_exactly(&server.base_url(), report.url(), source).await;
    assert_eq!(
        stored.bytes_received(),
        source.size,
        "a clean upload sends every byte exactly once"
    );
    assert_eq!(stored.json["filename"], file_name(&source.path));
    server.shutdown().await;
    events
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn acknowledged_offsets(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChunkAcknowledged { offset } => Some(*offset),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_upload_with_fixed_chunks_is_exact() {
    let chunk = 256 * KIB;
    // Not a multiple of the chunk: the last chunk is short.
    let source = random_file(3 * MIB + 12_345, 1);
    let events = clean_upload(&source, fixed_options(chunk)).await;
    let offsets = acknowledged_offsets(&events);
    let expected: Vec<u64> = (1..=source.size.div_ceil(chunk))
        .map(|k| (k * chunk).min(source.size))
        .collect();
    assert_eq!(offsets, expected, "one acknowledgement per fixed chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_upload_with_adaptive_chunks_is_exact_and_grows() {
    let source = random_file(4 * MIB + 1, 2);
    let events = clean_upload(&source, adaptive_options()).await;
    let offsets = acknowledged_offsets(&events);
    assert_eq!(
        offsets.first(),
        Some(&(64 * KIB)),
        "starts at the initial size"
    );
    assert_eq!(offsets.last(), Some(&source.size));
    let sizes: Vec<u64> = offsets
        .iter()
        .scan(0, |prev, &o| {
            let size = o - *prev;
            *prev = o;
            Some(size)
        })
        .collect();
    assert!(
        sizes.iter().all(|&s| s <= MIB),
        "never above the maximum: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|&s| s > 64 * KIB),
        "chunks grow on a clean link: {sizes:?}"
    );
    assert!(
        (offsets.len() as u64) < source.size / (64 * KIB),
        "fewer requests than with the initial size throughout: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_upload_of_an_empty_file_completes() {
    let source = random_file(0, 3);
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    let mut events = Vec::new();
    let report = client()
        .upload_file(
            &source.path,
            &server.ranged_endpoint(),
            fixed_options(64 * KIB),
            |e| events.push(e.clone()),
        )
        .await
        .expect("an empty upload completes");
    assert!(report.retries.is_empty());
    assert!(acknowledged_offsets(&events).is_empty(), "{events:?}");
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    server.shutdown().await;
}

/// First run: the server breaks chunk 3 after 1000 bytes (the status poll
/// shows those bytes: progress, which refills the retry budget), then fails
/// the next two chunk requests; with one retry allowed the client gives up, leaving a record in the
/// store. Second run (a new client, as after a restart): it resumes at the
/// server's offset and sends only what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_through_the_file_store_sends_only_what_is_missing() {
    let chunk = 256 * KIB;
    let source = random_file(2 * MIB + 4321, 4);
    let server_dir = tempfile::tempdir().expect("server dir");
    let server = start_server(
        server_dir.path(),
        "script=3:reset@1000;4:error@502;5:error@503",
    )
    .await;
    let endpoint = server.ranged_endpoint();
    let state = tempfile::tempdir().expect("state dir");
    let store_dir = state.path().join("resume");

    // Run 1: fails fast.
    let mut options = fixed_options(chunk);
    options.max_attempts = 1;
    let mut first_events = Vec::new();
    let error = client()
        .with_resume_store(FileResumeStore::new(&store_dir))
        .upload_file(&source.path, &endpoint, options, |e| {
            first_events.push(e.clone())
        })
        .await
        .expect_err("the first run gives up");
    assert!(
        matches!(
            error,
            chunkup::Error::Upload(chunkup_core::Error::RetriesExhausted { .. })
        ),
        "{error:?}"
    );
    let upload_url = first_events
        .iter()
        .find_map(|e| match e {
            Event::Created { upload_url } => Some(upload_url.clone()),
            _ => None,
        })
        .expect("the first run created the upload");
    let records = FileResumeStore::new(&store_dir)
        .list()
        .expect("the store lists");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].upload_url, upload_url);
    assert_eq!(records[0].total, source.size);

    // The server kept three chunks and the first 1000 bytes of the fourth.
    let partial = Stored::fetch(&server.base_url(), &upload_url).await;
    let held = 3 * chunk + 1000;
    assert_eq!(partial.stored(), held, "{}", partial.json);
    assert!(!partial.complete());
    assert_eq!(partial.sha256(), sha256_of_prefix(&source.path, held));

    // Run 2: a new client over the same store, on a healthy server.
    server.set_faults(FaultSpec::none());
    let mut events = Vec::new();
    let report = client()
        .with_resume_store(FileResumeStore::new(&store_dir))
        .upload_file(&source.path, &endpoint, fixed_options(chunk), |e| {
            events.push(e.clone())
        })
        .await
        .expect("the second run completes");
    assert_eq!(report.resumed_from, Some(held));
    assert_eq!(report.url(), upload_url, "the same upload is continued");
    assert!(report.retries.is_empty(), "{:?}", report.retries);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Created { .. })),
        "no new upload is created: {events:?}"
    );
    assert_eq!(
        acknowledged_offsets(&events).first(),
        Some(&(held + chunk)),
        "the first chunk starts at the server's offset"
    );
    assert_progress_monotonic(&events, source.size);
    assert!(
        FileResumeStore::new(&store_dir)
            .list()
            .expect("the store lists")
            .is_empty(),
        "the record is removed once the upload completed"
    );
    let stored = assert_stored_exactly(&server.base_url(), &upload_url, &source).await;
    let resent = stored.bytes_received() - source.size;
    assert!(
        resent <= chunk,
        "resuming re-sent {resent} bytes, more than one chunk"
    );
    server.shutdown().await;
}

/// A record whose upload vanished from the server: the client starts a new
/// upload instead of failing, and the new one is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_a_vanished_upload_starts_a_new_one() {
    let chunk = 256 * KIB;
    let source = random_file(MIB + 99, 5);
    let server_dir = tempfile::tempdir().expect("server dir");
    let server = start_server(server_dir.path(), "script=2:error@500").await;
    let endpoint = server.ranged_endpoint();
    let store = std::sync::Arc::new(chunkup::MemoryResumeStore::default());

    let mut options = fixed_options(chunk);
    options.max_attempts = 0;
    let first = client()
        .with_resume_store(SharedStore(store.clone()))
        .upload_file(&source.path, &endpoint, options, |_| {})
        .await;
    assert!(first.is_err(), "{first:?}");
    let records = store.list().expect("list");
    assert_eq!(records.len(), 1, "{records:?}");
    let old_url = records[0].upload_url.clone();

    // The server forgets the upload.
    let response = reqwest::Client::new()
        .delete(&old_url)
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(response.status().as_u16(), 204);

    server.set_faults(FaultSpec::none());
    let report = client()
        .with_resume_store(SharedStore(store.clone()))
        .upload_file(&source.path, &endpoint, fixed_options(chunk), |_| {})
        .await
        .expect("a new upload replaces the vanished one");
    assert_ne!(report.url(), old_url);
    assert_eq!(report.retries, vec![RetryReason::UploadGone(404)]);
    assert_eq!(report.resumed_from, None);
    assert!(store.list().expect("list").is_empty());
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    server.shutdown().await;
}

/// Lets a test keep a handle on the store it gave the client.
struct SharedStore(std::sync::Arc<chunkup::MemoryResumeStore>);

impl ResumeStore for SharedStore {
    fn load(&self, fingerprint: &str) -> Result<Option<chunkup::ResumeRecord>, chunkup::Error> {
        self.0.load(fingerprint)
    }
    fn save(&self, record: &chunkup::ResumeRecord) -> Result<(), chunkup::Error> {
        self.0.save(record)
    }
    fn remove(&self, fingerprint: &str) -> Result<(), chunkup::Error> {
        self.0.remove(fingerprint)
    }
    fn list(&self) -> Result<Vec<chunkup::ResumeRecord>, chunkup::Error> {
        self.0.list()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unreadable_sources_are_source_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("does-not-exist.bin");
    let error = client()
        .upload_file(
            &missing,
            "http://127.0.0.1:9/ranged",
            fixed_options(KIB),
            |_| {},
        )
        .await
        .expect_err("a missing file cannot be uploaded");
    match error {
        chunkup::Error::Source { path, source } => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Source, got {other:?}"),
    }

    let error = client()
        .upload_file(
            dir.path(),
            "http://127.0.0.1:9/ranged",
            fixed_options(KIB),
            |_| {},
        )
        .await
        .expect_err("a directory is not a file to upload");
    assert!(matches!(error, chunkup::Error::Source { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_urls_are_typed_errors() {
    let source = random_file(10 * KIB, 6);
    for url in ["not a url", "ftp://x/ranged", "http://", "/ranged"] {
        let error = client()
            .upload_file(&source.path, url, fixed_options(KIB), |_| {})
            .await
            .expect_err("an invalid URL cannot be uploaded to");
        match error {
            chunkup::Error::Upload(chunkup_core::Error::InvalidUrl { url: got, .. }) => {
                assert_eq!(got, url);
            }
            other => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_exhausts_the_retries() {
    let source = random_file(10 * KIB, 7);
    // A port that was just free: connections are refused.
    let addr = std::net::TcpListener::bind(loopback())
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut options = fixed_options(KIB);
    options.max_attempts = 2;
    // Asked for: nothing to discover, so the retries are the chunks'.
    options.protocol = Some(chunkup::Protocol::Ranged);
    let mut retries = 0;
    let started = std::time::Instant::now();
    let error = client()
        .upload_file(
            &source.path,
            &format!("http://{addr}/ranged"),
            options,
            |e| {
                if let Event::Retrying { reason, .. } = e {
                    assert_eq!(reason, "transport");
                    retries += 1;
                }
            },
        )
        .await
        .expect_err("nothing is listening");
    match error {
        chunkup::Error::Upload(chunkup_core::Error::RetriesExhausted { last, .. }) => {
            assert!(last.contains("connection failed"), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(retries, 2, "max_attempts failures are retried");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_limit_is_rejected_with_413() {
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server_with(ServerConfig {
        dir: dir.path().to_path_buf(),
        max_size: MIB,
        admin: chunkup_server::AdminAccess::open(),
        ..ServerConfig::default()
    })
    .await;
    let source = random_file(MIB + 1, 8);
    let mut retries = 0;
    let error = client()
        .upload_file(
            &source.path,
            &server.ranged_endpoint(),
            fixed_options(256 * KIB),
            |e| {
                if matches!(e, Event::Retrying { .. }) {
                    retries += 1;
                }
            },
        )
        .await
        .expect_err("the server refuses the size");
    assert!(
        matches!(
            error,
            chunkup::Error::Upload(chunkup_core::Error::Rejected { status: 413, .. })
        ),
        "{error:?}"
    );
    assert_eq!(retries, 0, "a refusal is not retried");
    let list = admin_uploads(&server.base_url()).await;
    assert!(list.is_empty(), "nothing was created: {list:?}");

    // Exactly at the limit is fine.
    let source = random_file(MIB, 9);
    let report = client()
        .upload_file(
            &source.path,
            &server.ranged_endpoint(),
            fixed_options(256 * KIB),
            |_| {},
        )
        .await
        .expect("an upload at the limit completes");
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    server.shutdown().await;
}

/// Appending to the file after the first acknowledged chunk: the client stops
/// with `SourceChanged` instead of uploading a file that never existed, and
/// the server holds only a prefix of the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_grows_mid_upload_is_source_changed() {
    let source = random_file(2 * MIB, 10);
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    let mut upload_url = None;
    let mut appended = false;
    let error = client()
        .upload_file(
            &source.path,
            &server.ranged_endpoint(),
            fixed_options(256 * KIB),
            |e| match e {
                Event::Created { upload_url: url } => upload_url = Some(url.clone()),
                Event::ChunkAcknowledged { .. } if !appended => {
                    appended = true;
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&source.path)
                        .expect("open to append");
                    std::io::Write::write_all(&mut file, b"more bytes").expect("append");
                }
                _ => {}
            },
        )
        .await
        .expect_err("a changed source must not be uploaded");
    match error {
        chunkup::Error::SourceChanged { path, expected } => {
            assert_eq!(expected, source.size);
            assert_eq!(
                path,
                std::fs::canonicalize(&source.path).expect("canonical")
            );
        }
        other => panic!("expected SourceChanged, got {other:?}"),
    }
    let upload_url = upload_url.expect("the upload was created");
    let stored = Stored::fetch(&server.base_url(), &upload_url).await;
    assert!(!stored.complete());
    assert!(
        stored.stored() >= 256 * KIB && stored.stored() < source.size,
        "{}",
        stored.json
    );
    assert_eq!(
        stored.sha256(),
        sha256_of_prefix(&source.path, stored.stored()),
        "what the server holds is a prefix of the original"
    );
    server.shutdown().await;
}
