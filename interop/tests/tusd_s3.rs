//! tus over distributed storage: two tusd v2.9.1 instances keep their
//! uploads in one SeaweedFS bucket. An upload created on the first is
//! continued on the second after the first is killed, with raw tus
//! requests; the object in the bucket is then exactly the source.

use chunkup_interop::{
    HttpResponse, MIB, SeaweedFs, http, http_with_body, random_file, tusd_pair_over_s3,
};
use sha2::{Digest, Sha256};

fn patch(url: &str, offset: u64, body: &[u8]) -> HttpResponse {
    http_with_body(
        "PATCH",
        url,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", &offset.to_string()),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        body,
    )
}

fn offset_of(response: &HttpResponse) -> u64 {
    response
        .headers
        .get("upload-offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("no Upload-Offset: {response:?}"))
}

#[test]
fn upload_continues_on_a_second_tusd_over_shared_s3() {
    let s3 = SeaweedFs::start();
    let (first, second) = tusd_pair_over_s3(&s3);
    let source = random_file(12 * MIB + 3, 81);
    let bytes = std::fs::read(&source.path).expect("read the source");

    let created = http(
        "POST",
        &first.endpoint,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &source.size.to_string()),
            ("Upload-Metadata", "filename Y2xpcC5iaW4="),
        ],
    );
    assert_eq!(created.status, 201, "{created:?}\n{}", first.log());
    let on_first = created.headers["location"].clone();
    // `{object id}+{S3 multipart upload id}`.
    let upload = on_first
        .rsplit('/')
        .next()
        .expect("an upload id")
        .to_string();
    let (object_id, multipart_id) = upload.split_once('+').expect("tusd's S3 upload id");
    assert!(!multipart_id.is_empty(), "{upload}");

    // 6 MiB: over the 5 MiB minimum, so it becomes S3 part 1.
    let six = 6 * MIB;
    let patched = patch(&on_first, 0, &bytes[..six as usize]);
    assert_eq!(patched.status, 204, "{patched:?}\n{}", first.log());
    assert_eq!(offset_of(&patched), six);

    drop(first); // SIGKILL: the instance dies, its memory (and lock) with it.

    let on_second = second.url_of(&on_first);
    let head = http("HEAD", &on_second, &[("Tus-Resumable", "1.0.0")]);
    assert_eq!(head.status, 200, "{head:?}\n{}", second.log());
    assert_eq!(
        offset_of(&head),
        six,
        "the second instance reads the offset from S3"
    );
    assert_eq!(
        head.headers.get("upload-length"),
        Some(&source.size.to_string())
    );
    assert_eq!(
        head.headers.get("upload-metadata").map(String::as_str),
        Some("filename Y2xpcC5iaW4=")
    );

    // 1 MiB: under the minimum part size, so tusd parks it in
    // `{object id}.part` until more comes; the offset counts it anyway.
    let seven = 7 * MIB;
    let patched = patch(&on_second, six, &bytes[six as usize..seven as usize]);
    assert_eq!(patched.status, 204, "{patched:?}\n{}", second.log());
    assert_eq!(offset_of(&patched), seven);
    let parked = s3.get_object(&format!("{object_id}.part"));
    assert_eq!(parked.len() as u64, MIB);

    let patched = patch(&on_second, seven, &bytes[seven as usize..]);
    assert_eq!(patched.status, 204, "{patched:?}\n{}", second.log());
    assert_eq!(offset_of(&patched), source.size);

    // The finished S3 object is the upload, byte for byte.
    let stored = s3.get_object(object_id);
    assert_eq!(stored.len() as u64, source.size);
    assert_eq!(hex::encode(Sha256::digest(&stored)), source.sha256);
    let info: serde_json::Value =
        serde_json::from_slice(&s3.get_object(&format!("{object_id}.info"))).expect("JSON");
    assert_eq!(info["ID"], upload.as_str(), "{info}");
}
