//! Hostile and buggy servers, end to end: the native client (real reqwest IO)
//! against a scripted HTTP/1.1 server on 127.0.0.1 that lies about offsets
//! and lengths, sends garbage headers, bodies that never end, completion it
//! has not earned, and `Location`s on other origins. Every case ends in a
//! typed error or a safe choice; whatever the server stored is a prefix of
//! the source (never corrupt); nothing panics; no credential leaves its
//! origin. (`crates/chunkup-core/tests/hostile.rs` covers the same lies
//! against the engine alone; here they cross real sockets.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chunkup::{Protocol, RetryReason, UploadOptions};
use chunkup_core::Error as CoreError;
use chunkup_e2e::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request as the hostile server read it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.header(name)?.trim().parse().ok()
    }

    /// The start of a ranged `Content-Range: bytes s-e/t`.
    fn range_start(&self) -> Option<u64> {
        let value = self.header("Content-Range")?.strip_prefix("bytes ")?;
        value.split('-').next()?.parse().ok()
    }

    /// The total of a ranged `Content-Range`.
    fn range_total(&self) -> Option<u64> {
        self.header("Content-Range")?
            .rsplit('/')
            .next()?
            .parse()
            .ok()
    }
}

/// How a reply's body is sent.
#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// Chunked, as fast as the client reads, forever.
    Endless,
    /// Chunked, one byte every 100 ms, forever.
    Trickle,
}

/// What the server does with a request.
#[derive(Debug, Clone)]
enum Reply {
    Answer {
        status: u16,
        /// Raw header lines: values may be any bytes.
        headers: Vec<(String, Vec<u8>)>,
        body: Body,
    },
    /// Close the connection without a reply.
    Drop,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply::Answer {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Reply {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name.to_string(), value.as_ref().to_vec()));
        }
        self
    }

    /// Replaces a header the honest reply set.
    fn set(mut self, name: &str, value: impl AsRef<[u8]>) -> Reply {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        self.header(name, value)
    }

    fn body(mut self, with: Body) -> Reply {
        if let Reply::Answer { body, .. } = &mut self {
            *body = with;
        }
        self
    }

    fn header_value(&self, name: &str) -> Option<String> {
        match self {
            Reply::Answer { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
            Reply::Drop => None,
        }
    }
}

/// What the server holds: one upload, stored honestly (bytes land where the
/// request said), whatever the replies claim.
#[derive(Debug, Default)]
struct State {
    data: Vec<u8>,
    total: Option<u64>,
    /// Every request, in order.
    seen: Vec<Req>,
    /// Chunk requests so far (PATCH, or ranged POST/PUT on the upload).
    chunks: usize,
    /// Uploads created.
    created: usize,
    /// An IETF append declared the end (`Upload-Complete: ?1`) and the
    /// server held every byte.
    complete: bool,
}

impl State {
    /// Writes `body` at `offset` when it continues what is held; a gap or
    /// overlap that disagrees is not stored (as a careful server does).
    fn store(&mut self, offset: u64, body: &[u8]) -> bool {
        let Ok(offset) = usize::try_from(offset) else {
            return false;
        };
        if offset != self.data.len() {
            return false;
        }
        self.data.extend_from_slice(body);
        true
    }
}

/// The protocol a server speaks when the script does not interfere.
#[derive(Debug, Clone, Copy)]
enum Honest {
    Ranged,
    Tus,
    Ietf,
}

type Script = dyn Fn(&Req, &mut State, Reply) -> Reply + Send + Sync;

/// A scripted server on 127.0.0.1. Each request gets the honest reply of
/// its protocol, which the script may replace or alter.
struct Hostile {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    async fn start(
        honest: Honest,
        script: impl Fn(&Req, &mut State, Reply) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        let listener = TcpListener::bind(loopback()).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let script: Arc<Script> = Arc::new(script);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connection tasks end with the runtime at the end of the test.
            while let Ok((stream, _)) = listener.accept().await {
                let (state, script) = (shared.clone(), script.clone());
                tokio::spawn(serve(stream, honest, state, script));
            }
        });
        Hostile { addr, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn data(&self) -> Vec<u8> {
        self.lock().data.clone()
    }

    fn seen(&self) -> Vec<Req> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(stream: TcpStream, honest: Honest, state: Arc<Mutex<State>>, script: Arc<Script>) {
    let mut stream = BufReader::new(stream);
    while let Some(req) = read_request(&mut stream).await {
        let reply = {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.seen.push(req.clone());
            let fair = honest_reply(honest, &req, &mut state);
            script(&req, &mut state, fair)
        };
        if write_reply(stream.get_mut(), &req, reply).await.is_err() {
            return;
        }
    }
}

async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut req = Req {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let length = req.number("Content-Length").unwrap_or(0);
    let mut body = vec![0; usize::try_from(length).ok()?];
    stream.read_exact(&mut body).await.ok()?;
    req.body = body;
    Some(req)
}

async fn write_reply(stream: &mut TcpStream, req: &Req, reply: Reply) -> std::io::Result<()> {
    let Reply::Answer {
        status,
        headers,
        body,
    } = reply
    else {
        return stream.shutdown().await;
    };
    let mut head = format!("HTTP/1.1 {status} Scripted\r\n").into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(&value);
        head.extend_from_slice(b"\r\n");
    }
    let no_body = status == 204 || req.method == "HEAD";
    match body {
        Body::Bytes(bytes) => {
            if !no_body {
                head.extend_from_slice(format!("Content-Length: {}\r\n", bytes.len()).as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            if !no_body {
                head.extend_from_slice(&bytes);
            }
            stream.write_all(&head).await?;
            stream.flush().await
        }
        Body::Endless | Body::Trickle => {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            stream.write_all(&head).await?;
            let fast = matches!(body, Body::Endless);
            let piece = if fast { vec![b'x'; 4096] } else { vec![b'x'] };
            loop {
                let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
                chunk.extend_from_slice(&piece);
                chunk.extend_from_slice(b"\r\n");
                // Ends when the client hangs up.
                stream.write_all(&chunk).await?;
                if !fast {
                    stream.flush().await?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// What a correct server of `honest`'s protocol answers.
fn honest_reply(honest: Honest, req: &Req, state: &mut State) -> Reply {
    let held = state.data.len() as u64;
    let on_upload = req.path.matches('/').count() >= 2;
    match (honest, req.method.as_str(), on_upload) {
        (Honest::Ranged, "POST", false) => {
            state.created += 1;
            state.total = req.number("X-Upload-Content-Length");
            Reply::status(201)
                .header("Location", "/up/1")
                .header("X-Last-Known-Byte", "-1")
        }
        (Honest::Ranged, "POST" | "PUT", true) => {
            state.chunks += 1;
            if state.total.is_some() && req.range_total() != state.total {
                return Reply::status(400);
            }
            let start = req.range_start().unwrap_or(u64::MAX);
            if !state.store(start, &req.body) {
                return Reply::status(416).header("X-Last-Known-Byte", lkb(state));
            }
            Reply::status(200).header("X-Last-Known-Byte", lkb(state))
        }
        (Honest::Ranged, "GET", true) => {
            let total = state.total.unwrap_or_default();
            let body = match held {
                0 => String::new(),
                n => format!("0-{}/{total}", n - 1),
            };
            Reply::status(200)
                .header("X-Last-Known-Byte", lkb(state))
                .body(Body::Bytes(body.into_bytes()))
        }
        (Honest::Tus, "OPTIONS", _) => Reply::status(204)
            .header("Tus-Resumable", "1.0.0")
            .header("Tus-Version", "1.0.0")
            .header("Tus-Extension", "creation,termination"),
        (Honest::Tus | Honest::Ietf, "POST", false) => {
            state.created += 1;
            state.total = req.number("Upload-Length");
            state.store(0, &req.body);
            let location = if matches!(honest, Honest::Tus) {
                "/tus/1"
            } else {
                "/ietf/1"
            };
            versioned(honest, Reply::status(201))
                .header("Location", location)
                .header("Upload-Offset", state.data.len().to_string())
        }
        (Honest::Tus | Honest::Ietf, "PATCH", true) => {
            state.chunks += 1;
            let offset = req.number("Upload-Offset").unwrap_or(u64::MAX);
            if let Some(length) = req.number("Upload-Length") {
                state.total = Some(length);
            }
            if !state.store(offset, &req.body) {
                return versioned(honest, Reply::status(409))
                    .header("Upload-Offset", held.to_string());
            }
            if req.header("Upload-Complete") == Some("?1")
                && state.total == Some(state.data.len() as u64)
            {
                state.complete = true;
            }
            versioned(honest, Reply::status(204))
                .header("Upload-Offset", state.data.len().to_string())
        }
        (Honest::Tus | Honest::Ietf, "HEAD", true) => {
            let mut reply =
                versioned(honest, Reply::status(200)).header("Upload-Offset", held.to_string());
            if let Some(total) = state.total {
                reply = reply.header("Upload-Length", total.to_string());
            }
            if matches!(honest, Honest::Ietf) {
                reply = reply.header("Upload-Complete", if state.complete { "?1" } else { "?0" });
            }
            reply
        }
        (_, "DELETE", true) => Reply::status(204),
        _ => Reply::status(405),
    }
}

fn versioned(honest: Honest, reply: Reply) -> Reply {
    match honest {
        Honest::Tus => reply.header("Tus-Resumable", "1.0.0"),
        _ => reply.header("Upload-Draft-Interop-Version", "8"),
    }
}

fn lkb(state: &State) -> String {
    (state.data.len() as i64 - 1).to_string()
}

fn endpoint(server: &Hostile, honest: Honest) -> String {
    server.url(match honest {
        Honest::Ranged => "/up",
        Honest::Tus => "/tus",
        Honest::Ietf => "/ietf",
    })
}

/// Fixed 16 KiB chunks, a short stall timeout, few retries, and the
/// protocol fixed (tus still discovers its extensions).
fn options(honest: Honest) -> UploadOptions {
    UploadOptions {
        protocol: match honest {
            Honest::Ranged => Some(Protocol::Ranged),
            Honest::Tus => Some(Protocol::Tus),
            Honest::Ietf => Some(Protocol::Ietf),
        },
        max_attempts: 5,
        stall_timeout_ms: 700,
        deadline_ms: Some(30_000),
        // The backoff of `quick_backoff`, not explicit delays.
        retry_delays_ms: Vec::new(),
        ..fixed_options(16 * KIB)
    }
}

/// Short backoff (10 to 50 ms) and `Retry-After` clamped to 200 ms.
fn quick_backoff(settings: &mut chunkup::UploadSettings) {
    settings.retry.initial_delay = Duration::from_millis(10);
    settings.retry.max_delay = Duration::from_millis(50);
    settings.retry.max_retry_after = Duration::from_millis(200);
}

/// Uploads a fresh 100 KiB file to `server` and returns the outcome and the
/// source's bytes.
async fn upload(
    server: &Hostile,
    honest: Honest,
    options: UploadOptions,
) -> (Result<chunkup::UploadReport, chunkup::Error>, Vec<u8>) {
    upload_to(&endpoint(server, honest), options, 100 * KIB).await
}

async fn upload_to(
    endpoint: &str,
    options: UploadOptions,
    size: u64,
) -> (Result<chunkup::UploadReport, chunkup::Error>, Vec<u8>) {
    let source = random_file(size, size ^ 0x5eed);
    let bytes = std::fs::read(&source.path).expect("read the source");
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        client()
            .upload(options)
            .to(endpoint)
            .tune(quick_backoff)
            .file(&source.path),
    )
    .await
    .expect("the upload ends (no hang)");
    (outcome, bytes)
}

/// Never corruption: what the server stored is the start of the source.
fn assert_prefix(stored: &[u8], source: &[u8]) {
    assert!(
        stored.len() <= source.len() && stored == &source[..stored.len()],
        "the server holds {} bytes that are not a prefix of the source",
        stored.len()
    );
}

fn violation<T: std::fmt::Debug>(outcome: &Result<T, chunkup::Error>) -> bool {
    matches!(
        outcome,
        Err(chunkup::Error::Upload(CoreError::ProtocolViolation(_)))
    )
}

fn exhausted<T: std::fmt::Debug>(outcome: &Result<T, chunkup::Error>) -> bool {
    matches!(
        outcome,
        Err(chunkup::Error::Upload(CoreError::RetriesExhausted { .. }))
    )
}

#[tokio::test]
async fn offset_going_backwards_once_is_refilled_exactly() {
    // After the third chunk the server "loses" 20,000 bytes (a failover):
    // it holds less than the chunk started at.
    let server = Hostile::start(Honest::Tus, |req, state, fair| {
        if req.method == "PATCH" && state.chunks == 3 {
            state.data.truncate(state.data.len() - 20_000);
            return fair.set("Upload-Offset", state.data.len().to_string());
        }
        fair
    })
    .await;
    let (outcome, source) = upload(&server, Honest::Tus, options(Honest::Tus)).await;
    let report = outcome.expect("a one-off rewind is recovered");
    assert!(
        report
            .retries
            .iter()
            .any(|r| matches!(r, RetryReason::OffsetMovedBack { .. })),
        "{:?}",
        report.retries
    );
    assert_eq!(server.data(), source, "the server holds exactly the source");
}

#[tokio::test]
async fn offset_that_keeps_going_backwards_ends_in_retries_exhausted() {
    // Every append is "lost" again: a server that never keeps anything.
    let server = Hostile::start(Honest::Ietf, |req, state, fair| {
        if req.method == "PATCH" && state.chunks > 1 {
            let keep = state.data.len().saturating_sub(req.body.len() + 100);
            state.data.truncate(keep);
            return fair.set("Upload-Offset", keep.to_string());
        }
        fair
    })
    .await;
    let (outcome, source) = upload(&server, Honest::Ietf, options(Honest::Ietf)).await;
    assert!(exhausted(&outcome), "{outcome:?}");
    assert_prefix(&server.data(), &source);
}

#[tokio::test]
async fn offset_beyond_what_was_sent_is_a_protocol_violation() {
    for honest in [Honest::Ranged, Honest::Tus, Honest::Ietf] {
        let server = Hostile::start(honest, move |req, state, fair| {
            if state.chunks == 2 && matches!(req.method.as_str(), "POST" | "PATCH") {
                // Claims 1,000 bytes more than it was ever sent.
                let claimed = state.data.len() as u64 + 1000;
                return match honest {
                    Honest::Ranged => fair.set("X-Last-Known-Byte", (claimed - 1).to_string()),
                    _ => fair.set("Upload-Offset", claimed.to_string()),
                };
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, honest, options(honest)).await;
        assert!(violation(&outcome), "{honest:?}: {outcome:?}");
        assert_prefix(&server.data(), &source);
    }
}

#[tokio::test]
async fn completion_claimed_before_all_bytes_were_sent_is_refused() {
    // The first append is answered as if the whole file had arrived.
    for honest in [Honest::Ranged, Honest::Tus, Honest::Ietf] {
        let server = Hostile::start(honest, move |req, state, fair| {
            let total = state.total.unwrap_or_default();
            if state.chunks == 1 && matches!(req.method.as_str(), "POST" | "PATCH") {
                return match honest {
                    Honest::Ranged => fair.set("X-Last-Known-Byte", (total - 1).to_string()),
                    _ => fair
                        .set("Upload-Offset", total.to_string())
                        .header("Upload-Complete", "?1"),
                };
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, honest, options(honest)).await;
        assert!(violation(&outcome), "{honest:?}: {outcome:?}");
        assert_prefix(&server.data(), &source);
        assert!(server.data().len() < source.len());
    }
}

#[tokio::test]
async fn absurd_lengths_are_refused() {
    // Each value replaces a length or offset in the status answer the
    // client asks for after the first append's connection broke.
    let cases: [(Honest, &str, &str); 7] = [
        (Honest::Tus, "Upload-Length", "18446744073709551615"),
        (Honest::Tus, "Upload-Length", "5"),
        (Honest::Tus, "Upload-Offset", "-16384"),
        (Honest::Tus, "Upload-Offset", "18446744073709551616"),
        (Honest::Ietf, "Upload-Length", "99999999999"),
        (Honest::Ietf, "Upload-Offset", "18446744073709551615"),
        (Honest::Ranged, "X-Last-Known-Byte", "-7"),
    ];
    for (honest, name, value) in cases {
        let server = Hostile::start(honest, move |req, state, fair| {
            if state.chunks == 1 && matches!(req.method.as_str(), "POST" | "PATCH") {
                return Reply::Drop;
            }
            if matches!(req.method.as_str(), "HEAD" | "GET") {
                return fair.set(name, value);
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, honest, options(honest)).await;
        assert!(violation(&outcome), "{name}: {value}: {outcome:?}");
        assert_prefix(&server.data(), &source);
    }
}

#[tokio::test]
async fn ranged_status_body_with_another_total_is_refused() {
    let server = Hostile::start(Honest::Ranged, |req, state, fair| {
        if state.chunks == 1 && req.method == "POST" {
            return Reply::Drop;
        }
        if req.method == "GET" {
            // No LKB header: the body is all there is, and it lies.
            return Reply::status(200).body(Body::Bytes(b"0-9/18446744073709551615".to_vec()));
        }
        fair
    })
    .await;
    let (outcome, source) = upload(&server, Honest::Ranged, options(Honest::Ranged)).await;
    assert!(violation(&outcome), "{outcome:?}");
    assert_prefix(&server.data(), &source);
}

#[tokio::test]
async fn garbage_headers_end_in_typed_errors() {
    // Values that are not numbers, not text at all, or not valid HTTP.
    let cases: [(Honest, &str, &[u8]); 5] = [
        (Honest::Tus, "Upload-Offset", b"12abc"),
        (Honest::Tus, "Upload-Offset", b"\xff\xfe"),
        (Honest::Ietf, "Upload-Offset", b" 1e5 "),
        (Honest::Ranged, "X-Last-Known-Byte", b"0x10"),
        (Honest::Ranged, "X-Last-Known-Byte", b"\x01\x02"),
    ];
    for (honest, name, value) in cases {
        let server = Hostile::start(honest, move |req, state, fair| {
            if state.chunks >= 1 && matches!(req.method.as_str(), "POST" | "PATCH") {
                return fair.set(name, value);
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, honest, options(honest)).await;
        match &outcome {
            // A value hyper itself rejects is a broken response: the client
            // asks for the offset instead, and this server stored honestly.
            Ok(_) => assert_eq!(server.data(), source, "{name}: {value:?}"),
            Err(_) => assert!(
                violation(&outcome) || exhausted(&outcome),
                "{name}: {value:?}: {outcome:?}"
            ),
        }
        assert_prefix(&server.data(), &source);
    }
}

#[tokio::test]
async fn malformed_http_is_a_broken_connection_not_a_panic() {
    // A header line without a colon is not HTTP: the client retries, and
    // completes once the server answers properly again.
    let server = Hostile::start(Honest::Ranged, |req, state, fair| {
        if state.chunks == 2 && req.method == "POST" {
            return fair.header("this is not a header\x01", "");
        }
        fair
    })
    .await;
    let (outcome, source) = upload(&server, Honest::Ranged, options(Honest::Ranged)).await;
    let report = outcome.expect("a single garbled reply is survived");
    assert!(!report.retries.is_empty());
    assert_eq!(server.data(), source);
}

#[tokio::test]
async fn huge_retry_after_is_clamped() {
    let server = Hostile::start(Honest::Tus, |req, state, fair| {
        if state.chunks == 2 && req.method == "PATCH" {
            state.data.truncate(state.data.len() - req.body.len());
            return versioned(Honest::Tus, Reply::status(503))
                .header("Retry-After", "999999999999");
        }
        fair
    })
    .await;
    let started = std::time::Instant::now();
    let (outcome, source) = upload(&server, Honest::Tus, options(Honest::Tus)).await;
    outcome.expect("one busy answer is survived");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.data(), source);
}

#[tokio::test]
async fn a_200_whose_body_never_ends_is_bounded() {
    // Fast: the client reads a bounded prefix and goes on. Trickling: the
    // stall timeout cuts it, the chunk is checked with the server and the
    // upload completes.
    for body in [Body::Endless, Body::Trickle] {
        let trickle = matches!(body, Body::Trickle);
        let server = Hostile::start(Honest::Ranged, move |req, state, fair| {
            if state.chunks == 2 && req.method == "POST" {
                return fair.body(body.clone());
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, Honest::Ranged, options(Honest::Ranged)).await;
        let report = outcome.unwrap_or_else(|e| panic!("trickle {trickle}: {e}"));
        if trickle {
            assert!(
                report.retries.contains(&RetryReason::Stalled),
                "{:?}",
                report.retries
            );
        }
        assert_eq!(server.data(), source);
    }
}

#[tokio::test]
async fn a_body_that_never_ends_on_every_answer_gives_up() {
    // Every append is answered `200` with an endless trickle, and not kept.
    let server = Hostile::start(Honest::Tus, |req, state, fair| {
        if req.method == "PATCH" {
            let keep = state.data.len() - req.body.len();
            state.data.truncate(keep);
            return versioned(Honest::Tus, Reply::status(200))
                .header("Upload-Offset", keep.to_string())
                .body(Body::Trickle);
        }
        fair
    })
    .await;
    let (outcome, source) = upload(&server, Honest::Tus, options(Honest::Tus)).await;
    assert!(exhausted(&outcome), "{outcome:?}");
    assert_prefix(&server.data(), &source);
}

/// The decision (ARCHITECTURE.md, *Credentials*): a `Location` on another
/// origin is followed, without the configured credentials. The other origin
/// here is a second listener on another port.
#[tokio::test]
async fn location_on_another_origin_never_receives_credentials() {
    for honest in [Honest::Ranged, Honest::Tus, Honest::Ietf] {
        let other = Hostile::start(honest, |_, _, fair| fair).await;
        let elsewhere = other.url("/x/1");
        let main = Hostile::start(honest, move |_, _, fair| {
            if fair.header_value("Location").is_some() {
                return fair.set("Location", &elsewhere);
            }
            fair
        })
        .await;
        let mut options = options(honest);
        options.headers = vec![
            chunkup::KeyValue::new("Authorization", "Bearer s3cret"),
            chunkup::KeyValue::new("Cookie", "session=s3cret"),
            chunkup::KeyValue::new("Proxy-Authorization", "Basic s3cret"),
            chunkup::KeyValue::new("X-Tenant", "t1"),
        ];
        let (outcome, source) = upload(&main, honest, options).await;
        let report = outcome.unwrap_or_else(|e| panic!("{honest:?}: {e}"));
        assert!(report.url().starts_with(&other.url("/")));
        // The home origin got the credential with the creation.
        let created = &main.seen()[main.seen().len() - 1];
        assert_eq!(created.header("Authorization"), Some("Bearer s3cret"));
        let seen = other.seen();
        assert!(
            !seen.is_empty(),
            "{honest:?}: the other origin got the chunks"
        );
        for req in &seen {
            for name in ["Authorization", "Cookie", "Proxy-Authorization"] {
                assert_eq!(req.header(name), None, "{honest:?}: {name} leaked: {req:?}");
            }
            assert_eq!(req.header("X-Tenant"), Some("t1"));
        }
        assert_eq!(other.data(), source);
    }
}

#[tokio::test]
async fn same_port_under_another_host_name_is_another_origin() {
    // `localhost` and `127.0.0.1` reach the same listener but are different
    // origins: the credential stays with the one the upload started on.
    let main_port = Arc::new(Mutex::new(0u16));
    let port = main_port.clone();
    let server = Hostile::start(Honest::Tus, move |_, _, fair| {
        if fair.header_value("Location").is_some() {
            let port = *port.lock().unwrap_or_else(|e| e.into_inner());
            return fair.set("Location", format!("http://localhost:{port}/tus/1"));
        }
        fair
    })
    .await;
    *main_port.lock().unwrap_or_else(|e| e.into_inner()) = server.port();
    let mut options = options(Honest::Tus);
    options.headers = vec![chunkup::KeyValue::new("Authorization", "Bearer s3cret")];
    let (outcome, source) = upload(&server, Honest::Tus, options).await;
    outcome.expect("the upload completes without the credential");
    for req in server.seen() {
        let to_localhost = req
            .header("Host")
            .is_some_and(|h| h.starts_with("localhost"));
        assert_eq!(
            req.header("Authorization").is_some(),
            !to_localhost,
            "{req:?}"
        );
    }
    assert_eq!(server.data(), source);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    // A 307 would re-send the body and the credential to wherever the
    // server points; the client treats it as a refusal instead.
    let other = Hostile::start(Honest::Tus, |_, _, fair| fair).await;
    let target = other.url("/tus/1");
    let server = Hostile::start(Honest::Tus, move |req, _, fair| {
        if req.method == "PATCH" {
            return Reply::status(307).header("Location", &target);
        }
        fair
    })
    .await;
    let mut options = options(Honest::Tus);
    options.headers = vec![chunkup::KeyValue::new("Authorization", "Bearer s3cret")];
    let (outcome, source) = upload(&server, Honest::Tus, options).await;
    assert!(
        matches!(
            outcome,
            Err(chunkup::Error::Upload(CoreError::Rejected {
                status: 307,
                ..
            }))
        ),
        "{outcome:?}"
    );
    assert!(other.seen().is_empty(), "the redirect target was contacted");
    assert_prefix(&server.data(), &source);
}

#[tokio::test]
async fn location_with_another_scheme_is_refused() {
    for location in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://127.0.0.1/x",
    ] {
        let server = Hostile::start(Honest::Ranged, move |_, _, fair| {
            if fair.header_value("Location").is_some() {
                return fair.set("Location", location);
            }
            fair
        })
        .await;
        let (outcome, _) = upload(&server, Honest::Ranged, options(Honest::Ranged)).await;
        assert!(
            matches!(
                outcome,
                Err(chunkup::Error::Upload(CoreError::InvalidUrl { .. }))
            ),
            "{location}: {outcome:?}"
        );
        assert!(server.data().is_empty());
    }
}

#[tokio::test]
async fn a_creation_answered_with_a_chunk_only_status_is_refused() {
    // The engine panicked on this before fuzzing found it (409/460 to a
    // POST asked to resend a chunk of an upload with no URL yet).
    for status in [409, 460] {
        let server = Hostile::start(Honest::Tus, move |req, _, fair| {
            if req.method == "POST" {
                return versioned(Honest::Tus, Reply::status(status));
            }
            fair
        })
        .await;
        let (outcome, _) = upload(&server, Honest::Tus, options(Honest::Tus)).await;
        assert!(
            matches!(
                outcome,
                Err(chunkup::Error::Upload(CoreError::Rejected { status: s, .. })) if s == status
            ),
            "{status}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn tus_max_size_garbage_is_ignored_and_too_small_refused() {
    for (value, completes) in [("-1", true), ("lots", true), ("1000", false)] {
        let server = Hostile::start(Honest::Tus, move |req, _, fair| {
            if req.method == "OPTIONS" {
                return fair.header("Tus-Max-Size", value);
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, Honest::Tus, options(Honest::Tus)).await;
        if completes {
            outcome.unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(server.data(), source);
        } else {
            assert!(
                matches!(
                    outcome,
                    Err(chunkup::Error::Upload(CoreError::Rejected {
                        status: 413,
                        ..
                    }))
                ),
                "{outcome:?}"
            );
            assert_eq!(server.lock().created, 0, "nothing is created");
        }
    }
}

#[tokio::test]
async fn ietf_every_byte_held_is_not_complete_until_declared() {
    // The last append arrives whole but its answer is lost; the offset
    // answer then says every byte is held, `Upload-Complete: ?0`. Found by
    // the chaos soak: the client took that for completion. It must declare
    // the end with an empty `?1` append.
    let server = Hostile::start(Honest::Ietf, |req, state, fair| {
        if req.method == "PATCH" && req.header("Upload-Complete") == Some("?1") && state.chunks == 7
        {
            // Every byte is kept; the completion is not recorded.
            state.complete = false;
            return Reply::Drop;
        }
        fair
    })
    .await;
    let (outcome, source) = upload(&server, Honest::Ietf, options(Honest::Ietf)).await;
    outcome.expect("the upload completes");
    assert!(server.lock().complete, "the server never heard the end");
    assert_eq!(server.data(), source);
    let seen: Vec<_> = server
        .seen()
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {:?} {}",
                r.method,
                r.header("Upload-Offset"),
                r.header("Upload-Complete"),
                r.body.len()
            )
        })
        .collect();
    let last = server.seen().pop().expect("requests");
    assert_eq!(last.method, "PATCH", "{seen:#?}");
    assert!(last.body.is_empty(), "{last:?}");
}

#[tokio::test]
async fn another_origin_that_wants_the_credential_ends_in_rejected() {
    // The other origin insists on a credential it never gets: 401, a typed
    // refusal, and still no credential on the wire.
    let other = Hostile::start(Honest::Tus, |req, _, fair| {
        if req.method == "PATCH" {
            return versioned(Honest::Tus, Reply::status(401));
        }
        fair
    })
    .await;
    let elsewhere = other.url("/tus/1");
    let main = Hostile::start(Honest::Tus, move |_, _, fair| {
        if fair.header_value("Location").is_some() {
            return fair.set("Location", &elsewhere);
        }
        fair
    })
    .await;
    let mut options = options(Honest::Tus);
    options.headers = vec![chunkup::KeyValue::new("Authorization", "Bearer s3cret")];
    let (outcome, _) = upload(&main, Honest::Tus, options).await;
    assert!(
        matches!(
            outcome,
            Err(chunkup::Error::Upload(CoreError::Rejected {
                status: 401,
                ..
            }))
        ),
        "{outcome:?}"
    );
    assert!(!other.seen().is_empty());
    assert!(
        other
            .seen()
            .iter()
            .all(|r| r.header("Authorization").is_none())
    );
}

#[tokio::test]
async fn upload_limit_is_obeyed_and_garbage_in_it_ignored() {
    for (limit, max_body) in [
        ("max-append-size=4096", 4096),
        (
            "max-append-size=-5, min-append-size=\"x\"",
            16 * KIB as usize,
        ),
        (";;;=,", 16 * KIB as usize),
    ] {
        let server = Hostile::start(Honest::Ietf, move |_, _, fair| {
            if fair.header_value("Location").is_some() {
                return fair.header("Upload-Limit", limit);
            }
            fair
        })
        .await;
        let (outcome, source) = upload(&server, Honest::Ietf, options(Honest::Ietf)).await;
        outcome.unwrap_or_else(|e| panic!("{limit}: {e}"));
        assert_eq!(server.data(), source);
        let largest = server.seen().iter().map(|r| r.body.len()).max();
        assert_eq!(largest, Some(max_body), "{limit}");
    }
}
