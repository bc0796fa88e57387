//! The other way round: tus clients nobody here wrote (`tus-js-client` in
//! Node, `tuspy` in Python) upload to chunkup's reference server as
//! `chunkup serve` runs it. The server's admin API reports the sha256 of
//! what it stored.

use chunkup_interop::{
    ChunkupServer, ClientRun, KIB, MIB, random_file, tus_js_upload, tuspy_upload, upload_id,
};

/// Asserts the reference server holds exactly the source's bytes for the
/// upload the client reported, as a complete upload of `protocol`.
fn assert_stored(
    server: &ChunkupServer,
    run: &ClientRun,
    source: &chunkup_interop::SourceFile,
    protocol: &str,
) {
    let url = run.upload_url();
    let info = server.admin_upload(upload_id(&url));
    assert_eq!(info["protocol"], protocol, "{info}");
    assert_eq!(info["complete"], true, "{info}\n{run}");
    assert_eq!(info["stored"].as_u64(), Some(source.size), "{info}");
    assert_eq!(info["sha256"], source.sha256.as_str(), "{info}");
}

#[test]
fn tus_js_client_one_patch() {
    let server = ChunkupServer::start();
    let source = random_file(3 * MIB + 7, 11);
    // tus-js-client's default chunkSize (Infinity): the whole file in one PATCH.
    let run = tus_js_upload(
        &source.path,
        &server.tus_endpoint(),
        &["--metadata", "owner=ana"],
    );
    assert_stored(&server, &run, &source, "tus");
    let info = server.admin_upload(upload_id(&run.upload_url()));
    assert_eq!(info["metadata"]["owner"], "ana", "{info}");
}

#[test]
fn tus_js_client_chunked() {
    let server = ChunkupServer::start();
    let source = random_file(3 * MIB + 7, 12);
    let chunk = (512 * KIB).to_string();
    let run = tus_js_upload(
        &source.path,
        &server.tus_endpoint(),
        &["--chunk-size", &chunk],
    );
    assert_stored(&server, &run, &source, "tus");
}

#[test]
fn tus_js_client_ietf_draft_05_one_request() {
    // tus-js-client's `ietf-draft-05` mode speaks interop version 6; with its
    // default chunkSize the one PATCH carries `Upload-Complete: ?1`.
    let server = ChunkupServer::start();
    let source = random_file(2 * MIB + 5, 13);
    let run = tus_js_upload(
        &source.path,
        &server.ietf_endpoint(),
        &["--protocol", "ietf-draft-05"],
    );
    assert_stored(&server, &run, &source, "ietf");
}

#[test]
fn tus_js_client_ietf_draft_05_chunked() {
    // tus-js-client 4.3.1 with a Node file stream and a finite chunkSize
    // sends `Upload-Complete: ?0` on every PATCH, the last one included (its
    // FileSource reports `done` only for a slice spanning the whole file).
    // Like tusd, our server completes an interop-6 upload when its offset
    // reaches Upload-Length.
    let server = ChunkupServer::start();
    let source = random_file(2 * MIB + 5, 16);
    let chunk = (768 * KIB).to_string();
    let run = tus_js_upload(
        &source.path,
        &server.ietf_endpoint(),
        &["--protocol", "ietf-draft-05", "--chunk-size", &chunk],
    );
    assert_stored(&server, &run, &source, "ietf");
}

#[test]
fn tuspy_one_patch() {
    let server = ChunkupServer::start();
    let source = random_file(3 * MIB + 7, 14);
    // tuspy's default chunk_size (sys.maxsize): the whole file in one PATCH.
    let run = tuspy_upload(
        &source.path,
        &server.tus_endpoint(),
        &["--metadata", "owner=ana"],
    );
    assert_stored(&server, &run, &source, "tus");
    let info = server.admin_upload(upload_id(&run.upload_url()));
    assert_eq!(info["metadata"]["owner"], "ana", "{info}");
}

#[test]
fn tuspy_chunked() {
    let server = ChunkupServer::start();
    let source = random_file(3 * MIB + 7, 15);
    let chunk = (512 * KIB).to_string();
    let run = tuspy_upload(
        &source.path,
        &server.tus_endpoint(),
        &["--chunk-size", &chunk],
    );
    assert_stored(&server, &run, &source, "tus");
}
