//! The GCS harness against fake-gcs-server v1.56.1: a Google-style
//! resumable upload session (initiate, PUT chunks with `Content-Range`,
//! `308` + `Range` until the last one), and where fake-gcs-server departs
//! from Google Cloud Storage, so that a client test never relies on it
//! there. docs/PROTOCOLS.md ("Object storage peers") has the details.

use chunkup_interop::{FakeGcs, HttpResponse, KIB, http_with_body, random_file};
use sha2::{Digest, Sha256};

/// GCS's chunk granularity: every chunk but the last is a multiple of it.
const GRANULARITY: usize = 256 * KIB as usize;

/// `POST` to initiate a session; returns the session URI (`Location`).
fn initiate(gcs: &FakeGcs, name: &str, total: usize) -> String {
    let url = gcs.resumable_initiation_url(name);
    let response = http_with_body(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json; charset=UTF-8"),
            ("X-Upload-Content-Type", "video/mp4"),
            ("X-Upload-Content-Length", &total.to_string()),
        ],
        br#"{"contentType": "video/mp4"}"#,
    );
    assert_eq!(response.status, 200, "initiation: {response:?}");
    let session = response
        .headers
        .get("location")
        .unwrap_or_else(|| panic!("no Location: {response:?}"))
        .clone();
    assert!(
        session.contains("upload_id="),
        "the session URI {session} carries the upload id"
    );
    session
}

/// One chunk: `PUT` of `body` with `Content-Range: bytes {range}`.
fn put_chunk(session: &str, range: &str, body: &[u8]) -> HttpResponse {
    let content_range = format!("bytes {range}");
    let mut headers = vec![
        ("Content-Type", "video/mp4"),
        ("Content-Range", content_range.as_str()),
    ];
    if body.is_empty() {
        headers.push(("Content-Length", "0"));
    }
    http_with_body("PUT", session, &headers, body)
}

#[test]
fn resumable_session_in_chunks() {
    let gcs = FakeGcs::start(&[]);
    let source = random_file(2 * GRANULARITY as u64 + 1234, 71);
    let bytes = std::fs::read(&source.path).expect("read the source");
    let total = bytes.len();
    let name = "media/a clip.mp4";
    let session = initiate(&gcs, name, total);

    // A chunk of a known total that does not reach the end: 308 and
    // `Range: bytes=0-{last byte held}`.
    let first = put_chunk(
        &session,
        &format!("0-{}/{total}", GRANULARITY - 1),
        &bytes[..GRANULARITY],
    );
    assert_eq!(first.status, 308, "{first:?}");
    assert_eq!(
        first.headers.get("range").map(String::as_str),
        Some(format!("bytes=0-{}", GRANULARITY - 1).as_str())
    );
    // The total may also be left open (`/*`), as a streaming client does.
    let second = put_chunk(
        &session,
        &format!("{GRANULARITY}-{}/*", 2 * GRANULARITY - 1),
        &bytes[GRANULARITY..2 * GRANULARITY],
    );
    assert_eq!(second.status, 308, "{second:?}");
    assert_eq!(
        second.headers.get("range").map(String::as_str),
        Some(format!("bytes=0-{}", 2 * GRANULARITY - 1).as_str())
    );
    // The last chunk names the total: 200 and the object's metadata.
    let last = put_chunk(
        &session,
        &format!("{}-{}/{total}", 2 * GRANULARITY, total - 1),
        &bytes[2 * GRANULARITY..],
    );
    assert_eq!(last.status, 200, "{last:?}");
    let object: serde_json::Value = serde_json::from_slice(&last.body).expect("JSON");
    assert_eq!(object["name"], name);
    assert_eq!(object["size"], total.to_string());
    assert_eq!(object["contentType"], "video/mp4");

    let stored = gcs.object_bytes(name);
    assert_eq!(hex::encode(Sha256::digest(&stored)), source.sha256);

    // The session is over: further PUTs get 404 (not 410).
    let after = put_chunk(&session, &format!("*/{total}"), &[]);
    assert_eq!(after.status, 404, "{after:?}");
}

/// fake-gcs-server does not implement GCS's status query nor check the
/// chunk's start offset. A client must not be tested for either against it.
#[test]
fn fake_gcs_departs_from_gcs_on_status_query_and_offsets() {
    let gcs = FakeGcs::start(&[]);
    let chunk = vec![0x5au8; GRANULARITY];
    let total = 3 * GRANULARITY;

    // On GCS, `Content-Range: bytes */{total}` with an empty body asks how
    // much is stored (308 + Range). fake-gcs-server instead finalizes the
    // object with what it has, answers 200, and ends the session.
    let session = initiate(&gcs, "status-query.bin", total);
    let first = put_chunk(&session, &format!("0-{}/{total}", GRANULARITY - 1), &chunk);
    assert_eq!(first.status, 308, "{first:?}");
    let query = put_chunk(&session, &format!("*/{total}"), &[]);
    assert_eq!(query.status, 200, "status query: {query:?}");
    let object = gcs
        .object("status-query.bin")
        .expect("the status query created the object");
    assert_eq!(object["size"], GRANULARITY.to_string(), "{object}");
    let again = put_chunk(&session, &format!("*/{total}"), &[]);
    assert_eq!(again.status, 404, "after the status query: {again:?}");

    // GCS ignores bytes it already has; fake-gcs-server appends every
    // chunk whatever its start, so a resent chunk is stored twice. Chunks
    // need not be multiples of 256 KiB either.
    let session = initiate(&gcs, "resent.bin", 2000);
    let resend = [0x11u8; 1000];
    for _ in 0..2 {
        let response = put_chunk(&session, "0-999/2000", &resend);
        assert_eq!(response.status, 308, "{response:?}");
        assert_eq!(
            response.headers.get("range").map(String::as_str),
            Some("bytes=0-999"),
            "Range echoes the chunk's own end, not what is stored"
        );
    }
    let end = put_chunk(&session, "*/*", &[]);
    assert_eq!(end.status, 200, "{end:?}");
    assert_eq!(gcs.object_bytes("resent.bin"), [resend, resend].concat());
}

#[test]
fn cors_allows_chunks_but_exposes_only_location() {
    let gcs = FakeGcs::start(&["X-Upload-Content-Length"]);
    let origin = "http://127.0.0.1:8080";
    let session = initiate(&gcs, "cors.bin", GRANULARITY * 2);
    let preflight = http_with_body(
        "OPTIONS",
        &session,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "content-range, content-type",
            ),
        ],
        &[],
    );
    assert_eq!(preflight.status, 200, "{preflight:?}");
    assert_eq!(
        preflight
            .headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("*")
    );
    // A header outside the allow-list fails the preflight with 403;
    // `-cors-headers` extends the list.
    let initiation = gcs.resumable_initiation_url("cors.bin");
    for (header, status) in [("x-upload-content-length", 200), ("x-goog-meta-owner", 403)] {
        let preflight = http_with_body(
            "OPTIONS",
            &initiation,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", header),
            ],
            &[],
        );
        assert_eq!(
            preflight.status, status,
            "preflight for {header}: {preflight:?}"
        );
    }
    // The 308 carries Range, but only Location is exposed: a page cannot
    // read how much is stored and must count what it sent.
    let chunk = vec![1u8; GRANULARITY];
    let response = http_with_body(
        "PUT",
        &session,
        &[
            ("Origin", origin),
            (
                "Content-Range",
                &format!("bytes 0-{}/{}", GRANULARITY - 1, GRANULARITY * 2),
            ),
        ],
        &chunk,
    );
    assert_eq!(response.status, 308, "{response:?}");
    assert!(response.headers.contains_key("range"), "{response:?}");
    assert_eq!(
        response
            .headers
            .get("access-control-expose-headers")
            .map(String::as_str),
        Some("Location")
    );
}
