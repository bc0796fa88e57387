//! The S3 harness against SeaweedFS: multipart uploads through URLs that
//! boto3 presigned (SigV4, query string), sent with plain reqwest the way
//! the chunkup client will send them; what SeaweedFS answers to an expired
//! or foreign URL and to an aborted upload; bucket CORS; and the AWS CLI as
//! a reference client. docs/PROTOCOLS.md ("Object storage peers") records
//! the wire facts these tests pin.

use chunkup_interop::{CorsRule, KIB, MIB, Presign, SeaweedFs, random_file};
use sha2::{Digest, Sha256};

/// The parameters naming one multipart upload.
fn upload_params(s3: &SeaweedFs, key: &str, upload_id: &str) -> serde_json::Value {
    serde_json::json!({ "Bucket": s3.bucket, "Key": key, "UploadId": upload_id })
}

fn part_params(s3: &SeaweedFs, key: &str, upload_id: &str, part: u32) -> serde_json::Value {
    let mut params = upload_params(s3, key, upload_id);
    params["PartNumber"] = part.into();
    params
}

/// The text of every element named `tag` in an S3 XML answer, entities
/// decoded (SeaweedFS writes the quotes of an ETag as `&#34;`).
fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    doc.descendants()
        .filter(|n| n.tag_name().name() == tag)
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect()
}

fn xml_text(xml: &str, tag: &str) -> String {
    xml_texts(xml, tag)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
}

/// The parts of a ListPartsResult: (PartNumber, ETag, Size).
fn listed_parts(xml: &str) -> Vec<(u32, String, u64)> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    doc.descendants()
        .filter(|n| n.tag_name().name() == "Part")
        .map(|part| {
            let field = |name: &str| {
                part.children()
                    .find(|c| c.tag_name().name() == name)
                    .and_then(|c| c.text())
                    .unwrap_or_else(|| panic!("a <Part> without <{name}> in {xml}"))
                    .to_string()
            };
            (
                field("PartNumber").parse().expect("a part number"),
                field("ETag"),
                field("Size").parse().expect("a size"),
            )
        })
        .collect()
}

/// An ETag as S3 sends it for a single part: a quoted hex MD5.
fn assert_part_etag(etag: &str) {
    let hex = etag
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or_else(|| panic!("ETag {etag:?} is not quoted"));
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "ETag {etag:?} is not a quoted MD5"
    );
}

#[tokio::test]
async fn presigned_multipart_upload_with_plain_http() {
    let s3 = SeaweedFs::start();
    let http = reqwest::Client::new();
    // Two 5 MiB parts (S3's minimum for all parts but the last) and a tail.
    let source = random_file(12 * MIB + 5, 61);
    let bytes = std::fs::read(&source.path).expect("read the source");
    let key = "videos/a clip.bin";

    let create = s3.presign_one(Presign::new(
        "create_multipart_upload",
        serde_json::json!({ "Bucket": s3.bucket, "Key": key, "ContentType": "video/mp4" }),
    ));
    // The content type was signed: the request must carry it.
    let created = http
        .post(&create)
        .header("Content-Type", "video/mp4")
        .send()
        .await
        .expect("CreateMultipartUpload");
    assert_eq!(created.status(), 200, "CreateMultipartUpload");
    let created = created.text().await.expect("its body");
    let upload_id = xml_text(&created, "UploadId");
    assert_eq!(xml_text(&created, "Key"), key, "{created}");

    let mut requests: Vec<Presign> = (1..=3)
        .map(|n| Presign::new("upload_part", part_params(&s3, key, &upload_id, n)))
        .collect();
    requests.push(Presign::new(
        "list_parts",
        upload_params(&s3, key, &upload_id),
    ));
    requests.push(Presign::new(
        "complete_multipart_upload",
        upload_params(&s3, key, &upload_id),
    ));
    let urls = s3.presign(&requests);
    let (part_urls, list_url, complete_url) = (&urls[..3], &urls[3], &urls[4]);

    let ranges = [0..5 * MIB, 5 * MIB..10 * MIB, 10 * MIB..source.size];
    let mut etags = Vec::new();
    for (n, (url, range)) in part_urls.iter().zip(ranges.iter().cloned()).enumerate() {
        let body = bytes[range.start as usize..range.end as usize].to_vec();
        let response = http.put(url).body(body).send().await.expect("UploadPart");
        assert_eq!(response.status(), 200, "UploadPart {}", n + 1);
        let etag = response
            .headers()
            .get("etag")
            .unwrap_or_else(|| panic!("UploadPart {} answered without an ETag", n + 1))
            .to_str()
            .expect("an ASCII ETag")
            .to_string();
        assert_part_etag(&etag);
        etags.push(etag);

        if n == 1 {
            // After two parts, ListParts reports exactly those two, with the
            // ETags UploadPart returned: what a resuming client needs.
            let listed = http.get(list_url).send().await.expect("ListParts");
            assert_eq!(listed.status(), 200, "ListParts");
            let listed = listed.text().await.expect("its body");
            assert_eq!(
                listed_parts(&listed),
                vec![
                    (1, etags[0].clone(), 5 * MIB),
                    (2, etags[1].clone(), 5 * MIB),
                ],
                "{listed}"
            );
            assert_eq!(xml_text(&listed, "IsTruncated"), "false", "{listed}");
        }
    }

    let complete_body = format!(
        "<CompleteMultipartUpload>{}</CompleteMultipartUpload>",
        etags
            .iter()
            .enumerate()
            .map(|(i, etag)| format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                i + 1
            ))
            .collect::<String>()
    );
    let completed = http
        .post(complete_url)
        .header("Content-Type", "application/xml")
        .body(complete_body.clone())
        .send()
        .await
        .expect("CompleteMultipartUpload");
    assert_eq!(completed.status(), 200, "CompleteMultipartUpload");
    let completed = completed.text().await.expect("its body");
    let object_etag = xml_text(&completed, "ETag");
    assert!(
        object_etag.ends_with("-3\""),
        "multipart ETag {object_etag:?}"
    );

    // Completing again (a retry after a lost answer) gives the same result.
    let again = http
        .post(complete_url)
        .body(complete_body)
        .send()
        .await
        .expect("CompleteMultipartUpload again");
    assert_eq!(again.status(), 200, "a repeated CompleteMultipartUpload");
    assert_eq!(
        xml_text(&again.text().await.expect("its body"), "ETag"),
        object_etag
    );

    let stored = s3.get_object(key);
    assert_eq!(stored.len() as u64, source.size);
    assert_eq!(hex::encode(Sha256::digest(&stored)), source.sha256);

    // The upload is gone once complete.
    let listed = http.get(list_url).send().await.expect("ListParts");
    assert_eq!(listed.status(), 404, "ListParts after completion");
}

#[tokio::test]
async fn expired_or_foreign_presigned_urls_are_refused() {
    let s3 = SeaweedFs::start();
    let http = reqwest::Client::new();
    let put = |key: &str| {
        Presign::new(
            "put_object",
            serde_json::json!({ "Bucket": s3.bucket, "Key": key }),
        )
    };
    let urls = s3.presign(&[put("short.bin").expires_in(1), put("mine.bin")]);

    // X-Amz-Expires is whole seconds from X-Amz-Date: wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = http
        .put(&urls[0])
        .body(vec![1u8; 1000])
        .send()
        .await
        .expect("PUT");
    assert_eq!(expired.status(), 403, "an expired URL");
    let body = expired.text().await.expect("its body");
    assert_eq!(xml_text(&body, "Code"), "AccessDenied", "{body}");
    assert_eq!(xml_text(&body, "Message"), "Request has expired", "{body}");

    // A URL signed for one key does not open another.
    let foreign = urls[1].replacen("/mine.bin?", "/other.bin?", 1);
    let refused = http
        .put(&foreign)
        .body(vec![2u8; 1000])
        .send()
        .await
        .expect("PUT");
    assert_eq!(refused.status(), 403, "a URL signed for another key");
    let body = refused.text().await.expect("its body");
    assert_eq!(xml_text(&body, "Code"), "SignatureDoesNotMatch", "{body}");

    // And the right one works.
    let ok = http
        .put(&urls[1])
        .body(vec![3u8; 1000])
        .send()
        .await
        .expect("PUT");
    assert_eq!(ok.status(), 200, "the URL as signed");
    assert_eq!(s3.get_object("mine.bin"), vec![3u8; 1000]);
}

#[tokio::test]
async fn aborted_multipart_upload_is_gone() {
    let s3 = SeaweedFs::start();
    let http = reqwest::Client::new();
    let key = "aborted.bin";
    let create = s3.presign_one(Presign::new(
        "create_multipart_upload",
        serde_json::json!({ "Bucket": s3.bucket, "Key": key }),
    ));
    let created = http.post(&create).send().await.expect("create");
    assert_eq!(created.status(), 200);
    let upload_id = xml_text(&created.text().await.expect("body"), "UploadId");
    let urls = s3.presign(&[
        Presign::new("upload_part", part_params(&s3, key, &upload_id, 1)),
        Presign::new(
            "abort_multipart_upload",
            upload_params(&s3, key, &upload_id),
        ),
        Presign::new("list_parts", upload_params(&s3, key, &upload_id)),
        Presign::new("upload_part", part_params(&s3, key, &upload_id, 2)),
    ]);
    let part = http
        .put(&urls[0])
        .body(vec![7u8; 64 * KIB as usize])
        .send()
        .await
        .expect("UploadPart");
    assert_eq!(part.status(), 200);

    let aborted = http.delete(&urls[1]).send().await.expect("Abort");
    assert_eq!(aborted.status(), 204, "AbortMultipartUpload");
    for (what, response) in [
        ("ListParts", http.get(&urls[2]).send().await),
        (
            "UploadPart",
            http.put(&urls[3]).body(vec![8u8; 10]).send().await,
        ),
        ("a second Abort", http.delete(&urls[1]).send().await),
    ] {
        let response = response.expect("a response");
        assert_eq!(response.status(), 404, "{what} after the abort");
        let body = response.text().await.expect("its body");
        assert_eq!(xml_text(&body, "Code"), "NoSuchUpload", "{what}: {body}");
    }
}

#[tokio::test]
async fn bucket_cors_decides_what_a_page_may_send_and_read() {
    let s3 = SeaweedFs::start();
    let http = reqwest::Client::new();
    let page = "http://127.0.0.1:8080";
    let url = s3.presign_one(Presign::new(
        "put_object",
        serde_json::json!({ "Bucket": s3.bucket, "Key": "from-a-page.bin" }),
    ));
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII").to_string())
    };

    s3.set_cors(&[CorsRule {
        allowed_origins: vec![page.to_string()],
        allowed_methods: vec!["PUT".into(), "POST".into(), "GET".into(), "DELETE".into()],
        allowed_headers: vec!["*".into()],
        expose_headers: vec!["ETag".into()],
        max_age_seconds: Some(600),
    }]);
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", page)
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 200, "preflight from the allowed origin");
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some(page)
    );
    let methods = header(&preflight, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("PUT"), "allowed methods {methods:?}");
    let allowed = header(&preflight, "access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.eq_ignore_ascii_case("content-type"),
        "allowed headers {allowed:?}"
    );

    let put = http
        .put(&url)
        .header("Origin", page)
        .body(vec![1u8; 100])
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 200);
    assert_eq!(
        header(&put, "access-control-allow-origin").as_deref(),
        Some(page)
    );
    assert_eq!(
        header(&put, "access-control-expose-headers").as_deref(),
        Some("ETag"),
        "a page can read the part's ETag"
    );
    assert!(header(&put, "etag").is_some());

    // Another origin is refused at the preflight.
    let foreign = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "http://127.0.0.1:9999")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .expect("preflight");
    assert_eq!(foreign.status(), 403, "preflight from another origin");

    // Without ExposeHeaders the ETag is still sent, but not exposed: a
    // browser hides it from the page, which then cannot complete the
    // upload from UploadPart's answers.
    s3.set_cors(&[CorsRule {
        allowed_origins: vec![page.to_string()],
        allowed_methods: vec!["PUT".into()],
        allowed_headers: vec!["*".into()],
        ..CorsRule::default()
    }]);
    let put = http
        .put(&url)
        .header("Origin", page)
        .body(vec![2u8; 100])
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 200);
    assert_eq!(
        header(&put, "access-control-allow-origin").as_deref(),
        Some(page)
    );
    assert_eq!(header(&put, "access-control-expose-headers"), None);
    assert!(header(&put, "etag").is_some());
}

#[test]
fn aws_cli_copies_a_large_file_in_parts() {
    let s3 = SeaweedFs::start();
    // Over the CLI's 8 MiB multipart threshold: three 8 MiB parts.
    let source = random_file(20 * MIB + 11, 62);
    let mut command = s3.aws_cli();
    command
        .args([
            "--endpoint-url",
            &s3.s3_endpoint,
            "s3",
            "cp",
            "--only-show-errors",
        ])
        .arg(&source.path)
        .arg(format!("s3://{}/cli/large.bin", s3.bucket));
    let output = command.output().expect("run aws s3 cp");
    assert!(
        output.status.success(),
        "aws s3 cp: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = s3.get_object("cli/large.bin");
    assert_eq!(stored.len() as u64, source.size);
    assert_eq!(hex::encode(Sha256::digest(&stored)), source.sha256);
}
