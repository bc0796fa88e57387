//! Failover emulation (write-behind + crash) and the TCP failover proxy.

mod common;

use chunkup_server::proxy::FailoverProxy;
use common::*;

#[tokio::test]
async fn crash_loses_write_behind_tail_and_second_instance_reports_the_hole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = server(dir.path(), "none", 1000).await;
    let body = data(5000);
    let path = create(first.addr(), 5000).await;
    let id = path.trim_start_matches("/ranged/").to_owned();

    // The first instance acknowledges 3000 bytes but holds the last 1000 in memory.
    let r = send_chunk(first.addr(), &path, &body, 0, 2999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(2999)));
    let r = req(first.addr(), "GET", &path, &[], b"").await;
    assert_eq!(r.lkb(), Some(2999));
    assert_eq!(
        admin_upload(first.addr(), &path).await["sha256"],
        sha256_hex(&body[..3000])
    );
    let bin = dir.path().join(format!("{id}.bin"));
    assert_eq!(std::fs::metadata(&bin).expect("bin").len(), 2000);

    let first_addr = first.addr();
    first.crash();
    assert!(
        tokio::net::TcpStream::connect(first_addr).await.is_err(),
        "a crashed server refuses connections"
    );
    assert_eq!(
        std::fs::metadata(&bin).expect("bin").len(),
        2000,
        "crash never flushes"
    );

    // The second instance on the same store sees only what reached the disk.
    let second = server(dir.path(), "none", 1000).await;
    let addr = second.addr();
    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, r.lkb(), r.text().as_str()),
        (200, Some(1999), "0-1999/5000")
    );
    // The client's next chunk starts where the first instance left off: a hole.
    let r = send_chunk(addr, &path, &body, 3000, 4999).await;
    assert_eq!((r.status, r.lkb()), (416, Some(1999)));
    // It continues from LKB + 1 and completes; completion flushes the buffer.
    let r = send_chunk(addr, &path, &body, 2000, 4999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(4999)));
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["bytes_received"], 3000);
    assert_eq!(info["sha256"], sha256_hex(&body));
    assert_eq!(std::fs::read(&bin).expect("bin"), body);
    second.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_flushes_write_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = server(dir.path(), "none", 4096).await;
    let body = data(10_000);
    let path = create(first.addr(), 10_000).await;
    for (s, e) in [(0, 999), (1000, 2999), (3000, 5999)] {
        assert_eq!(
            send_chunk(first.addr(), &path, &body, s, e).await.lkb(),
            Some(e as i64)
        );
    }
    first.shutdown().await;
    let second = server(dir.path(), "none", 0).await;
    let r = req(second.addr(), "GET", &path, &[], b"").await;
    assert_eq!(r.lkb(), Some(5999));
    assert_eq!(
        admin_upload(second.addr(), &path).await["sha256"],
        sha256_hex(&body[..6000])
    );
    second.shutdown().await;
}

#[tokio::test]
async fn proxy_fails_over_to_the_second_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = server(dir.path(), "none", 0).await;
    let b = server(dir.path(), "none", 0).await;
    let proxy = FailoverProxy::start(loopback(), vec![a.addr(), b.addr()])
        .await
        .expect("proxy");
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
    let p = proxy.addr();
    let body = data(4000);
    let path = create(p, 4000).await;
    assert_eq!(send_chunk(p, &path, &body, 0, 1999).await.lkb(), Some(1999));
    // It all went to the first backend.
    assert_eq!(admin_upload(a.addr(), &path).await["bytes_received"], 2000);
    assert_eq!(admin_upload(b.addr(), &path).await["bytes_received"], 0);
    assert_eq!(proxy.current_backend(), 0);

    a.crash();
    let r = req(p, "GET", &path, &[], b"").await;
    assert_eq!((r.status, r.lkb()), (200, Some(1999)));
    assert_eq!(proxy.current_backend(), 1);
    let r = send_chunk(p, &path, &body, 2000, 3999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(3999)));
    let info = admin_upload(b.addr(), &path).await;
    assert_eq!(info["bytes_received"], 2000);
    assert_eq!(info["sha256"], sha256_hex(&body));
    // The proxy stays on the backend that worked.
    assert_eq!(proxy.current_backend(), 1);
    proxy.shutdown().await;
    assert!(tokio::net::TcpStream::connect(p).await.is_err());
    b.shutdown().await;
}

#[tokio::test]
async fn proxy_needs_a_backend() {
    let err = FailoverProxy::start(loopback(), vec![])
        .await
        .expect_err("no backends");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn tus_and_ietf_see_the_failover_hole_as_a_409_with_the_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = server(dir.path(), "none", 1000).await;
    let body = data(5000);
    let tus = ("Tus-Resumable", "1.0.0");
    let octet = ("Content-Type", "application/offset+octet-stream");
    let ietf = ("Upload-Draft-Interop-Version", "8");
    let partial = ("Content-Type", "application/partial-upload");

    let r = req(
        first.addr(),
        "POST",
        "/tus",
        &[tus, ("Upload-Length", "5000")],
        b"",
    )
    .await;
    let tus_path = path_of(r.header("location").expect("Location"));
    let r = req(
        first.addr(),
        "POST",
        "/ietf",
        &[ietf, ("Upload-Complete", "?0"), ("Upload-Length", "5000")],
        b"",
    )
    .await;
    let ietf_path = path_of(r.header("location").expect("Location"));
    // The first instance acknowledges 3000 bytes of each, 1000 only in memory.
    let r = req(
        first.addr(),
        "PATCH",
        &tus_path,
        &[tus, octet, ("Upload-Offset", "0")],
        &body[..3000],
    )
    .await;
    assert_eq!((r.status, r.header("upload-offset")), (204, Some("3000")));
    let r = req(
        first.addr(),
        "PATCH",
        &ietf_path,
        &[
            ietf,
            partial,
            ("Upload-Offset", "0"),
            ("Upload-Complete", "?0"),
        ],
        &body[..3000],
    )
    .await;
    assert_eq!((r.status, r.header("upload-offset")), (204, Some("3000")));
    first.crash();

    let second = server(dir.path(), "none", 0).await;
    let addr = second.addr();
    let r = req(addr, "HEAD", &tus_path, &[tus], b"").await;
    assert_eq!(r.header("upload-offset"), Some("2000"));
    let r = req(
        addr,
        "PATCH",
        &tus_path,
        &[tus, octet, ("Upload-Offset", "3000")],
        &body[3000..],
    )
    .await;
    assert_eq!((r.status, r.header("upload-offset")), (409, Some("2000")));
    let r = req(
        addr,
        "PATCH",
        &tus_path,
        &[tus, octet, ("Upload-Offset", "2000")],
        &body[2000..],
    )
    .await;
    assert_eq!((r.status, r.header("upload-offset")), (204, Some("5000")));
    assert_eq!(
        admin_upload(addr, &tus_path).await["sha256"],
        sha256_hex(&body)
    );

    let r = req(addr, "HEAD", &ietf_path, &[ietf], b"").await;
    assert_eq!(
        (r.header("upload-offset"), r.header("upload-complete")),
        (Some("2000"), Some("?0"))
    );
    let r = req(
        addr,
        "PATCH",
        &ietf_path,
        &[
            ietf,
            partial,
            ("Upload-Offset", "3000"),
            ("Upload-Complete", "?1"),
        ],
        &body[3000..],
    )
    .await;
    assert_eq!((r.status, r.header("upload-offset")), (409, Some("2000")));
    let r = req(
        addr,
        "PATCH",
        &ietf_path,
        &[
            ietf,
            partial,
            ("Upload-Offset", "2000"),
            ("Upload-Complete", "?1"),
        ],
        &body[2000..],
    )
    .await;
    assert_eq!((r.status, r.header("upload-complete")), (204, Some("?1")));
    let info = admin_upload(addr, &ietf_path).await;
    assert_eq!(
        (info["complete"].as_bool(), info["protocol"].as_str()),
        (Some(true), Some("ietf"))
    );
    assert_eq!(info["sha256"], sha256_hex(&body));
    second.shutdown().await;
}
