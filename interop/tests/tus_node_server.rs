//! chunkup (the CLI, and the library for termination) against `@tus/server`
//! 2.x + `@tus/file-store` (npm), a tus server nobody here wrote. The bytes
//! are checked where the file store keeps them.


use chunkup::{Client, Protocol, UploadControl, UploadEvent as Event, UploadOptions};
use chunkup_interop::{
    CutProxy, KIB, MIB, TusNodeServer, chunkup_upload, http, random_file, sha256_file, upload_id,
};

/// Asserts the file store holds exactly the source's bytes for `upload_url`.
fn assert_stored(server: &TusNodeServer, upload_url: &str, size: u64, sha256: &str) {
    let id = upload_id(upload_url);
    let stored = server.stored_path(id);
    let len = std::fs::metadata(&stored)
        .unwrap_or_else(|e| panic!("{}: {e}\nserver log:\n{}", stored.display(), server.log()))
        .len();
    assert_eq!(len, size, "stored length of {upload_url}");
    assert_eq!(sha256_file(&stored), sha256, "stored bytes of {upload_url}");
    // The store's `<id>.json` keeps the creation-time offset (0); the
    // file's length is the offset.
    let info = server.info(id);
    assert_eq!(info["size"].as_u64(), Some(size), "info: {info}");
}

#[test]
fn tus_upload_stores_exact_bytes() {
    let server = TusNodeServer::start();
    let source = random_file(5 * MIB + 123, 1);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &server.endpoint,
        state.path(),
        &["--protocol", "tus", "--chunk-size", "1MiB"],
    );
    let url = run.upload_url();
    assert!(
        url.starts_with(&server.endpoint),
        "{url} is not under {}",
        server.endpoint
    );
    let acks = run
        .json_lines()
        .iter()
        .filter(|e| e["event"] == "chunk_acknowledged")
        .count();
    assert_eq!(acks, 6, "1 MiB chunks of 5 MiB + 123 bytes:\n{run}");
    assert_stored(&server, &url, source.size, &source.sha256);
}

#[test]
fn auto_discovers_tus() {
    let server = TusNodeServer::start();
    let source = random_file(3 * MIB, 2);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &server.endpoint,
        state.path(),
        &["--protocol", "auto"],
    );
    let url = run.upload_url();
    let discovered = run
        .discovered()
        .unwrap_or_else(|| panic!("no discovery event:\n{run}"));
    assert_eq!(discovered["protocol"], "tus", "{discovered}");
    let extensions = discovered["extensions"].as_array().expect("extensions");
    for needed in ["creation", "termination"] {
        assert!(
            extensions.iter().any(|e| e == needed),
            "@tus/server lists {needed}: {discovered}"
        );
    }
    assert_stored(&server, &url, source.size, &source.sha256);
}

#[test]
fn metadata_reaches_the_file_store() {
    let server = TusNodeServer::start();
    let source = random_file(300 * KIB, 3);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &server.endpoint,
        state.path(),
        &[
            "--protocol",
            "tus",
            "--metadata",
            "owner=ana",
            "--metadata",
            "note=a b,c=d ünï",
        ],
    );
    let url = run.upload_url();
    let info = server.info(upload_id(&url));
    let metadata = &info["metadata"];
    assert_eq!(metadata["owner"], "ana", "info: {info}");
    assert_eq!(metadata["note"], "a b,c=d ünï", "info: {info}");
    assert_stored(&server, &url, source.size, &source.sha256);
}

#[test]
fn resumes_after_a_cut_connection_in_a_new_run() {
    let server = TusNodeServer::start();
    let upstream = server
        .endpoint
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the endpoint")
        .to_string();
    let proxy = CutProxy::start(&upstream);
    let endpoint = format!("{}/files", proxy.url());
    let source = random_file(4 * MIB, 4);
    let state = tempfile::tempdir().expect("state dir");
    let args = ["--protocol", "tus", "--chunk-size", "512KiB"];

    // Run 1: the link goes down for good after ~1.3 MiB; the CLI gives up.
    proxy.cut_after(1300 * KIB);
    let first = chunkup_upload(
        &source.path,
        &endpoint,
        state.path(),
        &[&args[..], &["--retries", "1", "--file-tries", "1"]].concat(),
    );
    assert!(
        !first.status.success(),
        "the first run cannot finish:\n{first}"
    );
    assert_eq!(proxy.cuts(), 1);
    let created = first
        .event("created")
        .unwrap_or_else(|| panic!("no created event:\n{first}"));
    let url = created["upload_url"]
        .as_str()
        .expect("upload_url")
        .to_string();
    let acknowledged = first.max_acknowledged();

    // Run 2, same state dir, link back: continues the same upload.
    proxy.restore();
    let second = chunkup_upload(&source.path, &endpoint, state.path(), &args);
    assert_eq!(
        second.upload_url(),
        url,
        "the same upload is continued:\n{second}"
    );
    assert!(
        second.event("created").is_none(),
        "no new upload:\n{second}"
    );
    let resumed = second
        .event("resumed")
        .unwrap_or_else(|| panic!("no resumed event:\n{second}"));
    let offset = resumed["offset"].as_u64().expect("offset");
    // At least what was acknowledged; @tus/server also keeps the part of
    // the cut PATCH it received.
    assert!(
        offset >= acknowledged && acknowledged >= 512 * KIB && offset < source.size,
        "resumed part-way (at {offset}, {acknowledged} acknowledged):\n{second}"
    );
    let completed = second.event("completed").expect("completed");
    assert_eq!(completed["resumed_from"].as_u64(), Some(offset));
    assert_stored(&server, &url, source.size, &source.sha256);
}

#[tokio::test]
async fn terminate_removes_the_upload_on_the_server() {
    let server = TusNodeServer::start();
    let source = random_file(4 * MIB, 5);
    let control = UploadControl::new();
    let options = UploadOptions {
        protocol: Some(Protocol::Tus),
        chunk_size: Some(256 * KIB),
        max_attempts: 3,
        retry_delays_ms: vec![20, 40, 80],
        ..UploadOptions::default()
    };
    let client = Client::new().expect("a client");
    let mut created = None;
    let mut acks = 0;
    let result = client
        .upload(options)
        .to(server.endpoint.as_str())
        .control(&control)
        .on_event(|event| match event {
            Event::Created { upload_url } => created = Some(upload_url.clone()),
            Event::ChunkAcknowledged { .. } => {
                acks += 1;
                if acks == 1 {
                    control.terminate();
                }
            }
            _ => {}
        })
        .file(&source.path)
        .await;
    assert!(
        matches!(result, Err(chunkup::Error::Terminated)),
        "terminated, got {result:?}"
    );
    assert!(acks >= 1);
    let url = created.expect("the upload was created");
    let id = upload_id(&url).to_string();
    let head =
        tokio::task::spawn_blocking(move || http("HEAD", &url, &[("Tus-Resumable", "1.0.0")]))
            .await
            .expect("HEAD");
    assert!(
        head.status == 404 || head.status == 410,
        "the upload is gone after termination: HEAD {} {:?}",
        head.status,
        head.headers
    );
    assert!(
        !server.stored_path(&id).exists(),
        "the file store removed the bytes\nserver log:\n{}",
        server.log()
    );
}
