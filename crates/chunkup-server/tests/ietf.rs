//! The IETF resumable-upload draft (interop 6 and 8) against a real server
//! on loopback.

mod common;

use std::net::SocketAddr;

use chunkup_server::ServerConfig;
use common::*;

const PARTIAL: (&str, &str) = ("Content-Type", "application/partial-upload");

fn v(version: u8) -> (&'static str, &'static str) {
    (
        "Upload-Draft-Interop-Version",
        if version == 6 { "6" } else { "8" },
    )
}

fn offset_of(r: &Resp) -> Option<u64> {
    r.header("upload-offset")
        .map(|v| v.parse().expect("numeric"))
}

/// `POST /ietf`; returns the response and the upload's path.
async fn create_ietf(
    addr: SocketAddr,
    version: u8,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Resp, String) {
    let mut all = vec![v(version)];
    all.extend_from_slice(headers);
    let r = req(addr, "POST", "/ietf", &all, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("upload-draft-interop-version"), Some(v(version).1));
    assert_eq!(r.header("tus-resumable"), None);
    let location = r.header("location").expect("Location");
    assert!(location.starts_with("http://localhost/ietf/"), "{location}");
    let path = path_of(location);
    (r, path)
}

async fn append(
    addr: SocketAddr,
    version: u8,
    path: &str,
    offset: usize,
    complete: bool,
    body: &[u8],
) -> Resp {
    let offset = offset.to_string();
    let done = if complete { "?1" } else { "?0" };
    req(
        addr,
        "PATCH",
        path,
        &[
            v(version),
            PARTIAL,
            ("Upload-Offset", &offset),
            ("Upload-Complete", done),
        ],
        body,
    )
    .await
}

async fn head(addr: SocketAddr, version: u8, path: &str) -> Resp {
    let r = req(addr, "HEAD", path, &[v(version)], b"").await;
    if r.status == 204 {
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("upload-limit").is_some());
        assert_eq!(r.header("upload-draft-interop-version"), Some(v(version).1));
    }
    r
}

#[tokio::test]
async fn options_announce_ietf_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    assert_eq!(srv.ietf_endpoint(), format!("{}/ietf", srv.base_url()));
    for version in [6, 8] {
        let r = req(srv.addr(), "OPTIONS", "/ietf", &[v(version)], b"").await;
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("upload-limit"),
            Some("max-size=68719476736, min-size=0")
        );
        assert_eq!(r.header("accept-patch"), Some("application/partial-upload"));
        assert_eq!(r.header("upload-draft-interop-version"), Some(v(version).1));
        for tus in ["tus-resumable", "tus-version", "tus-extension"] {
            assert_eq!(r.header(tus), None);
        }
    }
    // Discovery without the header still answers; a wrong version does not.
    let r = req(srv.addr(), "OPTIONS", "/ietf", &[], b"").await;
    assert_eq!(r.status, 204);
    assert!(r.header("upload-limit").is_some());
    let r = req(
        srv.addr(),
        "OPTIONS",
        "/ietf",
        &[("Upload-Draft-Interop-Version", "7")],
        b"",
    )
    .await;
    assert_eq!(r.status, 400);
    // A CORS preflight is still a preflight.
    let r = req(
        srv.addr(),
        "OPTIONS",
        "/ietf",
        &[
            ("Origin", "http://example.com"),
            ("Access-Control-Request-Method", "PATCH"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("PATCH"))
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn v6_careful_creation_then_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(9000);
    let (r, path) = create_ietf(
        addr,
        6,
        &[
            ("Upload-Complete", "?0"),
            ("Upload-Length", "9000"),
            ("Content-Type", "video/mp4"),
            ("Content-Disposition", "attachment; filename=\"clip.mp4\""),
        ],
        b"",
    )
    .await;
    assert_eq!(offset_of(&r), Some(0));
    assert_eq!(r.header("upload-complete"), Some("?0"));
    let limit = r.header("upload-limit").expect("Upload-Limit");
    assert!(
        limit.starts_with("max-size=68719476736, min-size=0, expires="),
        "{limit}"
    );

    let r = head(addr, 6, &path).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        (
            offset_of(&r),
            r.header("upload-complete"),
            r.header("upload-length")
        ),
        (Some(0), Some("?0"), Some("9000"))
    );

    let r = append(addr, 6, &path, 0, false, &body[..4000]).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(4000), Some("?0"))
    );
    let r = append(addr, 6, &path, 4000, true, &body[4000..]).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(9000), Some("?1"))
    );

    let r = head(addr, 6, &path).await;
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(9000), Some("?1"))
    );
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["protocol"], "ietf");
    assert_eq!(info["filename"], "clip.mp4");
    assert_eq!(info["content_type"], "video/mp4");
    assert_eq!(info["sha256"], sha256_hex(&body));
    // Appending to a complete upload: 400 in -05.
    assert_eq!(append(addr, 6, &path, 9000, true, b"").await.status, 400);
    srv.shutdown().await;
}

#[tokio::test]
async fn v8_creation_with_data_and_an_empty_final_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(6000);
    // No length yet; the creation carries the first 2000 bytes.
    let (r, path) = create_ietf(addr, 8, &[("Upload-Complete", "?0")], &body[..2000]).await;
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(2000), Some("?0"))
    );
    assert_eq!(r.header("upload-length"), None);
    assert!(
        r.header("upload-limit")
            .is_some_and(|l| l.contains("max-age="))
    );

    let r = append(addr, 8, &path, 2000, false, &body[2000..]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(6000)));
    // Reaching the bytes does not complete an IETF upload: only ?1 does.
    let r = head(addr, 8, &path).await;
    assert_eq!(
        (r.header("upload-complete"), r.header("upload-length")),
        (Some("?0"), None)
    );
    let r = append(addr, 8, &path, 6000, true, b"").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(6000), Some("?1"))
    );
    let r = head(addr, 8, &path).await;
    assert_eq!(
        (r.header("upload-complete"), r.header("upload-length")),
        (Some("?1"), Some("6000"))
    );
    // No expiry once complete.
    assert!(
        r.header("upload-limit")
            .is_some_and(|l| !l.contains("max-age"))
    );
    let info = admin_upload(addr, &path).await;
    assert_eq!(
        (info["complete"].as_bool(), info["total"].as_u64()),
        (Some(true), Some(6000))
    );
    assert_eq!(info["sha256"], sha256_hex(&body));
    // An empty append to a complete upload: 410 in -11.
    assert_eq!(append(addr, 8, &path, 6000, true, b"").await.status, 410);

    // Optimistic creation: the whole upload in one request.
    let (r, path) = create_ietf(addr, 8, &[("Upload-Complete", "?1")], &body).await;
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(6000), Some("?1"))
    );
    assert_eq!(r.header("upload-length"), Some("6000"));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));
    // A length on the append must agree with the body on ?1.
    let (_, path) = create_ietf(
        addr,
        8,
        &[("Upload-Complete", "?0"), ("Upload-Length", "6000")],
        b"",
    )
    .await;
    let r = append(addr, 8, &path, 0, true, &body[..5000]).await;
    assert_eq!(r.status, 400);
    assert_eq!(admin_upload(addr, &path).await["stored"], 0);
    srv.shutdown().await;
}

#[tokio::test]
async fn ietf_request_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(1000);
    let (_, path) = create_ietf(
        addr,
        8,
        &[("Upload-Complete", "?0"), ("Upload-Length", "1000")],
        b"",
    )
    .await;
    append(addr, 8, &path, 0, false, &body[..100]).await;

    // 409 carries the correct offset.
    for version in [6, 8] {
        let r = append(addr, version, &path, 50, false, &body[50..150]).await;
        assert_eq!((r.status, offset_of(&r)), (409, Some(100)));
    }
    // Wrong content type: 400 for both versions.
    for version in [6, 8] {
        let r = req(
            addr,
            "PATCH",
            &path,
            &[
                v(version),
                ("Content-Type", "application/offset+octet-stream"),
                ("Upload-Offset", "100"),
                ("Upload-Complete", "?0"),
            ],
            &body[100..200],
        )
        .await;
        assert_eq!(r.status, 400);
    }
    // The interop header is required (and must be 6 or 8).
    for headers in [vec![], vec![("Upload-Draft-Interop-Version", "5")]] {
        let r = req(addr, "HEAD", &path, &headers, b"").await;
        assert_eq!(r.status, 400);
        let mut post = headers.clone();
        post.push(("Upload-Complete", "?0"));
        assert_eq!(req(addr, "POST", "/ietf", &post, b"").await.status, 400);
        let mut patch = headers.clone();
        patch.extend([PARTIAL, ("Upload-Offset", "100"), ("Upload-Complete", "?0")]);
        let r = req(addr, "PATCH", &path, &patch, &body[100..200]).await;
        assert_eq!(r.status, 400);
        assert_eq!(req(addr, "DELETE", &path, &headers, b"").await.status, 400);
    }
    // Upload-Complete: required on creation; on appends in -11.
    let r = req(addr, "POST", "/ietf", &[v(8)], b"").await;
    assert_eq!(r.status, 400);
    let r = req(
        addr,
        "POST",
        "/ietf",
        &[v(8), ("Upload-Complete", "true")],
        b"",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = req(
        addr,
        "PATCH",
        &path,
        &[v(8), PARTIAL, ("Upload-Offset", "100")],
        &body[100..200],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = req(
        addr,
        "PATCH",
        &path,
        &[v(6), PARTIAL, ("Upload-Offset", "100")],
        &body[100..200],
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(200)));
    // Lengths that disagree.
    let r = req(
        addr,
        "POST",
        "/ietf",
        &[v(8), ("Upload-Complete", "?1"), ("Upload-Length", "5")],
        b"abc",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = req(
        addr,
        "PATCH",
        &path,
        &[
            v(8),
            PARTIAL,
            ("Upload-Offset", "200"),
            ("Upload-Complete", "?0"),
            ("Upload-Length", "999"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = append(addr, 8, &path, 200, false, &data(900)).await;
    assert_eq!(r.status, 400);
    assert_eq!(admin_upload(addr, &path).await["stored"], 200);
    // Unknown upload.
    let r = head(addr, 8, "/ietf/0123456789abcdef0123456789abcdef").await;
    assert_eq!((r.status, offset_of(&r)), (404, None));
    // Cancellation.
    let r = req(addr, "DELETE", &path, &[v(8)], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(head(addr, 8, &path).await.status, 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn max_append_size_is_announced_and_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_with(ServerConfig {
        dir: dir.path().to_owned(),
        max_append_size: Some(1000),
        ..ServerConfig::default()
    })
    .await;
    let addr = srv.addr();
    let body = data(2500);
    let r = req(addr, "OPTIONS", "/ietf", &[v(8)], b"").await;
    assert_eq!(
        r.header("upload-limit"),
        Some("max-size=68719476736, min-size=0, max-append-size=1000")
    );
    let r = req(
        addr,
        "POST",
        "/ietf",
        &[v(8), ("Upload-Complete", "?1")],
        &body,
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(
        r.header("upload-limit")
            .is_some_and(|l| l.contains("max-append-size=1000"))
    );
    let (_, path) = create_ietf(addr, 8, &[("Upload-Complete", "?0")], &body[..1000]).await;
    let r = append(addr, 8, &path, 1000, false, &body[1000..2001]).await;
    assert_eq!(r.status, 413);
    assert!(
        r.header("upload-limit")
            .is_some_and(|l| l.contains("max-append-size=1000"))
    );
    assert_eq!(admin_upload(addr, &path).await["stored"], 1000);
    let r = append(addr, 8, &path, 1000, false, &body[1000..2000]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(2000)));
    let r = append(addr, 8, &path, 2000, true, &body[2000..]).await;
    assert_eq!((r.status, r.header("upload-complete")), (204, Some("?1")));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));
    srv.shutdown().await;
}

#[tokio::test]
async fn faults_hit_ietf_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "script=0:reset@1000;1:error@502", 0).await;
    let addr = srv.addr();
    let body = data(4000);
    let (_, path) = create_ietf(
        addr,
        6,
        &[("Upload-Complete", "?0"), ("Upload-Length", "4000")],
        b"",
    )
    .await;
    let res = request(
        addr,
        "PATCH",
        &path,
        &[
            v(6),
            PARTIAL,
            ("Upload-Offset", "0"),
            ("Upload-Complete", "?1"),
        ],
        &body,
    )
    .await;
    match res {
        Err(e) => assert!(is_reset(&e), "{e}"),
        Ok(r) => panic!("expected a reset, got {r:?}"),
    }
    let r = head(addr, 6, &path).await;
    assert_eq!(
        (offset_of(&r), r.header("upload-complete")),
        (Some(1000), Some("?0"))
    );
    let r = append(addr, 6, &path, 1000, true, &body[1000..]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("upload-draft-interop-version"), Some("6"));
    let r = append(addr, 6, &path, 1000, true, &body[1000..]).await;
    assert_eq!((r.status, r.header("upload-complete")), (204, Some("?1")));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));
    srv.set_faults("status-error=1".parse().expect("spec"));
    assert_eq!(head(addr, 6, &path).await.status, 503);
    srv.shutdown().await;
}

#[tokio::test]
async fn protocols_share_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let (_, path) = create_ietf(addr, 8, &[("Upload-Complete", "?0")], b"abc").await;
    let id = path.rsplit('/').next().expect("id");
    // The same id is visible over tus and ranged.
    let r = req(
        addr,
        "HEAD",
        &format!("/tus/{id}"),
        &[("Tus-Resumable", "1.0.0")],
        b"",
    )
    .await;
    assert_eq!((r.status, r.header("upload-offset")), (200, Some("3")));
    assert_eq!(r.header("upload-defer-length"), Some("1"));
    let r = req(addr, "GET", &format!("/ranged/{id}"), &[], b"").await;
    assert_eq!((r.status, r.text().as_str()), (200, "0-2/*"));
    let list = req(addr, "GET", "/_admin/uploads", &[], b"").await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    srv.shutdown().await;
}

#[tokio::test]
async fn v6_an_append_reaching_the_known_length_completes_the_upload() {
    // tus-js-client's chunked draft -05 mode sends `Upload-Complete: ?0` on
    // every append; like tusd, the server completes at Upload-Length.
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(5000);
    let (_, path) = create_ietf(
        addr,
        6,
        &[("Upload-Complete", "?0"), ("Upload-Length", "5000")],
        b"",
    )
    .await;
    let r = append(addr, 6, &path, 0, false, &body[..3000]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(3000)));
    let r = head(addr, 6, &path).await;
    assert_eq!(r.header("upload-complete"), Some("?0"));
    let r = append(addr, 6, &path, 3000, false, &body[3000..]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(5000)));
    let r = head(addr, 6, &path).await;
    assert_eq!(r.header("upload-complete"), Some("?1"));
}
