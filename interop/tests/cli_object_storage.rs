//! The `chunkup` CLI straight to object storage, happy paths: S3 multipart
//! to SeaweedFS (SigV4 presigned from the AWS environment, parts in
//! parallel) and a Google-style resumable session to fake-gcs-server
//! (started by the initiation request). The stored bytes are read back and
//! compared by sha256.

use std::path::Path;
use std::process::Command;

use chunkup_interop::{
    ClientRun, FakeGcs, MIB, Presign, SeaweedFs, chunkup_bin, http_with_body, random_file,
    run_client,
};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `chunkup upload FILE --json --state-dir DIR` plus `args`, with the
/// environment `env` (and no AWS configuration from this machine).
fn chunkup(file: &Path, state: &Path, args: &[&str], env: &[(&str, String)]) -> ClientRun {
    let mut command = Command::new(chunkup_bin());
    command
        .arg("upload")
        .arg(file)
        .args(["--json", "--state-dir"])
        .arg(state)
        .args(args)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (name, value) in env {
        command.env(name, value);
    }
    run_client(command)
}

#[test]
fn cli_s3_multipart_to_seaweedfs_with_parallel_parts() {
    let s3 = SeaweedFs::start();
    let file = random_file(23 * MIB, 1301);
    let state = tempfile::tempdir().expect("a state directory");
    let target = format!("{}/{}/cli/big.bin", s3.s3_endpoint, s3.bucket);
    let env = s3_env(&s3);
    let run = chunkup(
        &file.path,
        state.path(),
        &[
            "--protocol",
            "s3",
            "--to",
            &target,
            "--parts",
            "3",
            "--chunk-size",
            "5MiB",
        ],
        &env,
    );
    assert!(run.status.success(), "{run:?}\nSeaweedFS:\n{}", s3.log());
    let completed = run.event("completed").expect("a completed event");
    assert_eq!(completed["size"], 23 * MIB, "{completed}");
    let stored = s3.get_object("cli/big.bin");
    assert_eq!(stored.len() as u64, 23 * MIB);
    assert_eq!(sha256(&stored), file.sha256);

    // Without credentials the CLI refuses before sending anything.
    let refused = chunkup(
        &file.path,
        state.path(),
        &["--protocol", "s3", "--to", &target],
        &[("AWS_ACCESS_KEY_ID", String::new())],
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("s3"), "{refused:?}");
}

/// The S3 environment of `s3` for the CLI.
fn s3_env(s3: &SeaweedFs) -> Vec<(&'static str, String)> {
    s3.credentials
        .env()
        .into_iter()
        .filter(|(name, _)| !name.ends_with("_FILE"))
        .collect()
}

#[test]
fn cli_s3_continues_a_known_upload_id_from_its_listed_parts() {
    let s3 = SeaweedFs::start();
    let file = random_file(11 * MIB + 7, 1303);
    let bytes = std::fs::read(&file.path).expect("read the source");
    let key = "cli/known.bin";
    let params = serde_json::json!({ "Bucket": s3.bucket, "Key": key });
    // The application's backend created the upload and sent its first part.
    let create = s3.presign_one(Presign::new("create_multipart_upload", params.clone()));
    let created = http_with_body("POST", &create, &[], b"");
    assert_eq!(created.status, 200, "{created:?}");
    let created = String::from_utf8_lossy(&created.body).to_string();
    let upload_id = created
        .split("<UploadId>")
        .nth(1)
        .and_then(|rest| rest.split("</UploadId>").next())
        .unwrap_or_else(|| panic!("no UploadId in {created}"))
        .to_string();
    let mut part = params;
    part["UploadId"] = upload_id.clone().into();
    part["PartNumber"] = 1.into();
    let part_url = s3.presign_one(Presign::new("upload_part", part));
    let sent = http_with_body("PUT", &part_url, &[], &bytes[..(5 * MIB) as usize]);
    assert_eq!(sent.status, 200, "{sent:?}");

    let state = tempfile::tempdir().expect("a state directory");
    let target = format!("{}/{}/{key}", s3.s3_endpoint, s3.bucket);
    let run = chunkup(
        &file.path,
        state.path(),
        &[
            "--protocol",
            "s3",
            "--to",
            &target,
            "--upload-id",
            &upload_id,
            "--chunk-size",
            "5MiB",
        ],
        &s3_env(&s3),
    );
    assert!(run.status.success(), "{run:?}\nSeaweedFS:\n{}", s3.log());
    // Part 1 was listed (ListParts) and not sent again.
    let completed = run.event("completed").expect("a completed event");
    assert_eq!(completed["resumed_from"], 5 * MIB, "{completed}");
    let stored = s3.get_object(key);
    assert_eq!(sha256(&stored), file.sha256);
}

#[test]
fn cli_gcs_session_started_by_the_initiation_request() {
    let gcs = FakeGcs::start(&[]);
    let file = random_file(3 * MIB + 12345, 1302);
    let state = tempfile::tempdir().expect("a state directory");
    let initiation = gcs.resumable_initiation_url("cli/session.bin");
    let run = chunkup(
        &file.path,
        state.path(),
        &[
            "--protocol",
            "gcs",
            "--to",
            &initiation,
            "--chunk-size",
            "1MiB",
        ],
        &[],
    );
    assert!(
        run.status.success(),
        "{run:?}\nfake-gcs-server:\n{}",
        gcs.log()
    );
    let stored = gcs.object_bytes("cli/session.bin");
    assert_eq!(stored.len() as u64, 3 * MIB + 12345);
    assert_eq!(sha256(&stored), file.sha256);

    // Continuing a given session URI (`--upload-url`) starts with a status
    // query, which fake-gcs-server answers by committing what it holds
    // (docs/PROTOCOLS.md, "Deviations from GCS"): that path is not
    // testable against this peer.
}
