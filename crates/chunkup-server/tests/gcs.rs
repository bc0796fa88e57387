//! Google-style resumable sessions (`/gcs`) against a real server on
//! loopback: initiation, chunks in 256 KiB units, `308` + `Range`, status
//! queries, completion, cancellation, faults and limits.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chunkup_server::{FaultCounts, ServerConfig};
use common::*;

const UNIT: usize = 256 * 1024;

/// `POST /gcs` (with `X-Upload-Content-Length` when `total` is given);
/// returns the session's path.
async fn initiate(addr: SocketAddr, total: Option<usize>) -> String {
    let r = initiate_raw(addr, total).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let location = r.header("location").expect("a session URI");
    assert!(location.starts_with("http://localhost/gcs/"), "{location}");
    path_of(location)
}

async fn initiate_raw(addr: SocketAddr, total: Option<usize>) -> Resp {
    let total = total.map(|t| t.to_string());
    let mut headers = vec![("X-Upload-Content-Type", "video/mp4")];
    if let Some(t) = &total {
        headers.push(("X-Upload-Content-Length", t));
    }
    req(
        addr,
        "POST",
        "/gcs?uploadType=resumable&name=clip.mp4",
        &headers,
        b"",
    )
    .await
}

/// `PUT` of `body` with `Content-Range: range`.
async fn put(addr: SocketAddr, path: &str, range: &str, body: &[u8]) -> Resp {
    req(addr, "PUT", path, &[("Content-Range", range)], body).await
}

/// Sends `data[start..=end]`, the total `total` (`*` when `None`).
async fn chunk(
    addr: SocketAddr,
    path: &str,
    data: &[u8],
    start: usize,
    end: usize,
    total: Option<usize>,
) -> Resp {
    let total = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
    let range = format!("bytes {start}-{end}/{total}");
    put(addr, path, &range, &data[start..=end]).await
}

async fn status(addr: SocketAddr, path: &str, total: &str) -> Resp {
    put(addr, path, &format!("bytes */{total}"), b"").await
}

fn range(r: &Resp) -> Option<&str> {
    r.header("range")
}

#[tokio::test]
async fn a_session_in_units_then_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let total = 2 * UNIT + 1000;
    let body = data(total);
    let path = initiate(addr, Some(total)).await;
    let t = total.to_string();

    // Nothing stored: 308 without Range.
    let r = status(addr, &path, &t).await;
    assert_eq!((r.status, range(&r)), (308, None));
    let r = chunk(addr, &path, &body, 0, UNIT - 1, Some(total)).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));
    let r = status(addr, &path, "*").await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));

    // Not a multiple of 256 KiB and not the last chunk: 400, nothing stored.
    let r = chunk(addr, &path, &body, UNIT, UNIT + 99, Some(total)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("multiple of 262144"), "{}", r.text());
    assert_eq!(
        range(&status(addr, &path, &t).await),
        Some("bytes=0-262143")
    );

    // The last chunk may be any size: 200 with the object.
    let r = chunk(addr, &path, &body, UNIT, total - 1, Some(total)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let object = r.json();
    assert_eq!(object["size"], total.to_string());
    assert_eq!(object["name"], "clip.mp4");
    assert_eq!(object["contentType"], "video/mp4");
    assert_eq!(object["sha256"], sha256_hex(&body));

    // Complete: a status query and a repeated chunk are 200, nothing changes.
    assert_eq!(status(addr, &path, &t).await.status, 200);
    let r = chunk(addr, &path, &body, 0, UNIT - 1, Some(total)).await;
    assert_eq!(r.status, 200);
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["complete"], true);
    assert_eq!(info["protocol"], "gcs");
    assert_eq!(info["sha256"], sha256_hex(&body));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_stream_of_unknown_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();

    // Ends with a short chunk that states the length.
    let body = data(UNIT + 100);
    let path = initiate(addr, None).await;
    let r = chunk(addr, &path, &body, 0, UNIT - 1, None).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));
    // A short chunk that does not state the length is not the last one.
    let r = chunk(addr, &path, &body, UNIT, UNIT + 99, None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = chunk(addr, &path, &body, UNIT, UNIT + 99, Some(UNIT + 100)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["sha256"], sha256_hex(&body));

    // Ends on a unit boundary: the status query with the length finishes it.
    let body = data(2 * UNIT);
    let path = initiate(addr, None).await;
    let r = chunk(addr, &path, &body, 0, 2 * UNIT - 1, None).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-524287")));
    let r = status(addr, &path, "*").await;
    assert_eq!(r.status, 308, "bytes */* never finishes");
    // A length below the bytes held is refused.
    assert_eq!(status(addr, &path, &UNIT.to_string()).await.status, 400);
    let r = status(addr, &path, &(2 * UNIT).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["sha256"], sha256_hex(&body));
    assert_eq!(admin_upload(addr, &path).await["complete"], true);

    // An empty object.
    let path = initiate(addr, Some(0)).await;
    assert_eq!(status(addr, &path, "0").await.status, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn chunks_beyond_or_over_the_held_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "none", 0).await;
    let addr = srv.addr();
    let total = 3 * UNIT;
    let body = data(total);
    let path = initiate(addr, Some(total)).await;
    chunk(addr, &path, &body, 0, UNIT - 1, Some(total)).await;

    // A hole: not read, 308 with what is held.
    let r = chunk(addr, &path, &body, 2 * UNIT, total - 1, Some(total)).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));

    // Overlapping the held bytes: only the new ones are added; the held
    // ones are not overwritten (here the body's copy of them differs).
    let mut resent = body[..2 * UNIT].to_vec();
    resent[..UNIT].fill(0xee);
    let range_value = format!("bytes 0-{}/{total}", 2 * UNIT - 1);
    let r = put(addr, &path, &range_value, &resent).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-524287")));
    let r = chunk(addr, &path, &body, 2 * UNIT, total - 1, Some(total)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(admin_upload(addr, &path).await["sha256"], sha256_hex(&body));
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_requests_unknown_and_cancelled_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        dir: dir.path().to_owned(),
        max_size: 10 * UNIT as u64,
        ..ServerConfig::default()
    };
    let srv = server_with(config).await;
    let addr = srv.addr();
    let total = 2 * UNIT;
    let body = data(total);
    let path = initiate(addr, Some(total)).await;

    let no_range = req(addr, "PUT", &path, &[], &body[..UNIT]).await;
    assert_eq!(no_range.status, 400);
    let other_total = chunk(addr, &path, &body, 0, UNIT - 1, Some(total + 1)).await;
    assert_eq!(other_total.status, 400);
    let past_end = put(addr, &path, &format!("bytes {UNIT}-{total}/{total}"), b"x").await;
    assert_eq!(past_end.status, 400);
    let reversed = put(addr, &path, &format!("bytes 9-3/{total}"), b"").await;
    assert_eq!(reversed.status, 400);
    let body_on_status = put(addr, &path, &format!("bytes */{total}"), b"xyz").await;
    assert_eq!(body_on_status.status, 400);
    let bad_length = req(
        addr,
        "POST",
        "/gcs",
        &[("X-Upload-Content-Length", "lots")],
        b"",
    )
    .await;
    assert_eq!(bad_length.status, 400);
    assert_eq!(initiate_raw(addr, Some(11 * UNIT)).await.status, 413);

    // Unknown: 404. Cancelled: 499, then 410 for everything.
    let unknown = "/gcs/0123456789abcdef0123456789abcdef";
    assert_eq!(status(addr, unknown, "*").await.status, 404);
    assert_eq!(req(addr, "DELETE", unknown, &[], b"").await.status, 404);
    chunk(addr, &path, &body, 0, UNIT - 1, Some(total)).await;
    assert_eq!(req(addr, "DELETE", &path, &[], b"").await.status, 499);
    assert_eq!(status(addr, &path, "*").await.status, 410);
    let r = chunk(addr, &path, &body, UNIT, total - 1, Some(total)).await;
    assert_eq!(r.status, 410);
    assert_eq!(req(addr, "DELETE", &path, &[], b"").await.status, 410);
    let id = path.rsplit('/').next().expect("id");
    let r = req(addr, "GET", &format!("/_admin/uploads/{id}"), &[], b"").await;
    assert_eq!(r.status, 404, "the files are gone");
    srv.shutdown().await;
}

#[tokio::test]
async fn expired_sessions_are_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        dir: dir.path().to_owned(),
        expire_after: Some(Duration::from_millis(50)),
        ..ServerConfig::default()
    };
    let srv = server_with(config).await;
    let addr = srv.addr();
    let path = initiate(addr, Some(UNIT)).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(status(addr, &path, "*").await.status, 410);
    srv.shutdown().await;
}

#[tokio::test]
async fn faults_hit_chunks_and_status_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(dir.path(), "script=0:reset@300000;1:busy;2:error@502", 0).await;
    let addr = srv.addr();
    let total = 3 * UNIT;
    let body = data(total);
    let t = total.to_string();
    let path = initiate(addr, Some(total)).await;
    let range_value = format!("bytes 0-{}/{total}", 2 * UNIT - 1);

    // #0: 300000 bytes arrived before the reset; whole units are kept.
    let res = request(
        addr,
        "PUT",
        &path,
        &[("Content-Range", &range_value)],
        &body[..2 * UNIT],
    )
    .await;
    assert!(matches!(&res, Err(e) if is_reset(e)), "{res:?}");
    let r = status(addr, &path, &t).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));
    assert_eq!(
        admin_upload(addr, &path).await["sha256"],
        sha256_hex(&body[..UNIT])
    );

    // #1 busy, #2 an error: nothing stored.
    let r = chunk(addr, &path, &body, UNIT, 2 * UNIT - 1, Some(total)).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    let r = chunk(addr, &path, &body, UNIT, 2 * UNIT - 1, Some(total)).await;
    assert_eq!(r.status, 502);
    // #3 a stall after 10 bytes: less than a unit, nothing kept.
    srv.set_faults("script=0:stall@10,stall-secs=0.1".parse().expect("spec"));
    let res = request(
        addr,
        "PUT",
        &path,
        &[(
            "Content-Range",
            &format!("bytes {UNIT}-{}/{total}", 2 * UNIT - 1),
        )],
        &body[UNIT..2 * UNIT],
    )
    .await;
    assert!(res.is_err(), "{res:?}");
    assert_eq!(
        range(&status(addr, &path, &t).await),
        Some("bytes=0-262143")
    );

    // The last chunk after a reset that reached the end keeps every byte.
    srv.set_faults(
        format!("script=0:reset@{}", 2 * UNIT)
            .parse()
            .expect("spec"),
    );
    let res = request(
        addr,
        "PUT",
        &path,
        &[(
            "Content-Range",
            &format!("bytes {UNIT}-{}/{total}", total - 1),
        )],
        &body[UNIT..],
    )
    .await;
    assert!(res.is_err(), "{res:?}");
    let r = status(addr, &path, &t).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["sha256"], sha256_hex(&body));
    assert_eq!(
        srv.fault_counts(),
        FaultCounts {
            resets: 2,
            errors: 1,
            busy: 1,
            stalls: 1,
        }
    );

    // A status query meets status-error faults.
    srv.set_faults("status-error=1".parse().expect("spec"));
    let path = initiate(addr, Some(total)).await;
    assert_eq!(status(addr, &path, &t).await.status, 503);
    srv.shutdown().await;
}

#[tokio::test]
async fn all_or_nothing_appends_keep_no_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        dir: dir.path().to_owned(),
        faults: "script=0:reset@300000".parse().expect("spec"),
        atomic_appends: true,
        ..ServerConfig::default()
    };
    let srv = server_with(config).await;
    let addr = srv.addr();
    let total = 2 * UNIT;
    let body = data(total);
    let path = initiate(addr, Some(total)).await;
    let res = request(
        addr,
        "PUT",
        &path,
        &[("Content-Range", &format!("bytes 0-{}/{total}", total - 1))],
        &body,
    )
    .await;
    assert!(res.is_err(), "{res:?}");
    let r = status(addr, &path, "*").await;
    assert_eq!((r.status, range(&r)), (308, None));
    srv.shutdown().await;
}

#[tokio::test]
async fn limits_and_host_names_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        dir: dir.path().to_owned(),
        max_unfinished: 1,
        max_total_size: 4 * UNIT as u64,
        ..ServerConfig::default()
    };
    let srv = server_with(config).await;
    let addr = srv.addr();
    let over_total = initiate_raw(addr, Some(5 * UNIT)).await;
    assert_eq!(over_total.status, 507, "{}", over_total.text());
    initiate(addr, Some(UNIT)).await;
    let r = initiate_raw(addr, Some(UNIT)).await;
    assert_eq!(
        (r.status, r.header("retry-after")),
        (503, Some("10")),
        "{}",
        r.text()
    );

    // A Host this server does not know (DNS rebinding): 403 before the route.
    let raw = b"POST /gcs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\
                Content-Length: 0\r\n\r\n";
    let reply = raw_exchange(addr, raw).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    srv.shutdown().await;
}

/// Writes `bytes` on a new connection and reads the reply as text.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(bytes).await.expect("write");
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn after_a_failover_whole_units_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first instance keeps the newest 100000 acknowledged bytes in memory.
    let first = server(dir.path(), "none", 100_000).await;
    let total = 3 * UNIT;
    let body = data(total);
    let path = initiate(first.addr(), Some(total)).await;
    let r = chunk(first.addr(), &path, &body, 0, 2 * UNIT - 1, Some(total)).await;
    assert_eq!(range(&r), Some("bytes=0-524287"));
    first.crash();

    // The second holds 2 units - 100000 bytes on disk: one whole unit.
    let second = server(dir.path(), "none", 0).await;
    let addr = second.addr();
    let r = status(addr, &path, &total.to_string()).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));
    // The client's next chunk (from where the first left off) is a hole.
    let r = chunk(addr, &path, &body, 2 * UNIT, total - 1, Some(total)).await;
    assert_eq!((r.status, range(&r)), (308, Some("bytes=0-262143")));
    // From the reported unit: only the missing bytes are added.
    let r = chunk(addr, &path, &body, UNIT, total - 1, Some(total)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let info = admin_upload(addr, &path).await;
    assert_eq!(info["sha256"], sha256_hex(&body));
    assert_eq!(info["bytes_received"], total - (2 * UNIT - 100_000));
    second.shutdown().await;
}
