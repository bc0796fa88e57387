//! `ServerConfig::atomic_appends`: a request whose body breaks off stores
//! none of its bytes (tus PATCH, IETF append, ranged chunk), where the
//! default server keeps what arrived.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chunkup_server::{FaultSpec, RunningServer, ServerConfig};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(dir: &std::path::Path, atomic: bool, faults: &str) -> RunningServer {
    server_with(ServerConfig {
        dir: dir.to_owned(),
        atomic_appends: atomic,
        faults: faults.parse::<FaultSpec>().expect("fault spec"),
        ..ServerConfig::default()
    })
    .await
}

/// Announces `announced` body bytes, sends only `prefix`, then closes: the
/// server sees the body break off. Whatever it answers is ignored.
async fn broken_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    prefix: &[u8],
    announced: usize,
) {
    assert!(prefix.len() < announced);
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {announced}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(prefix).await.expect("prefix");
    stream.shutdown().await.expect("shutdown");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
}

/// The admin view once `done` holds for it (panics after 5 s).
async fn settled(
    addr: SocketAddr,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = admin_upload(addr, path).await;
        if done(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "never settled: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OCTET: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

#[tokio::test]
async fn a_tus_patch_or_ietf_append_that_breaks_off_stores_nothing() {
    let body = data(4000);
    for atomic in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let srv = start(dir.path(), atomic, "none").await;
        let addr = srv.addr();

        // tus: 1000 bytes intact, then a PATCH of 3000 cut after 1500.
        let r = req(addr, "POST", "/tus", &[TUS, ("Upload-Length", "4000")], b"").await;
        assert_eq!(r.status, 201, "{}", r.text());
        let tus = path_of(r.header("location").expect("Location"));
        let patch = |offset: &'static str| [TUS, OCTET, ("Upload-Offset", offset)];
        let r = req(addr, "PATCH", &tus, &patch("0"), &body[..1000]).await;
        assert_eq!(r.status, 204, "{}", r.text());
        broken_request(addr, "PATCH", &tus, &patch("1000"), &body[1000..2500], 3000).await;
        // bytes_received counts the cut body either way: it did arrive.
        let (kept, at) = if atomic {
            (1000, "1000")
        } else {
            (2500, "2500")
        };
        let info = settled(addr, &tus, |i| {
            i["bytes_received"] == 2500 && i["stored"] == kept
        })
        .await;
        assert_eq!(info["sha256"], sha256_hex(&body[..kept]));
        let r = req(addr, "HEAD", &tus, &[TUS], b"").await;
        assert_eq!(r.header("upload-offset"), Some(at));
        let r = req(addr, "PATCH", &tus, &patch(at), &body[kept..]).await;
        assert_eq!(r.status, 204, "{}", r.text());
        let info = admin_upload(addr, &tus).await;
        assert_eq!(
            (&info["complete"], &info["sha256"]),
            (&true.into(), &sha256_hex(&body).into())
        );

        // IETF: the same cut on an append.
        let version = ("Upload-Draft-Interop-Version", "8");
        let r = req(
            addr,
            "POST",
            "/ietf",
            &[version, ("Upload-Complete", "?0")],
            &body[..1000],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let ietf = path_of(r.header("location").expect("Location"));
        let append = [
            version,
            ("Content-Type", "application/partial-upload"),
            ("Upload-Offset", "1000"),
            ("Upload-Complete", "?1"),
        ];
        broken_request(addr, "PATCH", &ietf, &append, &body[1000..2500], 3000).await;
        let info = settled(addr, &ietf, |i| {
            i["bytes_received"] == 2500 && i["stored"] == kept
        })
        .await;
        assert_eq!(
            (&info["complete"], &info["sha256"]),
            (&false.into(), &sha256_hex(&body[..kept]).into())
        );
        srv.shutdown().await;
    }
}

#[tokio::test]
async fn a_ranged_chunk_cut_by_the_link_or_an_injected_reset_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The second request (#1) meets an injected reset after 500 body bytes.
    let srv = start(dir.path(), true, "script=1:reset@500").await;
    let addr = srv.addr();
    let body = data(4000);
    let path = create(addr, 4000).await;
    assert_eq!(
        send_chunk(addr, &path, &body, 0, 999).await.lkb(),
        Some(999)
    ); // #0
    let r = request(
        addr,
        "PUT",
        &path,
        &[("Content-Range", "bytes 1000-3999/4000")],
        &body[1000..],
    )
    .await; // #1
    assert!(r.as_ref().is_err_and(is_reset), "{r:?}");
    assert_eq!(srv.fault_counts().resets, 1);
    // A chunk that breaks off on the way, resent over bytes already stored.
    broken_request(
        addr,
        "PUT",
        &path,
        &[("Content-Range", "bytes 500-2999/4000")],
        &body[500..2000],
        2500,
    )
    .await; // #2
    let info = settled(addr, &path, |i| i["bytes_received"] == 2500).await;
    assert_eq!(
        (&info["stored"], &info["sha256"]),
        (&1000.into(), &sha256_hex(&body[..1000]).into())
    );
    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, r.lkb(), r.text().as_str()),
        (200, Some(999), "0-999/4000")
    );
    assert_eq!(
        send_chunk(addr, &path, &body, 1000, 3999).await.lkb(),
        Some(3999)
    );
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));
    srv.shutdown().await;
}
