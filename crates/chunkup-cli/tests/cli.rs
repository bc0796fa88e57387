//! The `chunkup` binary end to end: exit codes, the demo, and resuming after
//! `kill -9`. Servers run in this process on 127.0.0.1; the CLI runs as a
//! real child process.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chunkup_server::{RunningServer, ServerConfig};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_chunkup");
const LOOPBACK: &str = "127.0.0.1:0";

fn loopback() -> SocketAddr {
    LOOPBACK.parse().unwrap()
}

fn write_file(path: &Path, size: usize, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut data = vec![0u8; size];
    rng.fill(&mut data);
    std::fs::write(path, &data).unwrap();
    hex::encode(Sha256::digest(&data))
}

async fn server(dir: &Path, faults: &str, max_size: u64) -> RunningServer {
    let config = ServerConfig {
        dir: dir.to_path_buf(),
        faults: faults.parse().unwrap(),
        max_size,
        admin: chunkup_server::AdminAccess::open(),
        ..ServerConfig::default()
    };
    chunkup_server::start(loopback(), config).await.unwrap()
}

async fn admin(server: &RunningServer, upload_url: &str) -> serde_json::Value {
    let id = upload_url.rsplit('/').next().unwrap();
    let url = format!("{}/_admin/uploads/{id}", server.base_url());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_bad_url_and_refusal_exit_non_zero_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("store"), "none", 1000).await;
    let endpoint = server.ranged_endpoint();
    let state = dir.path().join("state");

    let missing = Command::new(BIN)
        .args([
            "upload",
            "/nonexistent/file.bin",
            "--to",
            &endpoint,
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/file.bin"),
        "{stderr}"
    );

    let file = dir.path().join("f.bin");
    write_file(&file, 5000, 1);
    for bad in ["not a url", "ftp://127.0.0.1/x"] {
        let output = Command::new(BIN)
            .args(["upload"])
            .arg(&file)
            .args(["--to", bad])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid URL"), "{stderr}");
    }

    // 5000 bytes is over the server's 1000-byte limit.
    let refused = Command::new(BIN)
        .args(["upload"])
        .arg(&file)
        .args(["--to", &endpoint, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("413"),
        "{stderr}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_files_upload_exactly_with_json_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        &dir.path().join("store"),
        "seed=4,reset=0.2,error=0.1",
        u64::MAX,
    )
    .await;
    let mut expected = Vec::new();
    let mut args = vec!["upload".to_string()];
    for (i, size) in [0usize, 1, 300_000, 2_000_000].iter().enumerate() {
        let file = dir.path().join(format!("file{i}.bin"));
        expected.push(write_file(&file, *size, i as u64));
        args.push(file.display().to_string());
    }
    let output = Command::new(BIN)
        .args(&args)
        .args([
            "--to",
            &server.ranged_endpoint(),
            "--chunk-size",
            "64KiB",
            "--json",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = json_lines(&output.stdout);
    let completed: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "completed")
        .collect();
    assert_eq!(completed.len(), 4);
    // Files go in parallel: match events to files by name.
    for event in &completed {
        let name = event["file"].as_str().unwrap();
        let index: usize = name["file".len()..name.len() - ".bin".len()]
            .parse()
            .unwrap();
        let sha = &expected[index];
        let info = admin(&server, event["upload_url"].as_str().unwrap()).await;
        assert_eq!(info["sha256"].as_str().unwrap(), sha);
        assert_eq!(info["complete"], true);
    }
    assert!(events.iter().any(|e| e["event"] == "progress"));
    server.shutdown().await;
}

#[test]
fn demo_verifies_the_sha256() {
    let output = Command::new(BIN)
        .args([
            "demo",
            "--size",
            "8MiB",
            "--seed",
            "3",
            "--faults",
            "seed={seed},reset=0.1,error=0.1,busy=0.05,retry-after=1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = json_lines(&output.stdout);
    let verified = events.iter().find(|e| e["event"] == "verified").unwrap();
    assert_eq!(verified["match"], true);
    assert_eq!(verified["source_sha256"], verified["stored_sha256"]);
    assert_eq!(verified["holes"], 1, "the failover hole was met");
}

/// Start an upload, `kill -9` it mid-chunk, run the same command again: it
/// resumes from the server's offset, the server receives no chunk twice
/// (beyond the one cut short), and the stored file is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_rerun_resumes() {
    const CHUNK: u64 = 256 * 1024;
    const SIZE: usize = 16 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    // Chunk request 20 stalls after 100 kB: the client is mid-chunk when killed.
    let server = server(
        &dir.path().join("store"),
        "script=20:stall@100000,stall-secs=120",
        u64::MAX,
    )
    .await;
    let file = dir.path().join("big.bin");
    let sha = write_file(&file, SIZE, 9);
    let state = dir.path().join("state");
    let command = || {
        let mut command = Command::new(BIN);
        command
            .arg("upload")
            .arg(&file)
            .args([
                "--to",
                &server.ranged_endpoint(),
                "--chunk-size",
                "256KiB",
                "--json",
                "--state-dir",
            ])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    let mut first = command().spawn().unwrap();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let mut upload_url = String::new();
    let mut acknowledged = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged < 20 * CHUNK {
        assert!(Instant::now() < deadline, "the first run made no progress");
        let line = lines.next().unwrap().unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["event"] == "created" {
            upload_url = event["upload_url"].as_str().unwrap().to_string();
        }
        if event["event"] == "chunk_acknowledged" {
            acknowledged = event["offset"].as_u64().unwrap();
        }
    }
    // Let the stalled chunk's first 100 kB arrive, then kill without warning.
    std::thread::sleep(Duration::from_millis(300));
    first.kill().unwrap();
    assert!(!first.wait().unwrap().success());
    let before = admin(&server, &upload_url).await;
    let stored_before = before["stored"].as_u64().unwrap();
    assert!(stored_before < SIZE as u64, "killed mid-way");
    assert_eq!(
        stored_before,
        20 * CHUNK + 100_000,
        "the cut chunk's bytes were kept"
    );

    let status = Command::new(BIN)
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(listing.contains(&upload_url), "{listing}");

    let second = command().output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let events = json_lines(&second.stdout);
    assert!(
        events.iter().all(|e| e["event"] != "created"),
        "no second upload"
    );
    let resumed = events.iter().find(|e| e["event"] == "resumed").unwrap();
    assert_eq!(resumed["offset"].as_u64().unwrap(), stored_before);

    let after = admin(&server, &upload_url).await;
    assert_eq!(after["sha256"].as_str().unwrap(), sha);
    let received = after["bytes_received"].as_u64().unwrap();
    assert!(
        received <= SIZE as u64 + CHUNK,
        "received {received} bytes for a {SIZE}-byte file: more than one chunk twice"
    );
    let status = Command::new(BIN)
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("no unfinished uploads"));
    std::io::stderr().flush().unwrap();
    server.crash();
}
