//! tus 1.0.0 against a real server on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use chunkup_server::ServerConfig;
use common::*;
use sha2::Digest;

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OCTET: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `POST /tus` with `headers` (plus `Tus-Resumable`); returns the upload's path.
async fn create_with(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> (Resp, String) {
    let mut all = vec![TUS];
    all.extend_from_slice(headers);
    let r = req(addr, "POST", "/tus", &all, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let location = r.header("location").expect("Location");
    assert!(location.starts_with("http://localhost/tus/"), "{location}");
    let path = path_of(location);
    (r, path)
}

async fn create_tus(addr: SocketAddr, total: usize) -> String {
    let total = total.to_string();
    create_with(addr, &[("Upload-Length", &total)], b"").await.1
}

async fn patch(addr: SocketAddr, path: &str, offset: usize, body: &[u8]) -> Resp {
    let offset = offset.to_string();
    req(
        addr,
        "PATCH",
        path,
        &[TUS, OCTET, ("Upload-Offset", &offset)],
        body,
    )
    .await
}

async fn head(addr: SocketAddr, path: &str) -> Resp {
    req(addr, "HEAD", path, &[TUS], b"").await
}

fn offset_of(r: &Resp) -> Option<u64> {
    r.header("upload-offset")
        .map(|v| v.parse().expect("numeric"))
}

#[tokio::test]
async fn options_announce_tus_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    assert_eq!(srv.tus_endpoint(), format!("{}/tus", srv.base_url()));
    for path in ["/tus", "/tus/0123456789abcdef0123456789abcdef"] {
        let r = req(srv.addr(), "OPTIONS", path, &[], b"").await;
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
        assert_eq!(r.header("tus-version"), Some("1.0.0"));
        let ext = r.header("tus-extension").expect("Tus-Extension");
        for e in [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "termination",
            "checksum",
            "concatenation",
            "expiration",
        ] {
            assert!(ext.split(',').any(|x| x == e), "{e} in {ext}");
        }
        assert_eq!(r.header("tus-max-size"), Some("68719476736"));
        assert_eq!(
            r.header("tus-checksum-algorithm"),
            Some("sha1,sha256,sha512")
        );
        assert_eq!(r.header("upload-limit"), None);
        assert_eq!(r.header("accept-patch"), None);
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn create_head_patch_complete_with_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(10_000);
    let metadata = format!(
        "filename {},filetype {},user {},flag",
        b64(b"../clip \xc3\xa9.mp4"),
        b64(b"video/mp4"),
        b64(b"j\xc3\xb6")
    );
    let (r, path) = create_with(
        addr,
        &[("Upload-Length", "10000"), ("Upload-Metadata", &metadata)],
        b"",
    )
    .await;
    assert_eq!(offset_of(&r), Some(0));
    let expires = r.header("upload-expires").expect("Upload-Expires");
    assert!(expires.ends_with(" GMT"), "{expires}");
    let id = path.strip_prefix("/tus/").expect("a tus path");
    assert!(dir.path().join(format!("{id}.bin")).exists());

    let r = head(addr, &path).await;
    assert_eq!(r.status, 200);
    assert_eq!(offset_of(&r), Some(0));
    assert_eq!(r.header("upload-length"), Some("10000"));
    assert_eq!(r.header("upload-defer-length"), None);
    assert_eq!(r.header("upload-metadata"), Some(metadata.as_str()));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    assert!(r.header("upload-expires").is_some());

    let r = patch(addr, &path, 0, &body[..4000]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(4000)), "{}", r.text());
    assert!(r.header("upload-expires").is_some());
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let r = patch(addr, &path, 4000, &body[4000..]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(10_000)));
    // A complete upload no longer expires.
    assert_eq!(r.header("upload-expires"), None);

    let r = head(addr, &path).await;
    assert_eq!(
        (offset_of(&r), r.header("upload-length")),
        (Some(10_000), Some("10000"))
    );
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["protocol"], "tus");
    assert_eq!(info["total"], 10_000);
    assert_eq!(info["sha256"], sha256_hex(&body));
    assert_eq!(info["filename"], "clip é.mp4");
    assert_eq!(info["content_type"], "video/mp4");
    assert_eq!(info["metadata"]["filename"], "../clip é.mp4");
    assert_eq!(info["metadata"]["filetype"], "video/mp4");
    assert_eq!(info["metadata"]["user"], "jö");
    assert_eq!(info["metadata"]["flag"], "");
    // A PATCH at the end of a complete upload changes nothing.
    let r = patch(addr, &path, 10_000, b"").await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(10_000)));
    let r = patch(addr, &path, 10_000, b"x").await;
    assert_eq!(r.status, 413);
    srv.shutdown().await;
}

#[tokio::test]
async fn creation_with_upload_and_zero_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(5000);
    let (r, path) = create_with(addr, &[("Upload-Length", "5000"), OCTET], &body[..3000]).await;
    assert_eq!(offset_of(&r), Some(3000));
    let r = patch(addr, &path, 3000, &body[3000..]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(5000)));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));

    // The whole file on creation.
    let (r, path) = create_with(addr, &[("Upload-Length", "5000"), OCTET], &body).await;
    assert_eq!(offset_of(&r), Some(5000));
    assert_eq!(r.header("upload-expires"), None);
    assert_eq!(admin_upload(addr, &path).await["complete"], true);

    // A body with another Content-Type is not data.
    let (r, path) = create_with(
        addr,
        &[("Upload-Length", "5000"), ("Content-Type", "text/plain")],
        &body[..10],
    )
    .await;
    assert_eq!(offset_of(&r), Some(0));
    assert_eq!(admin_upload(addr, &path).await["stored"], 0);

    // Too long a body, and an empty upload.
    let r = req(
        addr,
        "POST",
        "/tus",
        &[TUS, OCTET, ("Upload-Length", "10")],
        &body[..11],
    )
    .await;
    assert_eq!(r.status, 413);
    let (_, path) = create_with(addr, &[("Upload-Length", "0")], b"").await;
    let info = admin_upload(addr, &path).await;
    assert_eq!(
        (info["complete"].as_bool(), info["stored"].as_u64()),
        (Some(true), Some(0))
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn deferred_length_exact_multiple_of_the_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(8192);
    let (_, path) = create_with(addr, &[("Upload-Defer-Length", "1")], b"").await;
    let r = head(addr, &path).await;
    assert_eq!(r.header("upload-defer-length"), Some("1"));
    assert_eq!(r.header("upload-length"), None);
    assert_eq!(
        admin_upload(addr, &path).await["total"],
        serde_json::Value::Null
    );

    for start in [0, 4096] {
        let r = patch(addr, &path, start, &body[start..start + 4096]).await;
        assert_eq!((r.status, offset_of(&r)), (204, Some(start as u64 + 4096)));
    }
    assert_eq!(admin_upload(addr, &path).await["complete"], false);
    // EOF after a full chunk: the length goes on an empty PATCH.
    let r = req(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OCTET,
            ("Upload-Offset", "8192"),
            ("Upload-Length", "8192"),
        ],
        b"",
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(8192)), "{}", r.text());
    let r = head(addr, &path).await;
    assert_eq!(r.header("upload-length"), Some("8192"));
    assert_eq!(r.header("upload-defer-length"), None);
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["total"], 8192);
    assert_eq!(info["sha256"], sha256_hex(&body));
    // The length cannot change once set (the same value is accepted).
    let r = req(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OCTET,
            ("Upload-Offset", "8192"),
            ("Upload-Length", "9000"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 400);

    // The length announced with the last data.
    let (_, path) = create_with(addr, &[("Upload-Defer-Length", "1")], b"").await;
    let r = patch(addr, &path, 0, &body[..5000]).await;
    assert_eq!(offset_of(&r), Some(5000));
    let r = req(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OCTET,
            ("Upload-Offset", "5000"),
            ("Upload-Length", "6000"),
        ],
        &body[5000..6000],
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(6000)));
    let info = admin_upload(addr, &path).await;
    assert_eq!(
        (info["complete"].as_bool(), info["total"].as_u64()),
        (Some(true), Some(6000))
    );
    // A length below the offset is refused.
    let (_, path) = create_with(addr, &[("Upload-Defer-Length", "1")], b"").await;
    patch(addr, &path, 0, &body[..100]).await;
    let r = req(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OCTET,
            ("Upload-Offset", "100"),
            ("Upload-Length", "50"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 400);
    srv.shutdown().await;
}

#[tokio::test]
async fn request_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(1000);
    let path = create_tus(addr, 1000).await;
    patch(addr, &path, 0, &body[..100]).await;

    // 409 carries the current offset; nothing changes.
    let r = patch(addr, &path, 50, &body[50..200]).await;
    assert_eq!((r.status, offset_of(&r)), (409, Some(100)));
    let r = patch(addr, &path, 300, &body[300..400]).await;
    assert_eq!((r.status, offset_of(&r)), (409, Some(100)));
    // 415 for another Content-Type.
    let r = req(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            ("Content-Type", "application/octet-stream"),
            ("Upload-Offset", "100"),
        ],
        &body[100..200],
    )
    .await;
    assert_eq!(r.status, 415);
    // 412 without or with another Tus-Resumable, with Tus-Version.
    for headers in [
        vec![OCTET, ("Upload-Offset", "100")],
        vec![("Tus-Resumable", "0.2.2"), OCTET, ("Upload-Offset", "100")],
    ] {
        let r = req(addr, "PATCH", &path, &headers, &body[100..200]).await;
        assert_eq!(r.status, 412);
        assert_eq!(r.header("tus-version"), Some("1.0.0"));
        assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    }
    let r = req(addr, "POST", "/tus", &[("Upload-Length", "5")], b"").await;
    assert_eq!(r.status, 412);
    let r = req(addr, "DELETE", &path, &[], b"").await;
    assert_eq!(r.status, 412);
    // Missing or bad Upload-Offset, body beyond the length.
    let r = req(addr, "PATCH", &path, &[TUS, OCTET], &body[100..200]).await;
    assert_eq!(r.status, 400);
    let r = patch(addr, &path, 100, &data(1000)).await;
    assert_eq!(r.status, 413);
    assert_eq!(admin_upload(addr, &path).await["stored"], 100);
    // Creation errors.
    for headers in [
        vec![TUS],
        vec![TUS, ("Upload-Length", "5"), ("Upload-Defer-Length", "1")],
        vec![TUS, ("Upload-Defer-Length", "2")],
        vec![TUS, ("Upload-Length", "-5")],
        vec![
            TUS,
            ("Upload-Length", "5"),
            ("Upload-Metadata", "k not-base64!"),
        ],
        vec![TUS, ("Upload-Length", "5"), ("Upload-Concat", "sometimes")],
    ] {
        let r = req(addr, "POST", "/tus", &headers, b"").await;
        assert_eq!(r.status, 400, "{headers:?}");
    }
    let r = req(
        addr,
        "POST",
        "/tus",
        &[TUS, ("Upload-Length", "68719476737")],
        b"",
    )
    .await;
    assert_eq!(r.status, 413);
    // Unknown uploads: 404 without Upload-Offset.
    let r = head(addr, "/tus/0123456789abcdef0123456789abcdef").await;
    assert_eq!((r.status, offset_of(&r)), (404, None));
    let r = patch(addr, "/tus/nope", 0, b"x").await;
    assert_eq!(r.status, 404);
    // X-HTTP-Method-Override on POST.
    let r = req(
        addr,
        "POST",
        &path,
        &[
            TUS,
            OCTET,
            ("Upload-Offset", "100"),
            ("X-HTTP-Method-Override", "PATCH"),
        ],
        &body[100..],
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(1000)));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));
    srv.shutdown().await;
}

#[tokio::test]
async fn checksums_verify_before_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(3000);
    let path = create_tus(addr, 3000).await;
    let sum = |algo: &str, bytes: &[u8]| {
        let digest = match algo {
            "sha1" => sha1::Sha1::digest(bytes).to_vec(),
            "sha256" => sha2::Sha256::digest(bytes).to_vec(),
            _ => sha2::Sha512::digest(bytes).to_vec(),
        };
        format!("{algo} {}", b64(&digest))
    };
    let with_sum = |offset: &'static str, checksum: String| {
        vec![
            TUS,
            OCTET,
            ("Upload-Offset", offset),
            ("Upload-Checksum", checksum.leak()),
        ]
    };
    let r = req(
        addr,
        "PATCH",
        &path,
        &with_sum("0", sum("sha256", &body[..1000])),
        &body[..1000],
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(1000)), "{}", r.text());

    // A mismatch writes nothing.
    let r = req(
        addr,
        "PATCH",
        &path,
        &with_sum("1000", sum("sha1", &body[..1000])),
        &body[1000..2000],
    )
    .await;
    assert_eq!(r.status, 460, "{}", r.text());
    let info = admin_upload(addr, &path).await;
    assert_eq!(
        (info["stored"].as_u64(), info["bytes_received"].as_u64()),
        (Some(1000), Some(1000))
    );
    // An unknown algorithm is 400, also nothing written.
    let r = req(
        addr,
        "PATCH",
        &path,
        &with_sum("1000", "md4 AAAA".into()),
        &body[1000..2000],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = req(
        addr,
        "PATCH",
        &path,
        &with_sum("1000", "sha1".into()),
        &body[1000..2000],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(admin_upload(addr, &path).await["stored"], 1000);

    let r = req(
        addr,
        "PATCH",
        &path,
        &with_sum("1000", sum("sha1", &body[1000..2000])),
        &body[1000..2000],
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(2000)));
    let r = req(
        addr,
        "PATCH",
        &path,
        &with_sum("2000", sum("sha512", &body[2000..])),
        &body[2000..],
    )
    .await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(3000)));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));

    // A checksummed body above max_checksum_body is refused up front.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let small = server_with(ServerConfig {
        dir: dir2.path().to_owned(),
        max_checksum_body: 100,
        ..ServerConfig::default()
    })
    .await;
    let path = create_tus(small.addr(), 3000).await;
    let r = req(
        small.addr(),
        "PATCH",
        &path,
        &with_sum("0", sum("sha1", &body[..101])),
        &body[..101],
    )
    .await;
    assert_eq!(r.status, 413);
    small.shutdown().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn concatenation_of_three_partials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let body = data(7000);
    let pieces = [&body[..1000], &body[1000..3500], &body[3500..]];
    let mut paths = Vec::new();
    for piece in pieces {
        let len = piece.len().to_string();
        let (_, path) = create_with(
            addr,
            &[("Upload-Length", &len), ("Upload-Concat", "partial")],
            b"",
        )
        .await;
        let r = head(addr, &path).await;
        assert_eq!(r.header("upload-concat"), Some("partial"));
        paths.push(path);
    }
    // Parts not finished yet: 400.
    let list = format!(
        "final;http://localhost{} {} {}",
        paths[0], paths[1], paths[2]
    );
    let r = req(addr, "POST", "/tus", &[TUS, ("Upload-Concat", &list)], b"").await;
    assert_eq!(r.status, 400, "{}", r.text());
    for (path, piece) in paths.iter().zip(pieces) {
        let r = patch(addr, path, 0, piece).await;
        assert_eq!(r.status, 204);
    }
    let metadata = format!("filename {}", b64(b"whole.bin"));
    let (r, final_path) = create_with(
        addr,
        &[("Upload-Concat", &list), ("Upload-Metadata", &metadata)],
        b"",
    )
    .await;
    assert_eq!(offset_of(&r), Some(7000));
    let r = head(addr, &final_path).await;
    assert_eq!(
        (offset_of(&r), r.header("upload-length")),
        (Some(7000), Some("7000"))
    );
    let concat = r.header("upload-concat").expect("Upload-Concat");
    assert_eq!(
        concat,
        format!("final;{} {} {}", paths[0], paths[1], paths[2])
    );
    let info = admin_upload(addr, &final_path).await;
    assert_eq!(info["sha256"], sha256_hex(&body));
    assert_eq!(info["complete"], true);
    assert_eq!(info["filename"], "whole.bin");
    assert_eq!(info["concat"]["role"], "final");
    assert_eq!(info["concat"]["parts"].as_array().map(Vec::len), Some(3));
    assert_eq!(info["bytes_received"], 0);
    // A final upload cannot be modified.
    let r = patch(addr, &final_path, 7000, b"").await;
    assert_eq!(r.status, 403);
    // Unknown parts, non-partial parts, a length on the final: 400.
    let plain = create_tus(addr, 0).await;
    for list in [
        "final;/tus/0123456789abcdef0123456789abcdef".to_owned(),
        format!("final;{plain}"),
        format!("final;{}", paths[0]),
    ] {
        let mut headers = vec![TUS, ("Upload-Concat", list.as_str())];
        if list.ends_with(&paths[0]) {
            headers.push(("Upload-Length", "1000"));
        }
        let r = req(addr, "POST", "/tus", &headers, b"").await;
        assert_eq!(r.status, 400, "{list}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn termination() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let path = create_tus(addr, 100).await;
    patch(addr, &path, 0, &data(10)).await;
    let r = req(addr, "DELETE", &path, &[TUS], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let id = path.strip_prefix("/tus/").expect("tus path");
    assert!(!dir.path().join(format!("{id}.bin")).exists());
    assert!(!dir.path().join(format!("{id}.json")).exists());
    assert_eq!(head(addr, &path).await.status, 404);
    assert_eq!(req(addr, "DELETE", &path, &[TUS], b"").await.status, 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn unfinished_uploads_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_with(ServerConfig {
        dir: dir.path().to_owned(),
        expire_after: Some(Duration::from_millis(1000)),
        ..ServerConfig::default()
    })
    .await;
    let addr = srv.addr();
    let path = create_tus(addr, 100).await;
    let done = create_tus(addr, 10).await;
    let r = patch(addr, &done, 0, &data(10)).await;
    assert_eq!((r.status, r.header("upload-expires")), (204, None));
    let r = patch(addr, &path, 0, &data(10)).await;
    let expires = r.header("upload-expires").expect("Upload-Expires");
    let at = httpdate::parse_http_date(expires).expect("an HTTP-date");
    assert!(at <= std::time::SystemTime::now() + Duration::from_secs(2));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = head(addr, &path).await;
    assert_eq!((r.status, offset_of(&r)), (410, None));
    let id = path.strip_prefix("/tus/").expect("tus path");
    assert!(!dir.path().join(format!("{id}.bin")).exists());
    assert_eq!(patch(addr, &path, 10, &data(10)).await.status, 410);
    assert_eq!(head(addr, &path).await.status, 410);
    // The complete upload stays.
    let r = head(addr, &done).await;
    assert_eq!((r.status, offset_of(&r)), (200, Some(10)));
    srv.shutdown().await;
}

#[tokio::test]
async fn faults_hit_tus_patches_and_heads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "script=0:reset@1000;1:busy", 0).await;
    let addr = srv.addr();
    let body = data(4000);
    let path = create_tus(addr, 4000).await;
    let res = request(
        addr,
        "PATCH",
        &path,
        &[TUS, OCTET, ("Upload-Offset", "0")],
        &body,
    )
    .await;
    match res {
        Err(e) => assert!(is_reset(&e), "{e}"),
        Ok(r) => panic!("expected a reset, got {r:?}"),
    }
    assert_eq!(srv.fault_counts().resets, 1);
    let r = head(addr, &path).await;
    assert_eq!((r.status, offset_of(&r)), (200, Some(1000)));
    assert_eq!(
        admin_upload(addr, &path).await["sha256"],
        sha256_hex(&body[..1000])
    );

    let r = patch(addr, &path, 1000, &body[1000..]).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let r = patch(addr, &path, 1000, &body[1000..]).await;
    assert_eq!((r.status, offset_of(&r)), (204, Some(4000)));
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));

    srv.set_faults("status-error=1".parse().expect("spec"));
    let r = head(addr, &path).await;
    assert_eq!((r.status, offset_of(&r)), (503, None));
    srv.shutdown().await;
}

#[tokio::test]
async fn ranged_and_tus_share_the_script_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "script=1:error@502", 0).await;
    let addr = srv.addr();
    let body = data(200);
    let ranged = create(addr, 200).await;
    let tus = create_tus(addr, 200).await;
    assert_eq!(send_chunk(addr, &ranged, &body, 0, 99).await.status, 200); // #0
    assert_eq!(patch(addr, &tus, 0, &body[..100]).await.status, 502); // #1
    assert_eq!(patch(addr, &tus, 0, &body[..100]).await.status, 204); // #2
    assert_eq!(srv.fault_counts().errors, 1);
    srv.shutdown().await;
}
