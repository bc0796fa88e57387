//! The Rust surface of the common API (issue #12), each against a real
//! server on loopback: a header provider that refreshes a token a proxy
//! expires mid-upload (tests/token_proxy.py, a Python process), retry
//! control (a declined retry, explicit delays), a known upload URL,
//! remembered uploads listed, continued and forgotten, typed events, and a
//! stream of unknown length.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chunkup::{
    Client, ErrorKind, Hooks, MemoryResumeStore, Protocol, RequestInfo, RetryQuestion,
    UploadControl, UploadEvent, UploadOptions,
};
use chunkup_e2e::{
    KIB, MIB, ReportUrl, assert_stored_exactly, client, fixed_options, random_file, start_server,
};

/// tests/token_proxy.py in front of `upstream`: tokens expire after
/// `uses` requests. Killed on drop.
struct TokenProxy {
    url: String,
    child: Child,
}

impl TokenProxy {
    fn start(upstream: &str, uses: u32) -> TokenProxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("token_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(upstream)
            .arg(uses.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/token_proxy.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the proxy says where it listens");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        TokenProxy { url, child }
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_stats", self.url))
            .await
            .expect("the proxy's stats")
            .text()
            .await
            .map(|text| serde_json::from_str(&text).expect("JSON stats"))
            .expect("the stats' body")
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the header provider saw: one entry per call, `(method, refresh)`.
type Calls = Arc<Mutex<Vec<(String, bool)>>>;

/// A header provider that asks the proxy for a token when it has none or
/// is told to refresh, and otherwise sends the one it has.
fn token_hooks(token_url: String, stale_forever: bool) -> (Hooks, Calls) {
    let calls: Calls = Arc::default();
    let token: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = calls.clone();
    let hooks = Hooks::new().header_provider(move |request: RequestInfo| {
        let token = token.clone();
        let token_url = token_url.clone();
        seen.lock()
            .expect("calls")
            .push((request.method.clone(), request.refresh));
        async move {
            let cached = token.lock().expect("token").clone();
            let current = match cached {
                Some(current) if !request.refresh || stale_forever => current,
                _ => {
                    let fresh = reqwest::Client::new()
                        .post(&token_url)
                        .send()
                        .await?
                        .text()
                        .await?;
                    let fresh: serde_json::Value = serde_json::from_str(&fresh)?;
                    let fresh = fresh["token"].as_str().unwrap_or_default().to_string();
                    *token.lock().expect("token") = Some(fresh.clone());
                    fresh
                }
            };
            Ok(vec![(
                "Authorization".to_string(),
                format!("Bearer {current}"),
            )])
        }
    });
    (hooks, calls)
}

/// Tus in chunks of `chunk` bytes.
fn tus_options(chunk: u64) -> UploadOptions {
    UploadOptions {
        protocol: Some(Protocol::Tus),
        ..fixed_options(chunk)
    }
}

/// Uploads the file at `path` to `endpoint` with `hooks`; the result and
/// every event seen.
async fn upload_recording_events(
    options: UploadOptions,
    endpoint: String,
    hooks: Hooks,
    path: &Path,
) -> (
    Result<chunkup::UploadReport, chunkup::Error>,
    Vec<UploadEvent>,
) {
    let events = Mutex::new(Vec::new());
    let result = client()
        .upload(options)
        .to(endpoint)
        .hooks(hooks)
        .on_event(|e| events.lock().expect("events").push(e.clone()))
        .file(path)
        .await;
    (result, events.into_inner().expect("events"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expired_mid_upload_is_refreshed_and_the_provider_is_asked_before_every_request() {
    let dir = tempfile::tempdir().expect("a store directory");
    let server = start_server(dir.path(), "none").await;
    // A token is good for 4 requests: the upload outlives several.
    let proxy = TokenProxy::start(&server.base_url(), 4);
    let (hooks, calls) = token_hooks(format!("{}/token", proxy.url), false);
    let source = random_file(2 * MIB + 5, 21);
    let (result, events) = upload_recording_events(
        tus_options(128 * KIB),
        format!("{}/tus", proxy.url),
        hooks,
        &source.path,
    )
    .await;
    let report = result.expect("the upload completes across token expiries");
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;

    let stats = proxy.stats().await;
    let calls = calls.lock().expect("calls").clone();
    let forwarded = stats["forwarded"].as_u64().expect("forwarded");
    let refused = stats["refused"].as_u64().expect("refused");
    // Every request the proxy saw was prepared by the provider first.
    assert_eq!(calls.len() as u64, forwarded + refused, "{calls:?} {stats}");
    // 17 PATCHes and a POST at 4 per token: the token expired at least 4 times,
    // each refusal led to exactly one refresh, and no refusal was final.
    assert!(refused >= 4, "{stats}");
    let refreshes = calls.iter().filter(|(_, refresh)| *refresh).count() as u64;
    assert_eq!(refreshes, refused, "{calls:?} {stats}");
    assert!(stats["issued"].as_u64() >= Some(refused + 1), "{stats}");
    // A 401 the provider answers is not a retry of the upload.
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, UploadEvent::Failed { .. })),
        "{events:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_refusal_in_a_row_is_final() {
    let dir = tempfile::tempdir().expect("a store directory");
    let server = start_server(dir.path(), "none").await;
    let proxy = TokenProxy::start(&server.base_url(), 3);
    // This provider "refreshes" with the token it already has.
    let (hooks, calls) = token_hooks(format!("{}/token", proxy.url), true);
    let source = random_file(2 * MIB, 22);
    let (result, events) = upload_recording_events(
        tus_options(128 * KIB),
        format!("{}/tus", proxy.url),
        hooks,
        &source.path,
    )
    .await;
    let error = result.expect_err("a stale token cannot finish the upload");
    let typed = error.to_upload_error();
    assert_eq!(typed.kind(), ErrorKind::Rejected, "{error:?}");
    assert_eq!(typed.status(), Some(401), "{typed:?}");
    let stats = proxy.stats().await;
    assert_eq!(
        stats["refused"], 2,
        "one refusal, one refresh, one final refusal: {stats}"
    );
    let calls = calls.lock().expect("calls").clone();
    assert_eq!(calls.iter().filter(|(_, r)| *r).count(), 1, "{calls:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            UploadEvent::Failed {
                kind: ErrorKind::Rejected,
                status: Some(401),
                ..
            }
        )),
        "{events:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_retry_ends_the_upload_with_retry_declined() {
    let dir = tempfile::tempdir().expect("a store directory");
    // Every chunk request fails with a 5xx.
    let server = start_server(dir.path(), "error=1").await;
    let source = random_file(MIB, 23);
    let questions: Arc<Mutex<Vec<RetryQuestion>>> = Arc::default();
    let asked = questions.clone();
    let hooks = Hooks::new().should_retry(move |question: RetryQuestion| {
        asked.lock().expect("questions").push(question);
        async { false }
    });
    let (result, events) = upload_recording_events(
        tus_options(256 * KIB),
        server.tus_endpoint(),
        hooks,
        &source.path,
    )
    .await;
    let error = result.expect_err("the application said no");
    assert_eq!(error.kind(), ErrorKind::RetryDeclined, "{error:?}");
    let questions = questions.lock().expect("questions").clone();
    assert_eq!(questions.len(), 1, "asked once: {questions:?}");
    assert_eq!(questions[0].attempt, 1);
    assert!(
        matches!(questions[0].status, Some(500 | 502 | 504)),
        "{questions:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, UploadEvent::Retrying { .. })),
        "no retry after a no: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            UploadEvent::Failed {
                kind: ErrorKind::RetryDeclined,
                ..
            }
        )),
        "{events:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_retry_delays_are_honoured_and_every_retry_is_asked() {
    let dir = tempfile::tempdir().expect("a store directory");
    // The first three chunk requests fail, then the server behaves.
    let server = start_server(dir.path(), "script=0:error;1:error;2:error").await;
    let source = random_file(MIB + 3, 24);
    let questions: Arc<Mutex<Vec<u32>>> = Arc::default();
    let asked = questions.clone();
    let hooks = Hooks::new().should_retry(move |question: RetryQuestion| {
        asked.lock().expect("questions").push(question.attempt);
        async { true }
    });
    let started = Instant::now();
    let (result, events) = upload_recording_events(
        UploadOptions {
            retry_delays_ms: vec![300, 600, 900],
            ..tus_options(256 * KIB)
        },
        server.tus_endpoint(),
        hooks,
        &source.path,
    )
    .await;
    let report = result.expect("the upload completes after three retries");
    let elapsed = started.elapsed();
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    let delays: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            UploadEvent::Retrying {
                delay_ms, status, ..
            } => {
                assert!(matches!(status, Some(500 | 502 | 504)), "{e:?}");
                Some(*delay_ms)
            }
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![300, 600, 900], "{events:?}");
    assert_eq!(*questions.lock().expect("questions"), vec![1, 2, 3]);
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_events_known_url_and_remembered_uploads() {
    let dir = tempfile::tempdir().expect("a store directory");
    let server = start_server(dir.path(), "none").await;
    let source = random_file(3 * MIB + 9, 25);
    let client = Client::new()
        .expect("a client")
        .with_resume_store(MemoryResumeStore::default());
    let options = UploadOptions {
        protocol: Some(Protocol::Tus),
        metadata: vec![chunkup::KeyValue::new("project", "apollo")],
        ..fixed_options(256 * KIB)
    };

    // Stopped after its second chunk: remembered with everything.
    let control = UploadControl::new();
    let events = Mutex::new(Vec::new());
    let stopped = client
        .upload(options.clone())
        .to(server.tus_endpoint())
        .control(&control)
        .on_event(|e| {
            if matches!(e, UploadEvent::ChunkAcknowledged { offset } if *offset >= 512 * KIB) {
                control.stop();
            }
            events.lock().expect("events").push(e.clone());
        })
        .file(&source.path)
        .await;
    assert_eq!(
        stopped.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::Stopped)
    );
    let events = events.into_inner().expect("events");
    assert!(
        matches!(
            events.first(),
            Some(UploadEvent::Discovered {
                protocol: Protocol::Tus,
                ..
            })
        ),
        "{events:?}"
    );
    let created = events
        .iter()
        .find_map(|e| match e {
            UploadEvent::Created { upload_url } => Some(upload_url.clone()),
            _ => None,
        })
        .expect("a Created event with the URL");
    assert!(
        matches!(events.last(), Some(UploadEvent::Stopped)),
        "{events:?}"
    );

    let remembered = client.remembered().expect("the store lists");
    assert_eq!(remembered.len(), 1, "{remembered:?}");
    let upload = &remembered[0];
    let name = source.path.file_name().and_then(|n| n.to_str());
    assert_eq!(upload.file_name.as_deref(), name);
    assert_eq!(upload.size, source.size);
    assert_eq!(
        upload.endpoint.as_deref(),
        Some(server.tus_endpoint().as_str())
    );
    assert_eq!(upload.upload_url, created);
    assert_eq!(upload.protocol, Protocol::Tus);
    assert!(upload.acknowledged >= 512 * KIB, "{upload:?}");
    assert!(upload.created_ms <= upload.updated_ms);
    assert!(
        upload
            .metadata
            .iter()
            .any(|kv| kv.key == "project" && kv.value == "apollo"),
        "{upload:?}"
    );

    // The app continues the chosen one by its URL (a fresh client: no
    // store, only the known URL).
    let events = Mutex::new(Vec::new());
    let report = Client::new()
        .expect("a client")
        .upload(UploadOptions {
            upload_url: Some(upload.upload_url.clone()),
            ..options.clone()
        })
        .on_event(|e| events.lock().expect("events").push(e.clone()))
        .file(&source.path)
        .await
        .expect("the known URL is continued");
    assert_eq!(report.url(), created);
    assert_eq!(report.resumed_from, Some(upload.acknowledged));
    let events = events.into_inner().expect("events");
    assert!(
        events.iter().any(
            |e| matches!(e, UploadEvent::Resumed { offset } if *offset == upload.acknowledged)
        ),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(UploadEvent::Completed { upload_url: Some(u) }) if *u == created),
        "{events:?}"
    );
    assert_stored_exactly(&server.base_url(), &created, &source).await;

    // Forgotten: listed no more, and the next upload starts afresh.
    client.forget(&upload.key).expect("forget");
    assert!(client.remembered().expect("lists").is_empty());
    let report = client
        .upload(options)
        .to(server.tus_endpoint())
        .file(&source.path)
        .await
        .expect("a new upload");
    assert_eq!(report.resumed_from, None);
    assert_ne!(report.url(), created);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_unknown_length_is_stored_exactly() {
    let dir = tempfile::tempdir().expect("a store directory");
    let server = start_server(dir.path(), "seed=5,reset=0.1,error=0.1").await;
    let source = random_file(5 * MIB + 77, 26);
    let file = tokio::fs::File::open(&source.path).await.expect("open");
    let report = client()
        .upload(UploadOptions {
            protocol: Some(Protocol::Tus),
            ..fixed_options(256 * KIB)
        })
        .to(server.tus_endpoint())
        .stream(file, "streamed.bin")
        .await
        .expect("the stream is uploaded");
    assert_eq!(report.size, source.size);
    let stored = assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    assert_eq!(stored.json["filename"], "streamed.bin");
    server.shutdown().await;
}
