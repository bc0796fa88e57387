//! Faults of uploads straight to object storage, against real peers on
//! 127.0.0.1: SeaweedFS (S3 multipart through SigV4-presigned URLs),
//! fake-gcs-server (Google-style resumable sessions) and two tusd over one
//! SeaweedFS bucket. chunkup runs through its Rust library, and as the CLI
//! (`chunkup upload`) in the `kill -9` cases; an [`HttpProxy`] between it
//! and the peer counts what reached the server and plays the fault (a
//! request stuck in flight, a cut mid-part, an answer GCS gives that the
//! peer does not).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chunkup::{
    Client, FileResumeStore, Hooks, Protocol, S3Action, SigV4Signer, SignInput, Signed, Signer,
    UploadEvent, UploadOptions,
};
use chunkup_interop::{
    Exchange, FakeGcs, HttpProxy, KIB, MIB, Presign, ProxyAction, SeaweedFs, chunkup_bin, http,
    random_file, sha256_file, tusd_pair_over_s3,
};
use sha2::{Digest, Sha256};

/// How long a fault may take to show up in the proxy's log.
const WAIT: Duration = Duration::from_secs(60);

// --- helpers --------------------------------------------------------------------

fn signer_for(s3: &SeaweedFs) -> SigV4Signer {
    SigV4Signer::new(
        s3.credentials.access_key_id.clone(),
        s3.credentials.secret_access_key.clone(),
        None,
        s3.credentials.region.clone(),
    )
}

fn s3_options(part_size: u64, parallel: u32) -> UploadOptions {
    UploadOptions {
        protocol: Some(Protocol::S3),
        chunk_size: Some(part_size),
        parallel,
        // A gateway restart takes a second or two: ten tries cover ~3 s.
        retry_delays_ms: vec![100, 200, 400],
        ..UploadOptions::default()
    }
}

fn gcs_options(chunk_size: u64) -> UploadOptions {
    UploadOptions {
        protocol: Some(Protocol::Gcs),
        chunk_size: Some(chunk_size),
        retry_delays_ms: vec![100],
        ..UploadOptions::default()
    }
}

/// Waits until `done` holds for the proxy's log.
fn wait_for_log(proxy: &HttpProxy, what: &str, done: impl Fn(&[Exchange]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = proxy.log();
        if done(&log) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what}; the proxy saw:\n{}",
            describe(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log, one request a line, for failure messages.
fn describe(log: &[Exchange]) -> String {
    log.iter()
        .map(|e| {
            // Without the signature's parameters, which say nothing here.
            let (path, query) = e.target.split_once('?').unwrap_or((&e.target, ""));
            let query: Vec<&str> = query
                .split('&')
                .filter(|p| !p.starts_with("X-Amz-"))
                .collect();
            format!(
                "{} {path}?{} [{} {} bytes] -> {:?}{}\n",
                e.method,
                query.join("&"),
                e.content_length(),
                e.request_header("content-range").unwrap_or_default(),
                e.status,
                if e.answered_by_proxy { " (proxy)" } else { "" }
            )
        })
        .collect()
}

/// UploadPart requests of the log that the server answered 200: part numbers.
fn stored_parts(log: &[Exchange]) -> BTreeSet<u32> {
    log.iter()
        .filter(|e| e.status == Some(200))
        .filter_map(Exchange::s3_part_number)
        .collect()
}

/// The part numbers ListParts reports for upload `upload_id` of `key`,
/// asked of SeaweedFS directly (not through the proxy).
fn list_parts(s3: &SeaweedFs, key: &str, upload_id: &str) -> Vec<u32> {
    let url = s3.presign_one(Presign::new(
        "list_parts",
        serde_json::json!({ "Bucket": s3.bucket, "Key": key, "UploadId": upload_id }),
    ));
    let response = http("GET", &url, &[]);
    assert_eq!(response.status, 200, "ListParts: {response:?}");
    let xml = String::from_utf8_lossy(&response.body).into_owned();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    doc.descendants()
        .filter(|n| n.tag_name().name() == "PartNumber")
        .filter(|n| n.parent().is_some_and(|p| p.tag_name().name() == "Part"))
        .filter_map(|n| n.text()?.parse().ok())
        .collect()
}

fn assert_stored(stored: &[u8], source_size: u64, source_sha256: &str, what: &str) {
    assert_eq!(stored.len() as u64, source_size, "{what}: size");
    assert_eq!(
        hex::encode(Sha256::digest(stored)),
        source_sha256,
        "{what}: the stored bytes differ from the source"
    );
}

// --- the CLI as the process that is killed -----------------------------------------------

/// Starts `chunkup upload` with `config` (`file`, `endpoint`, `state_dir`,
/// `protocol`, `chunk_size`, `parts`) and `extra_env`, as a user would run
/// it; its resume state goes to `state_dir`.
fn spawn_child(config: &serde_json::Value, extra_env: &[(&'static str, String)]) -> Child {
    let field = |name: &str| {
        config[name]
            .as_str()
            .map(str::to_string)
            .or_else(|| config[name].as_u64().map(|n| n.to_string()))
            .unwrap_or_else(|| panic!("{name} in {config}"))
    };
    let mut command = Command::new(chunkup_bin());
    command
        .arg("upload")
        .arg(field("file"))
        .args(["--json", "--state-dir", &field("state_dir")])
        .args(["--to", &field("endpoint"), "--protocol", &field("protocol")])
        .args([
            "--chunk-size",
            &field("chunk_size"),
            "--parts",
            &field("parts"),
        ])
        .args(["--retry-delays", "100,200,400"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.spawn().expect("start chunkup upload")
}

/// The `completed` event of a `chunkup upload --json` run's output.
fn completed_event(output: &str) -> serde_json::Value {
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "completed")
        .unwrap_or_else(|| panic!("no completed event in:\n{output}"))
}

/// Runs a child to its end (killing it after [`WAIT`]); its stdout and
/// stderr.
fn run_child(
    config: &serde_json::Value,
    extra_env: &[(&'static str, String)],
    proxy: &HttpProxy,
) -> String {
    let mut child = spawn_child(config, extra_env);
    let read = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    match status {
        Some(status) if status.success() => text,
        _ => panic!(
            "the child upload failed or hung ({status:?}):\n{text}\nthe proxy saw:\n{}",
            describe(&proxy.log())
        ),
    }
}

// --- 1. kill -9, then a rerun ---------------------------------------------------------

#[test]
fn s3_kill_9_then_rerun_continues_from_list_parts() {
    let s3 = SeaweedFs::start();
    let proxy = HttpProxy::start(&s3.s3_endpoint);
    let source = random_file(26 * MIB + 3, 131);
    let state = tempfile::tempdir().expect("a state directory");
    let key = "killed/clip.bin";
    let config = serde_json::json!({
        "protocol": "s3",
        "file": source.path,
        "endpoint": format!("{}/{}/{key}", proxy.url(), s3.bucket),
        "state_dir": state.path(),
        "chunk_size": 5 * MIB,
        "parts": 2,
    });
    // Two parts go through (one per window); every part after them hangs
    // in flight.
    proxy.set_rule(|request, before| {
        let parts_before = before
            .iter()
            .filter(|e| e.s3_part_number().is_some())
            .count();
        if request.s3_part_number().is_some() && parts_before >= 2 {
            ProxyAction::StallAfter(MIB)
        } else {
            ProxyAction::Forward
        }
    });
    let mut child = spawn_child(&config, &s3.credentials.env());
    wait_for_log(&proxy, "two stored parts and one in flight", |log| {
        stored_parts(log).len() == 2
            && log
                .iter()
                .any(|e| e.s3_part_number().is_some() && e.status.is_none())
    });
    std::thread::sleep(Duration::from_millis(200));
    child.kill().expect("kill -9 the upload");
    let _ = child.wait();

    let first_run = proxy.log();
    let upload_id = first_run
        .iter()
        .find_map(|e| e.query("uploadId"))
        .expect("the first run created a multipart upload");
    let stored_before = stored_parts(&first_run);
    let in_flight: BTreeSet<u32> = first_run
        .iter()
        .filter(|e| e.status.is_none())
        .filter_map(Exchange::s3_part_number)
        .collect();
    assert!(!in_flight.is_empty(), "{}", describe(&first_run));
    let listed: BTreeSet<u32> = list_parts(&s3, key, &upload_id).into_iter().collect();
    assert_eq!(
        listed, stored_before,
        "ListParts holds exactly the parts answered 200 (none of the hung ones)"
    );

    proxy.clear_rule();
    proxy.clear_log();
    let output = run_child(&config, &s3.credentials.env(), &proxy);
    let rerun = proxy.log();
    assert!(
        !rerun.iter().any(Exchange::is_s3_create),
        "the rerun continued the same multipart upload:\n{}",
        describe(&rerun)
    );
    assert!(
        rerun
            .iter()
            .any(|e| e.is_s3_list_parts()
                && e.query("uploadId").as_deref() == Some(upload_id.as_str())),
        "the rerun asked ListParts:\n{}",
        describe(&rerun)
    );
    let resent: Vec<u32> = rerun.iter().filter_map(Exchange::s3_part_number).collect();
    let resent_stored: Vec<&u32> = resent
        .iter()
        .filter(|n| stored_before.contains(n))
        .collect();
    assert!(
        resent_stored.is_empty(),
        "parts the server held were sent again: {resent_stored:?}\n{}",
        describe(&rerun)
    );
    let first_run_parts: BTreeSet<u32> = first_run
        .iter()
        .filter_map(Exchange::s3_part_number)
        .collect();
    let sent_twice: BTreeSet<u32> = resent
        .iter()
        .copied()
        .filter(|n| first_run_parts.contains(n))
        .collect();
    assert!(
        sent_twice.is_subset(&in_flight),
        "re-sent {sent_twice:?}, but only {in_flight:?} were in flight"
    );
    let unique: BTreeSet<u32> = resent.iter().copied().collect();
    assert_eq!(unique.len(), resent.len(), "a part sent twice in the rerun");
    let held = stored_before.len() as u64 * 5 * MIB;
    assert_eq!(
        completed_event(&output)["resumed_from"],
        held,
        "the rerun reports it continued from the bytes held:\n{output}"
    );
    assert_stored(
        &s3.get_object(key),
        source.size,
        &source.sha256,
        "S3 object",
    );
}

/// fake-gcs-server departs from GCS in one way that matters here: its
/// status query (`Content-Range: bytes */N`) commits the object with what
/// it holds instead of answering 308 (docs/PROTOCOLS.md 5.3). The proxy
/// answers the status query as GCS does — 308 with `Range: bytes=0-N` from
/// the last 308 the server sent for that session, or without `Range` when
/// it holds nothing — and forwards everything else.
fn answer_status_queries_as_gcs(request: &Exchange, before: &[Exchange]) -> Option<ProxyAction> {
    let range = request.request_header("content-range")?;
    if request.method != "PUT" || !range.starts_with("bytes */") {
        return None;
    }
    let session = request.query("upload_id");
    let held = before
        .iter()
        .filter(|e| e.query("upload_id") == session && e.status == Some(308))
        .filter_map(|e| e.response_header("range"))
        .next_back()
        .map(str::to_string);
    Some(ProxyAction::Respond {
        status: 308,
        headers: held.into_iter().map(|r| ("Range".to_string(), r)).collect(),
        body: Vec::new(),
    })
}

/// The first byte of a chunk's `Content-Range: bytes s-e/total`.
fn chunk_start(exchange: &Exchange) -> Option<u64> {
    let range = exchange.request_header("content-range")?;
    let first = range.strip_prefix("bytes ")?.split('-').next()?;
    first.parse().ok()
}

#[test]
fn gcs_kill_9_then_rerun_continues_from_the_status_query() {
    let gcs = FakeGcs::start(&[]);
    let proxy = HttpProxy::start(&gcs.base_url);
    let source = random_file(5 * MIB + 17, 132);
    let state = tempfile::tempdir().expect("a state directory");
    let name = "killed/clip.mp4";
    let initiation = gcs
        .resumable_initiation_url(name)
        .replacen(&gcs.base_url, &proxy.url(), 1);
    let config = serde_json::json!({
        "protocol": "gcs",
        "file": source.path,
        "endpoint": initiation,
        "state_dir": state.path(),
        "chunk_size": MIB,
        "parts": 1,
    });
    proxy.set_rule(|request, before| {
        if let Some(answer) = answer_status_queries_as_gcs(request, before) {
            return answer;
        }
        // The third chunk of the first run hangs (the rerun's chunks come
        // after it in the log, which is kept: it holds the 308s).
        let chunks_before = before.iter().filter(|e| chunk_start(e).is_some()).count();
        if chunk_start(request).is_some() && chunks_before == 2 {
            ProxyAction::StallAfter(256 * KIB)
        } else {
            ProxyAction::Forward
        }
    });
    let mut child = spawn_child(&config, &[]);
    wait_for_log(&proxy, "two chunks held and one in flight", |log| {
        log.iter()
            .filter(|e| chunk_start(e).is_some() && e.status == Some(308))
            .count()
            == 2
            && log
                .iter()
                .any(|e| chunk_start(e).is_some() && e.status.is_none())
    });
    std::thread::sleep(Duration::from_millis(200));
    child.kill().expect("kill -9 the upload");
    let _ = child.wait();
    let first_run = proxy.log();
    let session = first_run
        .iter()
        .find_map(|e| e.query("upload_id"))
        .expect("a session");
    let held = 2 * MIB;
    assert!(gcs.object(name).is_none(), "nothing is committed yet");

    let output = run_child(&config, &[], &proxy);
    assert_eq!(completed_event(&output)["resumed_from"], held, "{output}");
    let rerun = proxy.log().split_off(first_run.len());
    assert!(
        !rerun.iter().any(|e| e.method == "POST"),
        "the rerun continued the same session:\n{}",
        describe(&rerun)
    );
    let status_query = rerun
        .iter()
        .find(|e| e.answered_by_proxy)
        .unwrap_or_else(|| panic!("the rerun asked the status:\n{}", describe(&rerun)));
    assert_eq!(status_query.query("upload_id"), Some(session));
    let starts: Vec<u64> = rerun.iter().filter_map(chunk_start).collect();
    assert_eq!(
        starts.first(),
        Some(&held),
        "the rerun starts where the server stands:\n{}",
        describe(&rerun)
    );
    assert!(starts.iter().all(|&s| s >= held), "{starts:?}");
    assert_stored(
        &gcs.object_bytes(name),
        source.size,
        &source.sha256,
        "GCS object",
    );
}

// --- 2. the S3 gateway goes away mid-part ---------------------------------------------

/// Uploads `path` to `key` of `s3`'s bucket through `proxy`, signed by
/// `signer`: the report and the reason of every retry. Panics with the
/// proxy's log when the upload fails.
async fn s3_upload_through(
    proxy: &HttpProxy,
    s3: &SeaweedFs,
    key: &str,
    options: UploadOptions,
    signer: impl Signer + 'static,
    path: &std::path::Path,
) -> (chunkup::UploadReport, Vec<String>) {
    let mut retries = Vec::new();
    let report = Client::new()
        .expect("a client")
        .upload(options)
        .to(format!("{}/{}/{key}", proxy.url(), s3.bucket))
        .hooks(Hooks::new().signer(signer))
        .on_event(|event| {
            if let UploadEvent::Retrying { reason, .. } = event {
                retries.push(reason.clone());
            }
        })
        .file(path)
        .await
        .unwrap_or_else(|e| panic!("the upload fails: {e}\n{}", describe(&proxy.log())));
    (report, retries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gateway_dies_mid_part_and_the_upload_completes() {
    let s3 = SeaweedFs::start();
    let proxy = HttpProxy::start(&s3.s3_endpoint);
    let source = random_file(16 * MIB + 9, 133);
    let key = "cut/clip.bin";
    // Part 2 is cut after 2 MiB of its body; for the next 1.5 s the
    // gateway is down (connections close at once); then it is back.
    let down_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let down = Arc::clone(&down_until);
    proxy.set_rule(move |request, before| {
        let mut down = down.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = *down
            && Instant::now() < until
        {
            return ProxyAction::Close;
        }
        let part_2_before = before.iter().any(|e| e.s3_part_number() == Some(2));
        if request.s3_part_number() == Some(2) && !part_2_before {
            *down = Some(Instant::now() + Duration::from_millis(1500));
            return ProxyAction::CutAfter(2 * MIB);
        }
        ProxyAction::Forward
    });
    let (report, retries) = s3_upload_through(
        &proxy,
        &s3,
        key,
        s3_options(5 * MIB, 1),
        signer_for(&s3),
        &source.path,
    )
    .await;
    assert_eq!(report.size, source.size);
    let log = proxy.log();
    let part_2: Vec<Option<u16>> = log
        .iter()
        .filter(|e| e.s3_part_number() == Some(2))
        .map(|e| e.status)
        .collect();
    assert_eq!(part_2.first(), Some(&None), "part 2 was cut: {part_2:?}");
    assert_eq!(
        part_2.last(),
        Some(&Some(200)),
        "part 2 went again: {part_2:?}"
    );
    assert!(
        log.iter()
            .any(|e| e.status.is_none() && e.s3_part_number().is_none()),
        "requests met the gateway down:\n{}",
        describe(&log)
    );
    assert!(!retries.is_empty(), "the break was retried");
    assert_stored(
        &s3.get_object(key),
        source.size,
        &source.sha256,
        "S3 object",
    );
}

// --- 3. a presigned URL expires mid-upload ---------------------------------------------

/// Signs like the application's backend would when it presigned every part
/// up front with a short expiry and the upload then took longer: the first
/// URL of each part has already expired when it is used; asked again, it
/// signs afresh.
struct StaleFirstSignature {
    inner: SigV4Signer,
    short: SigV4Signer,
    signed_parts: Mutex<BTreeSet<u32>>,
}

impl Signer for StaleFirstSignature {
    fn sign(
        &self,
        request: SignInput,
    ) -> chunkup::HookFuture<'_, Result<Signed, chunkup::HookError>> {
        let first_time = request.action == S3Action::UploadPart
            && request.part_number.is_some_and(|n| {
                self.signed_parts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(n)
            });
        if !first_time {
            return self.inner.sign(request);
        }
        // Signed two minutes ago, valid for one.
        let then = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
        let url = self.short.presign(&request.method, &request.url, then);
        Box::pin(std::future::ready(url.map(|url| Signed {
            url,
            headers: Vec::new(),
        })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_expired_presigned_urls_are_signed_again() {
    let s3 = SeaweedFs::start();
    let proxy = HttpProxy::start(&s3.s3_endpoint);
    let source = random_file(15 * MIB + 1, 134);
    let key = "expired/clip.bin";
    let signer = StaleFirstSignature {
        inner: signer_for(&s3),
        short: signer_for(&s3).with_expiry(Duration::from_secs(60)),
        signed_parts: Mutex::new(BTreeSet::new()),
    };
    // Two failed attempts in a row end an upload; each part meets one
    // expired URL, which must not add up across parts.
    let options = UploadOptions {
        max_attempts: 2,
        ..s3_options(5 * MIB, 1)
    };
    let (report, retries) =
        s3_upload_through(&proxy, &s3, key, options, signer, &source.path).await;
    assert_eq!(report.size, source.size);
    let log = proxy.log();
    for part in 1..=4 {
        let answers: Vec<Option<u16>> = log
            .iter()
            .filter(|e| e.s3_part_number() == Some(part))
            .map(|e| e.status)
            .collect();
        assert_eq!(
            answers,
            vec![Some(403), Some(200)],
            "part {part}: refused as expired once, then taken"
        );
    }
    assert_eq!(retries.len(), 4, "{retries:?}");
    assert!(
        retries.iter().all(|r| r == "signatureExpired"),
        "{retries:?}"
    );
    assert_stored(
        &s3.get_object(key),
        source.size,
        &source.sha256,
        "S3 object",
    );
}

// --- 4. a 308 without Range; absurd part sizes and counts --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_308_without_range_means_nothing_is_held_and_the_chunk_goes_again() {
    let gcs = FakeGcs::start(&[]);
    let proxy = HttpProxy::start(&gcs.base_url);
    let source = random_file(2 * MIB + 100 * KIB, 135);
    let name = "no-range/clip.mp4";
    // The first chunk never reaches the server; the answer says so the
    // way GCS does: 308 and no Range.
    proxy.set_rule(|request, before| {
        let first_chunk =
            chunk_start(request) == Some(0) && !before.iter().any(|e| chunk_start(e) == Some(0));
        if first_chunk {
            ProxyAction::Respond {
                status: 308,
                headers: Vec::new(),
                body: Vec::new(),
            }
        } else {
            ProxyAction::Forward
        }
    });
    let initiation = gcs
        .resumable_initiation_url(name)
        .replacen(&gcs.base_url, &proxy.url(), 1);
    let report = Client::new()
        .expect("a client")
        .upload(gcs_options(MIB))
        .to(initiation)
        .file(&source.path)
        .await
        .unwrap_or_else(|e| panic!("the upload fails: {e}\n{}", describe(&proxy.log())));
    assert_eq!(report.size, source.size);
    let log = proxy.log();
    let starts: Vec<u64> = log.iter().filter_map(chunk_start).collect();
    assert_eq!(
        starts,
        vec![0, 0, MIB, 2 * MIB],
        "the first chunk went again from 0:\n{}",
        describe(&log)
    );
    assert_stored(
        &gcs.object_bytes(name),
        source.size,
        &source.sha256,
        "GCS object",
    );
}

/// Creates a multipart upload of `key` (as an application's backend would)
/// and returns its id.
fn create_multipart_upload(s3: &SeaweedFs, key: &str) -> String {
    let url = s3.presign_one(Presign::new(
        "create_multipart_upload",
        serde_json::json!({ "Bucket": s3.bucket, "Key": key }),
    ));
    let response = chunkup_interop::http_with_body("POST", &url, &[], &[]);
    assert_eq!(response.status, 200, "{response:?}");
    let xml = String::from_utf8_lossy(&response.body).into_owned();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    doc.descendants()
        .find(|n| n.tag_name().name() == "UploadId")
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no UploadId in {xml}"))
        .to_string()
}

fn list_parts_result(parts: &[(u32, u64)]) -> Vec<u8> {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListPartsResult><Bucket>uploads</Bucket><IsTruncated>false</IsTruncated><MaxParts>1000</MaxParts>",
    );
    for (number, size) in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>&#34;0123456789abcdef0123456789abcdef&#34;</ETag><Size>{size}</Size></Part>"
        ));
    }
    xml.push_str("</ListPartsResult>");
    xml.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_absurd_listed_parts_end_in_a_typed_error_never_a_completion() {
    let s3 = SeaweedFs::start();
    let proxy = HttpProxy::start(&s3.s3_endpoint);
    let source = random_file(11 * MIB, 136);
    // A hostile or broken listing per case: a part larger than the file,
    // and more parts than S3 allows, each as big as the minimum.
    let cases: Vec<(&str, Vec<(u32, u64)>)> = vec![
        ("a 10 TiB part", vec![(1, 10 * 1024 * 1024 * MIB)]),
        ("10,001 parts", (1..=10_001).map(|n| (n, 5 * MIB)).collect()),
    ];
    for (case, listing) in cases {
        let key = format!("absurd/{}.bin", case.replace([' ', ','], "-"));
        let upload_id = create_multipart_upload(&s3, &key);
        let body = list_parts_result(&listing);
        proxy.clear_log();
        proxy.set_rule(move |request, _| {
            if request.is_s3_list_parts() {
                ProxyAction::Respond {
                    status: 200,
                    headers: vec![("Content-Type".into(), "application/xml".into())],
                    body: body.clone(),
                }
            } else {
                ProxyAction::Forward
            }
        });
        let object = format!("{}/{}/{key}", proxy.url(), s3.bucket);
        let options = UploadOptions {
            upload_url: Some(format!("{object}?uploadId={upload_id}")),
            ..s3_options(5 * MIB, 1)
        };
        let error = Client::new()
            .expect("a client")
            .upload(options)
            .to(object)
            .hooks(Hooks::new().signer(signer_for(&s3)))
            .file(&source.path)
            .await
            .expect_err(case);
        let kind = chunkup::UploadError::from(&error).kind();
        assert!(
            matches!(
                kind,
                chunkup::ErrorKind::ProtocolViolation | chunkup::ErrorKind::Rejected
            ),
            "{case}: {kind:?}: {error}"
        );
        let log = proxy.log();
        assert!(
            !log.iter()
                .any(|e| e.method == "POST" && e.query("uploadId").is_some()),
            "{case}: the upload was completed:\n{}",
            describe(&log)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn s3_a_source_over_5_tib_is_refused_before_any_request() {
    let s3 = SeaweedFs::start();
    let proxy = HttpProxy::start(&s3.s3_endpoint);
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("sparse.bin");
    // 5 TiB + 1 byte, sparse: S3 cannot hold it in 10,000 parts of 5 GiB.
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(5 * 1024 * 1024 * MIB + 1)
        .expect("a sparse 5 TiB file");
    let error = Client::new()
        .expect("a client")
        .upload(s3_options(5 * MIB, 4))
        .to(format!("{}/{}/huge.bin", proxy.url(), s3.bucket))
        .hooks(Hooks::new().signer(signer_for(&s3)))
        .file(&path)
        .await
        .expect_err("S3 cannot take it");
    let kind = chunkup::UploadError::from(&error).kind();
    assert_eq!(
        kind,
        chunkup::ErrorKind::InvalidConfig,
        "{error}\n{}",
        describe(&proxy.log())
    );
    assert!(proxy.log().is_empty(), "{}", describe(&proxy.log()));
}

// --- 5. tus over distributed storage: failover between two tusd ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tusd_failover_over_shared_s3_continues_the_same_upload() {
    let s3 = SeaweedFs::start();
    let (first, second) = tusd_pair_over_s3(&s3);
    let first_base = first.endpoint.trim_end_matches("/files/").to_string();
    let second_base = second.endpoint.trim_end_matches("/files/").to_string();
    let balancer = HttpProxy::start(&first_base);
    let source = random_file(20 * MIB + 3, 137);
    // The second PATCH hangs on the first instance after 1 MiB of its body.
    balancer.set_rule(|request, before| {
        let patches = before.iter().filter(|e| e.method == "PATCH").count();
        if request.method == "PATCH" && patches == 1 {
            ProxyAction::StallAfter(MIB)
        } else {
            ProxyAction::Forward
        }
    });
    let upload = {
        let endpoint = format!("{}/files/", balancer.url());
        let path = source.path.clone();
        tokio::spawn(async move {
            Client::new()
                .expect("a client")
                .upload(UploadOptions {
                    protocol: Some(Protocol::Tus),
                    chunk_size: Some(6 * MIB),
                    retry_delays_ms: vec![100],
                    ..UploadOptions::default()
                })
                .to(endpoint)
                .file(&path)
                .await
        })
    };
    wait_for_log(&balancer, "a PATCH hanging on the first tusd", |log| {
        log.iter()
            .any(|e| e.method == "PATCH" && e.status.is_none())
    });
    std::thread::sleep(Duration::from_millis(200));
    // kill -9 the first instance; the balancer sends what follows to the
    // second one.
    drop(first);
    balancer.set_upstream(&second_base);
    balancer.close_all();
    let report = upload
        .await
        .expect("the upload task")
        .unwrap_or_else(|e| panic!("the upload fails: {e}\n{}", describe(&balancer.log())));
    assert_eq!(report.size, source.size);
    let log = balancer.log();
    assert_eq!(
        log.iter().filter(|e| e.method == "POST").count(),
        1,
        "one upload, continued:\n{}",
        describe(&log)
    );
    assert!(
        log.iter().any(|e| e.method == "HEAD"),
        "the client asked the second instance where the upload stands:\n{}",
        describe(&log)
    );
    let upload_url = report.upload_url.expect("an upload URL");
    let upload_id = upload_url.rsplit('/').next().expect("an id").to_string();
    let (object_id, _) = upload_id.split_once('+').expect("tusd's S3 upload id");
    assert_stored(
        &s3.get_object(object_id),
        source.size,
        &source.sha256,
        "tusd's S3 object",
    );
    // The file on disk was not touched.
    assert_eq!(sha256_file(&source.path), source.sha256);
    // The second instance serves the finished upload too.
    let head = http(
        "HEAD",
        &second.url_of(&upload_url),
        &[("Tus-Resumable", "1.0.0")],
    );
    assert_eq!(
        head.headers.get("upload-offset"),
        Some(&source.size.to_string())
    );
}

// --- a status query that commits a short object --------------------------------------

/// fake-gcs-server commits the object with what it holds when asked the
/// status (docs/PROTOCOLS.md 5.3) and answers 200 with the object's
/// resource, `size` included. A client that takes any 200 to a status
/// query for "complete" reports success for a truncated object; the answer
/// says how big the object is, and a size other than the file's must end
/// in a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn gcs_status_query_that_commits_a_short_object_is_never_a_success() {
    let gcs = FakeGcs::start(&[]);
    let source = random_file(3 * MIB + 5, 138);
    let state = tempfile::tempdir().expect("a state directory");
    let name = "short/clip.mp4";
    let client = Client::new()
        .expect("a client")
        .with_resume_store(FileResumeStore::new(state.path()));
    let control = chunkup::UploadControl::new();
    let stopper = control.clone();
    let first = client
        .upload(gcs_options(MIB))
        .to(gcs.resumable_initiation_url(name))
        .control(&control)
        .on_event(move |event| {
            if let UploadEvent::ChunkAcknowledged { offset } = event
                && *offset >= MIB
            {
                stopper.stop();
            }
        })
        .file(&source.path)
        .await;
    assert!(matches!(first, Err(chunkup::Error::Stopped)), "{first:?}");
    let rerun = client
        .upload(gcs_options(MIB))
        .to(gcs.resumable_initiation_url(name))
        .file(&source.path)
        .await;
    let stored = gcs.object_bytes(name);
    match rerun {
        Ok(report) => assert_stored(&stored, source.size, &source.sha256, &format!("{report:?}")),
        Err(error) => {
            let kind = chunkup::UploadError::from(&error).kind();
            assert_eq!(kind, chunkup::ErrorKind::ProtocolViolation, "{error}");
        }
    }
}
