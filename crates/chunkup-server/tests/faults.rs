//! Fault injection against a real server on loopback.

mod common;

use std::time::{Duration, Instant};

use chunkup_server::{FaultCounts, FaultKind, FaultSpec, ScriptedFault};
use common::*;

/// Sends a chunk, returning the IO error when there is no response.
async fn send_and_read(
    addr: std::net::SocketAddr,
    path: &str,
    body: &[u8],
    start: usize,
    end: usize,
) -> std::io::Result<Resp> {
    let range = format!("bytes {start}-{end}/{}", body.len());
    request(
        addr,
        "PUT",
        path,
        &[("Content-Range", &range)],
        &body[start..=end],
    )
    .await
}

#[tokio::test]
async fn scripted_reset_drops_the_connection_and_keeps_the_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "script=0:reset@1000", 0).await;
    let addr = srv.addr();
    let body = data(4000);
    let path = create(addr, 4000).await;

    let res = send_and_read(addr, &path, &body, 0, 3999).await;
    match res {
        Err(e) => assert!(is_reset(&e), "{e}"),
        Ok(r) => panic!("expected a reset, got {r:?}"),
    }
    assert_eq!(
        srv.fault_counts(),
        FaultCounts {
            resets: 1,
            ..Default::default()
        }
    );

    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, r.lkb(), r.text().as_str()),
        (200, Some(999), "0-999/4000")
    );
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["sha256"], sha256_hex(&body[..1000]));

    // The client resumes from the polled offset; no more faults.
    let r = send_chunk(addr, &path, &body, 1000, 3999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(3999)));
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["sha256"], sha256_hex(&body));
    srv.shutdown().await;
}

#[tokio::test]
async fn busy_and_bursts_answer_503_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "retry-after=3,burst=2,script=1:busy", 0).await;
    let addr = srv.addr();
    let body = data(300);
    let path = create(addr, 300).await;

    assert_eq!(send_chunk(addr, &path, &body, 0, 99).await.status, 200); // #0
    for _ in 0..2 {
        // #1 scripted, #2 the rest of the burst.
        let r = send_chunk(addr, &path, &body, 100, 199).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(r.lkb(), None);
    }
    let r = send_chunk(addr, &path, &body, 100, 299).await; // #3
    assert_eq!((r.status, r.lkb()), (200, Some(299)));
    assert_eq!(
        srv.fault_counts(),
        FaultCounts {
            busy: 2,
            ..Default::default()
        }
    );
    // Busy replies stored nothing.
    assert_eq!(admin_upload(addr, &path).await["bytes_received"], 300);

    // Random busy with probability 1, default Retry-After of 1 second.
    srv.set_faults("busy=1".parse().expect("spec"));
    let r = send_chunk(addr, &path, &body, 0, 9).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    srv.shutdown().await;
}

#[tokio::test]
async fn errors_store_nothing_and_status_errors_hit_polls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "script=0:error@502;1:error", 0).await;
    let addr = srv.addr();
    let body = data(100);
    let path = create(addr, 100).await;
    let r = send_chunk(addr, &path, &body, 0, 99).await;
    assert_eq!(r.status, 502);
    let r = send_chunk(addr, &path, &body, 0, 99).await;
    assert!([500, 502, 504].contains(&r.status), "{}", r.status);
    assert_eq!(req(addr, "GET", &path, &[], b"").await.lkb(), Some(-1));
    assert_eq!(srv.fault_counts().errors, 2);

    srv.set_faults("status-error=1".parse().expect("spec"));
    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!((r.status, r.header("retry-after")), (503, None));
    assert_eq!(srv.fault_counts().errors, 3);
    // Admin endpoints are never fault-injected.
    assert_eq!(admin_upload(addr, &path).await["stored"], 0);
    srv.shutdown().await;
}

#[tokio::test]
async fn stall_stops_reading_then_resets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "stall-secs=0.4,script=0:stall@500", 0).await;
    let addr = srv.addr();
    let body = data(2000);
    let path = create(addr, 2000).await;
    let t0 = Instant::now();
    let res = send_and_read(addr, &path, &body, 0, 1999).await;
    let waited = t0.elapsed();
    assert!(res.is_err_and(|e| is_reset(&e)));
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(req(addr, "GET", &path, &[], b"").await.lkb(), Some(499));
    assert_eq!(
        srv.fault_counts(),
        FaultCounts {
            stalls: 1,
            ..Default::default()
        }
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn random_faults_are_deterministic_per_seed() {
    async fn run(seed: u64) -> (Vec<u16>, FaultCounts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = format!("seed={seed},error=0.3,busy=0.3");
        let srv = server(dir.path(), &spec, 0).await;
        let body = data(10);
        let path = create(srv.addr(), 10).await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(send_chunk(srv.addr(), &path, &body, 0, 9).await.status);
        }
        let counts = srv.fault_counts();
        srv.shutdown().await;
        (statuses, counts)
    }
    let (a, ca) = run(11).await;
    let (b, cb) = run(11).await;
    assert_eq!(a, b);
    assert_eq!(ca, cb);
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
    assert!(a.iter().any(|s| [500, 502, 504].contains(s)), "{a:?}");
    assert_eq!(
        ca.errors + ca.busy,
        a.iter().filter(|&&s| s != 200).count() as u64
    );
}

#[tokio::test]
async fn admin_faults_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "seed=5,busy=0.5", 0).await;
    let addr = srv.addr();
    let r = req(addr, "GET", "/_admin/faults", &[], b"").await.json();
    assert_eq!(r["spec"], "seed=5,busy=0.5");
    assert_eq!(r["counts"]["busy"], 0);

    let r = req(addr, "PUT", "/_admin/faults", &[], b"reset=2").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("reset"), "{}", r.text());
    assert_eq!(srv.faults().to_string(), "seed=5,busy=0.5");

    let r = req(addr, "PUT", "/_admin/faults", &[], b"script=0:busy").await;
    assert_eq!(
        (r.status, r.json()["spec"].as_str()),
        (200, Some("script=0:busy"))
    );
    let body = data(10);
    let path = create(addr, 10).await;
    assert_eq!(send_chunk(addr, &path, &body, 0, 9).await.status, 503);
    let r = req(addr, "GET", "/_admin/faults", &[], b"").await.json();
    assert_eq!(r["counts"]["busy"], 1);
    assert_eq!(
        req(addr, "PUT", "/_admin/faults", &[], b"none")
            .await
            .json()["spec"],
        "none"
    );
    srv.shutdown().await;
}

#[test]
fn fault_spec_parse_and_display() {
    assert_eq!(
        "".parse::<FaultSpec>().expect("empty"),
        FaultSpec::default()
    );
    assert_eq!(
        "none".parse::<FaultSpec>().expect("none"),
        FaultSpec::default()
    );
    assert_eq!(FaultSpec::default().to_string(), "none");

    let text = "seed=7,reset=0.1,error=0.05,busy=0.05,retry-after=2,burst=3,stall=0.02,stall-secs=20,status-error=0.1,script=2:reset@1000;5:busy;7:error;8:stall;9:error@504";
    let spec: FaultSpec = text.parse().expect("full spec");
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.reset, 0.1);
    assert_eq!(spec.retry_after, 2);
    assert_eq!(spec.burst, 3);
    assert_eq!(spec.stall_secs, 20.0);
    assert_eq!(spec.status_error, 0.1);
    assert_eq!(spec.script.len(), 5);
    assert_eq!(
        spec.script[0],
        ScriptedFault {
            index: 2,
            kind: FaultKind::Reset { after: Some(1000) }
        }
    );
    assert_eq!(spec.script[4].kind, FaultKind::Error { status: Some(504) });
    assert_eq!(spec.to_string(), text);
    assert_eq!(
        spec.to_string().parse::<FaultSpec>().expect("round trip"),
        spec
    );

    // Order and spacing do not matter; Display is canonical.
    let spec: FaultSpec = " script=3:busy;1:reset , seed=1 ".parse().expect("spaced");
    assert_eq!(spec.to_string(), "seed=1,script=1:reset;3:busy");
    let spec: FaultSpec = "stall-secs=0.25".parse().expect("fractional");
    assert_eq!(
        spec.to_string().parse::<FaultSpec>().expect("round trip"),
        spec
    );

    for (bad, needle) in [
        ("reset", "key=value"),
        ("bogus=1", "unknown fault spec key `bogus`"),
        ("reset=1.5", "probability"),
        ("reset=-0.1", "probability"),
        ("error=x", "probability"),
        ("seed=-1", "integer"),
        ("burst=0", "at least 1"),
        ("stall-secs=nan", "seconds"),
        ("reset=0.1,reset=0.2", "more than once"),
        ("reset=0.6,error=0.6", "add up"),
        ("script=1:explode", "unknown fault kind"),
        ("script=x:busy", "index"),
        ("script=1busy", "missing `:`"),
        ("script=1:reset@x", "after `@`"),
        ("script=1:error@404", "500..=599"),
        ("script=1:busy;1:error", "twice"),
    ] {
        let err = bad.parse::<FaultSpec>().expect_err(bad).to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

/// A small client loop over seeded random resets, stalls, errors and busy
/// replies with large chunks: every break is followed by a status poll, and
/// the stored bytes always end up equal to the source.
#[tokio::test]
async fn random_faults_never_corrupt_a_resumed_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = "seed=42,reset=0.25,stall=0.05,stall-secs=0.05,error=0.1,busy=0.1,retry-after=0,status-error=0.1";
    let srv = server(dir.path(), spec, 0).await;
    let addr = srv.addr();
    let total = 6 << 20;
    let chunk = 512 << 10;
    let body = data(total);
    let path = create(addr, total as u64).await;
    let mut next = 0usize;
    let mut sent_bytes = 0u64;
    let mut breaks = 0;
    for attempt in 0..400 {
        assert!(attempt < 399, "no progress");
        if next == total {
            break;
        }
        let end = (next + chunk).min(total) - 1;
        sent_bytes += (end - next + 1) as u64;
        match send_and_read(addr, &path, &body, next, end).await {
            Ok(r) if r.status == 200 => next = (r.lkb().expect("LKB") + 1) as usize,
            Ok(r) if r.status == 416 => next = (r.lkb().expect("LKB") + 1) as usize,
            Ok(r) => assert!([500, 502, 503, 504].contains(&r.status), "{r:?}"),
            Err(e) => {
                assert!(is_reset(&e), "{e}");
                breaks += 1;
                // Poll status (which may fail too) before sending again.
                loop {
                    let r = req(addr, "GET", &path, &[], b"").await;
                    if r.status == 200 {
                        let polled = (r.lkb().expect("LKB") + 1) as usize;
                        assert!(polled >= next, "stored went backwards");
                        next = polled;
                        break;
                    }
                    assert_eq!(r.status, 503);
                }
            }
        }
    }
    assert!(breaks > 0, "the seed produced no reset");
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["sha256"], sha256_hex(&body));
    assert!(info["bytes_received"].as_u64().expect("n") <= sent_bytes);
    let c = srv.fault_counts();
    assert!(c.resets + c.stalls >= breaks, "{c:?} vs {breaks}");
    srv.shutdown().await;
}

#[tokio::test]
async fn concurrent_writers_to_one_upload_serialise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let total = 2 << 20;
    let body = data(total);
    let path = create(addr, total as u64).await;
    let (a, b) = tokio::join!(
        send_chunk(addr, &path, &body, 0, total - 1),
        send_chunk(addr, &path, &body, 0, total - 1)
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(
        (a.lkb(), b.lkb()),
        (Some(total as i64 - 1), Some(total as i64 - 1))
    );
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["sha256"], sha256_hex(&body));
    // The second writer found the upload complete and wrote nothing.
    assert_eq!(info["bytes_received"], total as u64);
    srv.shutdown().await;
}
