//! The native client against a reference server injecting faults: resets at
//! random byte offsets, 5xx answers, 503 bursts with `Retry-After`, stalls,
//! and all of them at once. Whatever happens, the server ends up holding
//! exactly the source.

use std::time::Duration;

use chunkup::{
    ChunkSizing, RetryReason, UploadEvent as Event, UploadOptions, UploadReport, UploadSettings,
};
use chunkup_e2e::*;
use chunkup_server::{FaultCounts, RunningServer};

/// One upload of a fresh random file through a server with `faults`.
struct Run {
    report: UploadReport,
    events: Vec<Event>,
    counts: FaultCounts,
    stored: Stored,
    source: SourceFile,
    server: RunningServer,
    _dir: tempfile::TempDir,
}

async fn run(faults: &str, size: u64, file_seed: u64, options: UploadOptions) -> Run {
    // Adaptive options get small chunk bounds: many requests, many faults.
    let adaptive = options.chunk_size.is_none();
    run_tuned(faults, size, file_seed, options, move |settings| {
        if adaptive {
            small_adaptive(settings);
        }
    })
    .await
}

async fn run_tuned(
    faults: &str,
    size: u64,
    file_seed: u64,
    options: UploadOptions,
    tune: impl FnOnce(&mut UploadSettings) + Send,
) -> Run {
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), faults).await;
    let source = random_file(size, file_seed);
    let mut events = Vec::new();
    let report = client()
        .upload(options)
        .to(server.ranged_endpoint())
        .tune(tune)
        .on_event(|e| events.push(e.clone()))
        .file(&source.path)
        .await
        .unwrap_or_else(|e| panic!("faults {faults:?}: the upload must complete: {e}"));
    let counts = server.fault_counts();
    eprintln!(
        "faults {faults:?}: {counts:?}, {} retries in {:?}: {:?}",
        report.retries.len(),
        report.elapsed,
        report.retries
    );
    let stored = assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    assert_progress_monotonic(&events, source.size);
    assert_eq!(
        rewinds(&events),
        vec![],
        "{faults}: this server never loses acknowledged bytes"
    );
    assert_eq!(report.size, source.size);
    Run {
        report,
        events,
        counts,
        stored,
        source,
        server,
        _dir: dir,
    }
}

fn count(retries: &[RetryReason], pred: impl Fn(&RetryReason) -> bool) -> u64 {
    retries.iter().filter(|r| pred(r)).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_resets_at_random_offsets_never_corrupt() {
    for seed in 1..=4u64 {
        let options = if seed % 2 == 0 {
            adaptive_options()
        } else {
            fixed_options(256 * KIB)
        };
        let faults = format!("seed={seed},reset=0.3");
        let r = run(&faults, 3 * MIB + seed * 1000, 100 + seed, options).await;
        assert!(r.counts.resets > 0, "{faults}: no reset was injected");
        assert!(!r.report.retries.is_empty(), "{faults}: no retry reported");
        assert_eq!(
            count(&r.report.retries, |x| matches!(
                x,
                RetryReason::Transport(_)
            )),
            r.counts.resets,
            "{faults}: one broken connection per reset: {:?}",
            r.report.retries
        );
        assert_eq!(
            r.counts.errors + r.counts.busy + r.counts.stalls,
            0,
            "{faults}"
        );
        // The bytes a reset let through are kept and built on, so little is
        // sent twice.
        assert!(r.stored.bytes_received() >= r.source.size);
        r.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_store_nothing_twice() {
    for seed in [11u64, 12, 13] {
        let faults = format!("seed={seed},error=0.3");
        let r = run(&faults, 2 * MIB + 7, 200 + seed, fixed_options(128 * KIB)).await;
        assert!(r.counts.errors > 0, "{faults}: no error was injected");
        assert_eq!(
            count(&r.report.retries, |x| matches!(
                x,
                RetryReason::Status(500 | 502 | 504)
            )),
            r.counts.errors,
            "{faults}: {:?}",
            r.report.retries
        );
        assert_eq!(
            r.report.retries.len() as u64,
            r.counts.errors,
            "{:?}",
            r.report.retries
        );
        // An error answer stores nothing, so every byte arrived exactly once.
        assert_eq!(r.stored.bytes_received(), r.source.size);
        r.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_bursts_honour_retry_after() {
    // A guaranteed burst of three 503s at chunk request 1, and (with this seed)
    // one more burst at random.
    let faults = "seed=9,busy=0.2,burst=3,retry-after=1,script=1:busy";
    let r = run(faults, MIB + 1, 300, fixed_options(256 * KIB)).await;
    assert!(r.counts.busy >= 3, "{:?}", r.counts);
    assert_eq!(
        count(&r.report.retries, |x| *x == RetryReason::Status(503)),
        r.counts.busy,
        "{:?}",
        r.report.retries
    );
    let waits: Vec<Duration> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying {
                status: Some(503),
                delay_ms,
                ..
            } => Some(Duration::from_millis(*delay_ms)),
            _ => None,
        })
        .collect();
    assert!(
        waits.iter().all(|d| *d >= Duration::from_secs(1)),
        "every 503 waits at least its Retry-After of 1 s: {waits:?}"
    );
    // The policy's own backoff is capped at 500 ms: only honouring the
    // server's Retry-After makes the run this long.
    let at_least = Duration::from_secs(r.counts.busy);
    assert!(
        r.report.elapsed >= at_least,
        "{:?} < {at_least:?} for {} busy answers",
        r.report.elapsed,
        r.counts.busy
    );
    assert_eq!(r.stored.bytes_received(), r.source.size);
    r.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_are_detected_long_before_the_server_gives_up() {
    let stall_secs = 10;
    let faults = format!("seed=21,stall=0.2,stall-secs={stall_secs},script=2:stall@1000");
    let mut options = fixed_options(256 * KIB);
    options.stall_timeout_ms = 1000;
    let r = run(&faults, 3 * MIB / 2, 400, options).await;
    assert!(r.counts.stalls >= 1, "{:?}", r.counts);
    assert_eq!(
        count(&r.report.retries, |x| *x == RetryReason::Stalled),
        r.counts.stalls,
        "every stall is detected by the client: {:?}",
        r.report.retries
    );
    assert!(
        r.report.elapsed < Duration::from_secs(stall_secs),
        "{:?} for {} stalls: the client waited for the server",
        r.report.elapsed,
        r.counts.stalls
    );
    // The server's stalled handlers are still sleeping: stop it abruptly
    // rather than waiting out the graceful-shutdown grace period.
    drop(r.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_at_once_still_exact() {
    for seed in [31u64, 32] {
        let faults = format!(
            "seed={seed},reset=0.1,error=0.1,busy=0.05,retry-after=1,stall=0.05,stall-secs=5,status-error=0.1"
        );
        let mut options = adaptive_options();
        options.stall_timeout_ms = 1000;
        // Small chunks make many requests, so many faults.
        let r = run_tuned(&faults, 3 * MIB + 17, 500 + seed, options, |settings| {
            settings.chunking = ChunkSizing::Adaptive {
                initial: 64 * KIB,
                min: 32 * KIB,
                max: 256 * KIB,
                target_duration: Duration::from_secs(1),
            };
        })
        .await;
        let c = r.counts;
        assert!(
            c.resets + c.errors + c.busy + c.stalls > 0,
            "{faults}: nothing was injected"
        );
        assert!(!r.report.retries.is_empty());
        drop(r.server);
    }
}
