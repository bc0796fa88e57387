//! Failover: two reference servers share one store; the first keeps the
//! newest megabyte of each upload in memory (write-behind) and crashes. The
//! second holds less than the first acknowledged: a hole. The client must
//! find it (from a `416` + `X-Last-Known-Byte`, or from the status poll after
//! a broken connection), fill it, and complete with the exact bytes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chunkup::{RetryReason, UploadEvent as Event, UploadReport};
use chunkup_e2e::*;
use chunkup_server::proxy::FailoverProxy;
use chunkup_server::{RunningServer, ServerConfig};

/// The write-behind of every server here.
const WRITE_BEHIND: u64 = MIB;
/// A acknowledges this much, then crashes.
const CRASH_AFTER: u64 = 2 * MIB;

fn config(dir: &Path, faults: &str) -> ServerConfig {
    ServerConfig {
        dir: dir.to_path_buf(),
        faults: faults.parse().expect("valid faults"),
        write_behind: WRITE_BEHIND,
        admin: chunkup_server::AdminAccess::open(),
        ..ServerConfig::default()
    }
}

/// Servers A and B on one store, and a failover proxy in front of [A, B].
async fn pair(dir: &Path, faults_a: &str) -> (RunningServer, RunningServer, FailoverProxy) {
    let a = start_server_with(config(dir, faults_a)).await;
    let b = start_server_with(config(dir, "none")).await;
    let proxy = FailoverProxy::start(loopback(), vec![a.addr(), b.addr()])
        .await
        .expect("the proxy starts");
    (a, b, proxy)
}

/// Length of the only upload's `.bin` in the store: what reached the disk.
fn bytes_on_disk(dir: &Path) -> u64 {
    try_bytes_on_disk(dir).expect("one upload in the store")
}

/// Length of the only upload's `.bin` in the store, once there is one.
fn try_bytes_on_disk(dir: &Path) -> Option<u64> {
    let bins: Vec<_> = std::fs::read_dir(dir)
        .expect("read the store")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .collect();
    assert!(bins.len() <= 1, "one upload in the store: {bins:?}");
    Some(bins.first()?.metadata().expect("metadata").len())
}

/// Starts a server on `addr` from inside a synchronous callback that runs on
/// the runtime (a plain thread may block on the runtime's handle).
fn start_blocking(addr: SocketAddr, config: ServerConfig) -> RunningServer {
    let handle = tokio::runtime::Handle::current();
    std::thread::scope(|s| {
        s.spawn(|| handle.block_on(chunkup_server::start(addr, config)))
            .join()
            .expect("the starting thread does not panic")
    })
    .expect("the server starts")
}

/// Asserts the retries of an upload that met the hole left by A's crash:
/// the 416 (an `OffsetMovedBack` to exactly what B holds) and, at most,
/// broken connections around it. Returns whether the 416 was seen.
fn met_the_hole(report: &UploadReport, crashed_at: u64, on_disk: u64) -> bool {
    let hole = RetryReason::OffsetMovedBack {
        from: crashed_at,
        to: on_disk,
    };
    let others_are_breaks = report
        .retries
        .iter()
        .filter(|r| **r != hole)
        .all(|r| matches!(r, RetryReason::Transport(_)));
    assert!(
        !report.retries.is_empty() && report.retries.len() <= 3 && others_are_breaks,
        "expected the hole (a 416) and at most broken connections: {:?}",
        report.retries
    );
    report.retries.iter().filter(|r| **r == hole).count() == 1
}

/// How a crash of A between two chunks went.
#[derive(Debug)]
struct Crashed {
    report: UploadReport,
    events: Vec<Event>,
    /// Bytes A had acknowledged when it crashed.
    crashed_at: u64,
    /// Bytes of the upload on disk right after the crash.
    on_disk: u64,
}

/// Uploads `source` to `endpoint` with fixed `chunk`s. Right after the
/// server acknowledged [`CRASH_AFTER`] bytes, from inside the event callback
/// (so no request is in flight), `a` crashes, then `then` runs (e.g. starts
/// its replacement), then the callback lingers so the crash reaches every
/// connection before the next chunk is sent.
async fn upload_crashing_between_chunks(
    source: &SourceFile,
    endpoint: &str,
    chunk: u64,
    store: &Path,
    a: RunningServer,
    mut then: impl FnMut() + Send,
) -> Crashed {
    let mut a = Some(a);
    let mut crash = None;
    let mut events = Vec::new();
    let report = client()
        .upload_file(&source.path, endpoint, fixed_options(chunk), |e| {
            events.push(e.clone());
            if let Event::ChunkAcknowledged { offset } = e
                && *offset >= CRASH_AFTER
                && let Some(server) = a.take()
            {
                server.crash();
                crash = Some((*offset, bytes_on_disk(store)));
                then();
                // Blocking here is deliberate: the crash must land between
                // two chunks, and its connections must be gone before the
                // client sends the next one.
                std::thread::sleep(Duration::from_millis(300));
            }
        })
        .await
        .expect("the upload completes after the crash");
    let (crashed_at, on_disk) = crash.expect("A was crashed");
    assert_eq!(crashed_at, CRASH_AFTER);
    assert_eq!(
        on_disk,
        crashed_at - WRITE_BEHIND,
        "A's crash lost its write-behind buffer"
    );
    assert_eq!(
        rewinds(&events),
        vec![(crashed_at, on_disk)],
        "the client learnt that the server went back to what reached the disk"
    );
    // Progress never shows the server's step back.
    assert_progress_monotonic(&events, source.size);
    Crashed {
        report,
        events,
        crashed_at,
        on_disk,
    }
}

/// The first acknowledgement after the first retry.
fn first_ack_after_retry(events: &[Event]) -> Option<u64> {
    events
        .iter()
        .skip_while(|e| !matches!(e, Event::Retrying { .. }))
        .find_map(|e| match e {
            Event::ChunkAcknowledged { offset } => Some(*offset),
            _ => None,
        })
}

/// A crashes between two chunks and B takes over its address (a restarted
/// process on the same port, same store). The client's next chunk starts a
/// megabyte beyond what B holds: B answers `416` + `X-Last-Known-Byte`, and
/// the client goes back exactly to B's offset and fills the hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_place_meets_the_hole_as_a_416() {
    let chunk = 256 * KIB;
    let store = tempfile::tempdir().expect("store dir");
    let a = start_server_with(config(store.path(), "none")).await;
    let addr = a.addr();
    let endpoint = a.ranged_endpoint();
    let source = random_file(4 * MIB + 777, 600);
    let mut b = None;
    let run = upload_crashing_between_chunks(&source, &endpoint, chunk, store.path(), a, || {
        b = Some(start_blocking(addr, config(store.path(), "none")));
    })
    .await;
    let b = b.expect("B took over");
    assert!(
        met_the_hole(&run.report, run.crashed_at, run.on_disk),
        "the client never saw B's 416: {:?}",
        run.report.retries
    );
    // The first retry is the 416; the next chunk is acknowledged at B's
    // offset plus one chunk, so it started exactly at B's offset.
    assert!(
        matches!(
            run.report.retries.first(),
            Some(RetryReason::OffsetMovedBack { .. })
        ),
        "{:?}",
        run.report.retries
    );
    assert_eq!(
        first_ack_after_retry(&run.events),
        Some(run.on_disk + chunk)
    );
    let stored = assert_stored_exactly(&b.base_url(), run.report.url(), &source).await;
    assert_eq!(
        stored.bytes_received(),
        source.size - run.on_disk,
        "B received exactly the hole and the rest"
    );
    b.shutdown().await;
}

/// Through the failover proxy: A crashes between two chunks, the proxy sends
/// the next connection to B, and the client fills the hole, whether it saw
/// B's `416` or only a broken connection and then B's offset in the status
/// poll (the proxy often turns B's 416-then-close into a bare reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_through_the_proxy_fills_the_hole() {
    for (chunk, seed) in [(16 * KIB, 601u64), (256 * KIB, 602)] {
        let store = tempfile::tempdir().expect("store dir");
        let (a, b, proxy) = pair(store.path(), "none").await;
        let source = random_file(4 * MIB + 777, seed);
        let endpoint = format!("{}/ranged", proxy.url());
        let run =
            upload_crashing_between_chunks(&source, &endpoint, chunk, store.path(), a, || {}).await;
        assert_eq!(proxy.current_backend(), 1, "the proxy failed over to B");
        assert!(
            run.report
                .url()
                .starts_with(&format!("{}/ranged/", proxy.url())),
            "{}",
            run.report.url()
        );
        let saw_416 = met_the_hole(&run.report, run.crashed_at, run.on_disk);
        eprintln!(
            "chunk {chunk}: {} retries: {:?}",
            if saw_416 { "416 seen" } else { "416 lost" },
            run.report.retries
        );
        assert_eq!(
            first_ack_after_retry(&run.events),
            Some(run.on_disk + chunk)
        );
        let stored = assert_stored_exactly(&b.base_url(), run.report.url(), &source).await;
        assert_eq!(
            stored.bytes_received(),
            source.size - run.on_disk,
            "B received exactly the hole and the rest"
        );
        proxy.shutdown().await;
        b.shutdown().await;
    }
}

/// The same through the proxy, demanding the 416 every time: B's reply is a
/// complete `416` + `X-Last-Known-Byte`, then B closes with the unread body
/// (a reset); the proxy must pass the reply on before closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_through_the_proxy_always_delivers_the_416() {
    for seed in 0..10u64 {
        let store = tempfile::tempdir().expect("store dir");
        let (a, b, proxy) = pair(store.path(), "none").await;
        let source = random_file(3 * MIB, 700 + seed);
        let endpoint = format!("{}/ranged", proxy.url());
        let run =
            upload_crashing_between_chunks(&source, &endpoint, 256 * KIB, store.path(), a, || {})
                .await;
        assert!(
            met_the_hole(&run.report, run.crashed_at, run.on_disk),
            "run {seed}: the 416 was lost: {:?}",
            run.report.retries
        );
        assert_stored_exactly(&b.base_url(), run.report.url(), &source).await;
        proxy.shutdown().await;
        b.shutdown().await;
    }
}

/// A stalls in the middle of a chunk (a scripted fault) and crashes while
/// the chunk is in flight. The client sees its connection break, asks for
/// the status (answered by B through the proxy, with less than A had
/// acknowledged) and continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_chunk_is_recovered_from_the_status_poll() {
    let chunk = 256 * KIB;
    let store = tempfile::tempdir().expect("store dir");
    // Chunk request 8 starts at 2 MiB; A keeps 1000 of its bytes, then stalls.
    let (a, b, proxy) = pair(store.path(), "script=8:stall@1000,stall-secs=30").await;
    let source = random_file(3 * MIB + 5, 603);
    let endpoint = format!("{}/ranged", proxy.url());

    let mut events = Vec::new();
    let client = client();
    let upload = client.upload_file(&source.path, &endpoint, fixed_options(chunk), |e| {
        events.push(e.clone())
    });
    let crasher = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // The stall is counted before its 1000 bytes are written, and those
        // push the oldest 1000 buffered bytes to disk: wait for both.
        let expected_on_disk = CRASH_AFTER + 1000 - WRITE_BEHIND;
        loop {
            let on_disk = try_bytes_on_disk(store.path());
            if a.fault_counts().stalls == 1 && on_disk == Some(expected_on_disk) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "A never stalled with {expected_on_disk} bytes on disk: {on_disk:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        a.crash();
        // Measured before this future yields again: the client cannot have
        // reached B yet.
        bytes_on_disk(store.path())
    };
    let (report, on_disk) = tokio::join!(upload, crasher);
    let report = report.expect("the upload completes on B");
    assert_eq!(proxy.current_backend(), 1, "the proxy failed over to B");
    // A had acknowledged 2 MiB and taken 1000 more bytes; a megabyte of it
    // was only in memory.
    assert_eq!(on_disk, CRASH_AFTER + 1000 - WRITE_BEHIND);
    let before_crash: Vec<Event> = events
        .iter()
        .take_while(|e| !matches!(e, Event::Retrying { .. }))
        .cloned()
        .collect();
    assert_eq!(max_acknowledged(&before_crash), CRASH_AFTER);

    assert!(
        matches!(report.retries.as_slice(), [RetryReason::Transport(_)]),
        "one broken connection, then the status poll: {:?}",
        report.retries
    );
    assert_eq!(
        rewinds(&events),
        vec![(CRASH_AFTER, on_disk)],
        "the status poll showed B's shorter offset"
    );
    assert_eq!(
        first_ack_after_retry(&events),
        Some(on_disk + chunk),
        "the next chunk starts at B's offset"
    );
    assert_progress_monotonic(&events, source.size);
    let stored = assert_stored_exactly(&b.base_url(), report.url(), &source).await;
    assert_eq!(
        stored.bytes_received(),
        source.size - on_disk,
        "B received exactly the hole and the rest: the client continued \
         from B's offset, not from what A had acknowledged"
    );
    proxy.shutdown().await;
    b.shutdown().await;
}
