//! The ranged protocol against a real server on loopback.

mod common;

use common::*;

#[tokio::test]
async fn create_chunks_status_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    assert_eq!(srv.base_url(), format!("http://127.0.0.1:{}", addr.port()));
    assert_eq!(srv.ranged_endpoint(), format!("{}/ranged", srv.base_url()));

    let body = data(10_000);
    let r = req(
        addr,
        "POST",
        "/ranged",
        &[
            ("X-Upload-Content-Length", "10000"),
            ("Content-Type", "video/mp4"),
            (
                "Content-Disposition",
                "attachment; filename=\"../clip.mp4\"",
            ),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.lkb(), Some(-1));
    let path = r.header("location").expect("Location").to_owned();
    let id = path.strip_prefix("/ranged/").expect("relative location");
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert!(dir.path().join(format!("{id}.bin")).exists());
    assert!(dir.path().join(format!("{id}.json")).exists());

    // Status of an empty upload: LKB -1, empty body.
    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!((r.status, r.lkb()), (200, Some(-1)));
    assert!(r.body.is_empty());

    // Exactly one byte stored: LKB 0.
    let r = send_chunk(addr, &path, &body, 0, 0).await;
    assert_eq!((r.status, r.lkb()), (200, Some(0)));
    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, r.lkb(), r.text().as_str()),
        (200, Some(0), "0-0/10000")
    );

    // POST and PUT both send chunks; a resent overlapping chunk is fine.
    let r = req(
        addr,
        "POST",
        &path,
        &[("Content-Range", "bytes 1-3999/10000")],
        &body[1..4000],
    )
    .await;
    assert_eq!((r.status, r.lkb()), (200, Some(3999)));
    let r = send_chunk(addr, &path, &body, 2000, 6999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(6999)));
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], false);
    assert_eq!(info["stored"], 7000);

    let r = send_chunk(addr, &path, &body, 7000, 9999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(9999)));
    let r = req(addr, "GET", &path, &[], b"").await;
    assert_eq!((r.lkb(), r.text().as_str()), (Some(9999), "0-9999/10000"));

    let info = admin_upload(addr, &path).await;
    assert_eq!(info["id"], id);
    assert_eq!(info["total"], 10_000);
    assert_eq!(info["stored"], 10_000);
    assert_eq!(info["complete"], true);
    assert_eq!(info["filename"], "clip.mp4");
    assert_eq!(info["content_type"], "video/mp4");
    assert_eq!(info["bytes_received"], 1 + 3999 + 5000 + 3000);
    assert_eq!(info["sha256"], sha256_hex(&body));
    assert_eq!(
        std::fs::read(dir.path().join(format!("{id}.bin"))).expect("bin"),
        body
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("{id}.json"))).expect("json"),
    )
    .expect("meta json");
    assert_eq!(meta["complete"], true);

    // Writing to a complete upload changes nothing.
    let r = send_chunk(addr, &path, &body, 0, 99).await;
    assert_eq!((r.status, r.lkb()), (200, Some(9999)));
    assert_eq!(admin_upload(addr, &path).await["bytes_received"], 12_000);

    let list = req(addr, "GET", "/_admin/uploads", &[], b"").await.json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id);

    // Delete.
    let r = req(addr, "DELETE", &path, &[], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(req(addr, "GET", &path, &[], b"").await.status, 404);
    assert_eq!(req(addr, "DELETE", &path, &[], b"").await.status, 404);
    assert!(!dir.path().join(format!("{id}.bin")).exists());
    assert!(!dir.path().join(format!("{id}.json")).exists());
    srv.shutdown().await;
}

#[tokio::test]
async fn hole_gives_416_with_lkb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "", 0).await;
    let addr = srv.addr();
    let body = data(3000);
    let path = create(addr, 3000).await;
    let r = send_chunk(addr, &path, &body, 1, 999).await;
    assert_eq!((r.status, r.lkb()), (416, Some(-1)));
    assert_eq!(send_chunk(addr, &path, &body, 0, 999).await.status, 200);
    let r = send_chunk(addr, &path, &body, 2000, 2999).await;
    assert_eq!((r.status, r.lkb()), (416, Some(999)));
    // Nothing of the refused chunks was written.
    assert_eq!(admin_upload(addr, &path).await["bytes_received"], 1000);
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = chunkup_server::ServerConfig {
        dir: dir.path().to_owned(),
        max_size: 1000,
        ..Default::default()
    };
    let srv = server_with(config).await;
    let addr = srv.addr();

    // Creation: missing, malformed, too large.
    assert_eq!(req(addr, "POST", "/ranged", &[], b"").await.status, 400);
    for bad in ["abc", "-1", "1.5", ""] {
        let r = req(
            addr,
            "POST",
            "/ranged",
            &[("X-Upload-Content-Length", bad)],
            b"",
        )
        .await;
        assert_eq!(r.status, 400, "{bad:?}");
    }
    let r = req(
        addr,
        "POST",
        "/ranged",
        &[("X-Upload-Content-Length", "1001")],
        b"",
    )
    .await;
    assert_eq!(r.status, 413);
    let path = create(addr, 1000).await;

    // Content-Range problems.
    let body = data(1000);
    for range in [
        None,
        Some("bytes 0-9"),
        Some("bytes=0-9/1000"),
        Some("0-9/1000"),
        Some("bytes 9-0/1000"),
        Some("bytes 0-9/999"),
        Some("bytes 0-1000/1000"),
        Some("bytes x-9/1000"),
    ] {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Content-Range", *r)).collect();
        let r = req(addr, "PUT", &path, &headers, &body[..10]).await;
        assert_eq!(r.status, 400, "{range:?}");
    }
    // Body longer than the range: the range part is kept, the excess dropped.
    let r = req(
        addr,
        "PUT",
        &path,
        &[("Content-Range", "bytes 0-9/1000")],
        &body[..20],
    )
    .await;
    assert_eq!((r.status, r.lkb()), (400, Some(9)));
    // Body shorter than the range: kept too, still an error.
    let r = req(
        addr,
        "PUT",
        &path,
        &[("Content-Range", "bytes 10-99/1000")],
        &body[10..50],
    )
    .await;
    assert_eq!((r.status, r.lkb()), (400, Some(49)));
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["stored"], 50);
    assert_eq!(info["sha256"], sha256_hex(&body[..50]));

    // Ids that are not 32 lowercase hex characters are never found.
    let id = path.trim_start_matches("/ranged/");
    let upper = format!("/ranged/{}", id.to_uppercase());
    let short = format!("/ranged/{}", &id[1..]);
    let unknown = format!("/ranged/{}", "0".repeat(32));
    for p in [
        upper.as_str(),
        short.as_str(),
        "/ranged/..%2F..%2Fetc%2Fpasswd",
        "/ranged/zz",
        unknown.as_str(),
    ] {
        assert_eq!(req(addr, "GET", p, &[], b"").await.status, 404, "{p}");
        let r = req(
            addr,
            "PUT",
            p,
            &[("Content-Range", "bytes 0-9/1000")],
            &body[..10],
        )
        .await;
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(req(addr, "DELETE", p, &[], b"").await.status, 404, "{p}");
        let admin = p.replace("/ranged/", "/_admin/uploads/");
        assert_eq!(
            req(addr, "GET", &admin, &[], b"").await.status,
            404,
            "{admin}"
        );
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn cors_exposes_protocol_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let r = req(
        addr,
        "OPTIONS",
        "/ranged",
        &[
            ("Origin", "http://example.test"),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "content-range,x-upload-content-length",
            ),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r
        .header("access-control-allow-methods")
        .expect("methods")
        .to_ascii_uppercase();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    assert!(r.header("access-control-allow-headers").is_some());

    let r = req(
        addr,
        "POST",
        "/ranged",
        &[
            ("Origin", "http://example.test"),
            ("X-Upload-Content-Length", "5"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 201);
    let exposed = r
        .header("access-control-expose-headers")
        .expect("exposed")
        .to_ascii_lowercase();
    for h in chunkup_server::EXPOSED_HEADERS {
        assert!(exposed.contains(h), "{h} not in {exposed}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn second_instance_loads_upload_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = server(dir.path(), "none", 0).await;
    let b = server(dir.path(), "none", 0).await;
    let body = data(5000);
    let path = create(a.addr(), 5000).await;
    assert_eq!(
        send_chunk(a.addr(), &path, &body, 0, 2999).await.lkb(),
        Some(2999)
    );
    // B has never seen the upload: it loads it from the shared directory.
    let r = req(b.addr(), "GET", &path, &[], b"").await;
    assert_eq!((r.status, r.lkb()), (200, Some(2999)));
    let r = send_chunk(b.addr(), &path, &body, 3000, 4999).await;
    assert_eq!((r.status, r.lkb()), (200, Some(4999)));
    let info = admin_upload(b.addr(), &path).await;
    assert_eq!(
        (info["complete"].clone(), info["bytes_received"].clone()),
        (true.into(), 2000.into())
    );
    assert_eq!(info["sha256"], sha256_hex(&body));
    a.shutdown().await;
    b.shutdown().await;
}
