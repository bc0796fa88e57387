//! The `chunkup` CLI's part of the common API (issue #12), each against a
//! `chunkup serve` process: standard input with deferred length under
//! faults (200 MiB, checked by sha256), continuing a known upload URL, and
//! listing and forgetting remembered uploads.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chunkup_interop::{
    ClientRun, MIB, Peer, chunkup_bin, free_port, http, http_with_body, random_file, run_client,
    upload_id,
};
use sha2::{Digest, Sha256};

/// `chunkup serve` on a port of its own with `faults`.
struct Server {
    base_url: String,
    peer: Peer,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(faults: &str) -> Server {
        let dir = tempfile::tempdir().expect("a store directory");
        let port = free_port();
        let mut command = Command::new(chunkup_bin());
        command
            .args(["serve", "--admin", "--faults", faults])
            .args(["--addr", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(dir.path());
        let peer = Peer::spawn("chunkup serve", command);
        peer.wait_for(|line| line.contains("listening").then_some(()));
        Server {
            base_url: format!("http://127.0.0.1:{port}"),
            peer,
            _dir: dir,
        }
    }

    fn admin_upload(&self, upload_url: &str) -> serde_json::Value {
        let url = format!("{}/_admin/uploads/{}", self.base_url, upload_id(upload_url));
        let response = http("GET", &url, &[]);
        assert_eq!(
            response.status,
            200,
            "GET {url}: {response:?}\n{}",
            self.peer.log()
        );
        serde_json::from_slice(&response.body).expect("the admin API answers JSON")
    }

    fn fault_counts(&self) -> serde_json::Value {
        let response = http("GET", &format!("{}/_admin/faults", self.base_url), &[]);
        serde_json::from_slice::<serde_json::Value>(&response.body).expect("JSON")["counts"].clone()
    }
}

fn chunkup(args: &[&str]) -> ClientRun {
    let mut command = Command::new(chunkup_bin());
    command.args(args);
    run_client(command)
}

#[test]
fn stdin_200_mib_with_faults_is_stored_exactly() {
    const SIZE: u64 = 200 * MIB;
    let server = Server::start("seed=12,reset=0.03,error=0.03,busy=0.02,retry-after=1");
    let state = tempfile::tempdir().expect("a state directory");
    let mut child = Command::new(chunkup_bin())
        .args([
            "upload",
            "-",
            "--json",
            "--file-name",
            "piped.bin",
            "--retries",
            "20",
        ])
        .args(["--to", &format!("{}/tus", server.base_url), "--state-dir"])
        .arg(state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chunkup upload -");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // The producer writes seeded random bytes as fast as the pipe takes
    // them, hashing as it goes: nothing of it is on disk.
    let producer = thread::spawn(move || {
        let mut rng = fastrand::Rng::with_seed(12);
        let mut hasher = Sha256::new();
        let mut block = vec![0u8; 256 * 1024];
        let mut left = SIZE;
        while left > 0 {
            let n = usize::try_from(left.min(block.len() as u64)).expect("fits");
            rng.fill(&mut block[..n]);
            stdin
                .write_all(&block[..n])
                .expect("write to chunkup's stdin");
            hasher.update(&block[..n]);
            left -= n as u64;
        }
        hex::encode(hasher.finalize())
    });
    let started = Instant::now();
    let output = loop {
        if child.try_wait().expect("poll").is_some() {
            break child.wait_with_output().expect("its output");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "chunkup upload - ran for 10 minutes"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let sent_sha = producer.join().expect("the producer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.peer.log()
    );
    let completed: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "completed")
        .expect("a completed event");
    assert_eq!(completed["size"], SIZE, "{completed}");
    let retries = completed["retries"].as_u64().unwrap_or(0);
    let stored = server.admin_upload(completed["upload_url"].as_str().expect("a URL"));
    assert_eq!(stored["complete"], true, "{stored}");
    assert_eq!(stored["total"], SIZE, "{stored}");
    assert_eq!(
        stored["sha256"].as_str(),
        Some(sent_sha.as_str()),
        "{stored}"
    );
    assert_eq!(stored["filename"], "piped.bin", "{stored}");
    let counts = server.fault_counts();
    let injected: u64 = ["resets", "errors", "busy"]
        .iter()
        .filter_map(|k| counts[k].as_u64())
        .sum();
    assert!(injected > 0, "no fault was injected: {counts}");
    println!(
        "200 MiB through stdin in {:.1}s, faults injected {counts}, retries {retries}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn upload_url_continues_an_upload_started_elsewhere() {
    let server = Server::start("none");
    let file = random_file(3 * MIB + 17, 1401);
    let bytes = std::fs::read(&file.path).expect("read the source");
    // Another client created the upload and sent its first MiB.
    let total = file.size.to_string();
    let created = http_with_body(
        "POST",
        &format!("{}/tus", server.base_url),
        &[("Tus-Resumable", "1.0.0"), ("Upload-Length", &total)],
        b"",
    );
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.headers["location"].clone();
    let upload_url = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", server.base_url)
    };
    let patched = http_with_body(
        "PATCH",
        &upload_url,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        &bytes[..MIB as usize],
    );
    assert_eq!(patched.status, 204, "{patched:?}");

    let state = tempfile::tempdir().expect("a state directory");
    let state_dir = state.path().to_str().expect("a UTF-8 path");
    let path = file.path.to_str().expect("a UTF-8 path");
    let run = chunkup(&[
        "upload",
        path,
        "--upload-url",
        &upload_url,
        "--json",
        "--state-dir",
        state_dir,
    ]);
    assert!(run.status.success(), "{run}");
    let resumed = run.event("resumed").expect("a resumed event");
    assert_eq!(resumed["offset"], MIB, "{resumed}");
    assert_eq!(run.upload_url(), upload_url);
    let stored = server.admin_upload(&upload_url);
    assert_eq!(
        stored["sha256"].as_str(),
        Some(file.sha256.as_str()),
        "{stored}"
    );

    // Bad use is refused before anything is sent.
    let refused = chunkup(&["upload", "-", "--upload-url", &upload_url]);
    assert_eq!(refused.status.code(), Some(2), "{refused}");
}

/// Starts an upload of `file` that is killed after `after`, throttled so
/// that it is unfinished then.
fn interrupted_upload(file: &Path, endpoint: &str, state: &Path, after: Duration) {
    let mut child = Command::new(chunkup_bin())
        .arg("upload")
        .arg(file)
        .args([
            "--to",
            endpoint,
            "--bwlimit",
            "1MiB",
            "--chunk-size",
            "256KiB",
        ])
        .args(["--metadata", "project=apollo", "--state-dir"])
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chunkup upload");
    thread::sleep(after);
    child.kill().expect("kill the upload");
    child.wait().expect("reap it");
}

#[test]
fn remembered_uploads_are_listed_and_forgotten() {
    let server = Server::start("none");
    let endpoint = format!("{}/tus", server.base_url);
    let state = tempfile::tempdir().expect("a state directory");
    let state_dir = state.path().to_str().expect("a UTF-8 path");
    let file = random_file(8 * MIB, 1402);
    interrupted_upload(
        &file.path,
        &endpoint,
        state.path(),
        Duration::from_millis(2500),
    );

    let listed = chunkup(&["uploads", "list", "--json", "--state-dir", state_dir]);
    assert!(listed.status.success(), "{listed}");
    let uploads = listed.json_lines();
    assert_eq!(uploads.len(), 1, "{listed}");
    let upload = &uploads[0];
    let file_name = file
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a name");
    assert_eq!(upload["file_name"], file_name, "{upload}");
    assert_eq!(upload["size"], 8 * MIB, "{upload}");
    assert_eq!(upload["endpoint"], endpoint.as_str(), "{upload}");
    assert_eq!(upload["protocol"], "tus", "{upload}");
    assert_eq!(upload["metadata"]["project"], "apollo", "{upload}");
    let acknowledged = upload["acknowledged"].as_u64().expect("acknowledged bytes");
    assert!(acknowledged > 0 && acknowledged < 8 * MIB, "{upload}");
    let upload_url = upload["upload_url"].as_str().expect("a URL").to_string();
    let stored = server.admin_upload(&upload_url);
    assert!(
        stored["stored"].as_u64().expect("stored") >= acknowledged,
        "{stored}"
    );
    assert!(
        upload["created_ms"].as_i64() <= upload["updated_ms"].as_i64(),
        "{upload}"
    );
    let key = upload["key"].as_str().expect("a key").to_string();

    let table = chunkup(&["uploads", "list", "--state-dir", state_dir]);
    assert!(
        table.stdout.contains(file_name) && table.stdout.contains(&upload_url),
        "{table}"
    );

    // Forgetting an unknown key fails; a key prefix forgets the upload.
    let unknown = chunkup(&["uploads", "forget", "zzzz", "--state-dir", state_dir]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown}");
    let forgot = chunkup(&["uploads", "forget", &key[..10], "--state-dir", state_dir]);
    assert!(forgot.status.success(), "{forgot}");
    let listed = chunkup(&["uploads", "list", "--json", "--state-dir", state_dir]);
    assert!(listed.json_lines().is_empty(), "{listed}");

    // The next upload of the file starts a new upload, not the forgotten one.
    let path = file.path.to_str().expect("a UTF-8 path");
    let run = chunkup(&[
        "upload",
        path,
        "--to",
        &endpoint,
        "--json",
        "--state-dir",
        state_dir,
    ]);
    assert!(run.status.success(), "{run}");
    assert!(run.event("resumed").is_none(), "{run}");
    assert_ne!(run.upload_url(), upload_url);
}
