//! Regressions of the session layer (issue #11) against servers nobody here
//! wrote, or that behave like servers the client met in the field:
//!
//! - fault 2: tuspyserver at `/files` answers `OPTIONS` with 405. A named
//!   protocol (`--protocol tus`) must stay tus — remembered as tus, resumed
//!   after `kill -9`, terminated with a tus `DELETE` — and `auto` must learn
//!   tus from the `412` with `Tus-Version` its ranged guess gets;
//! - fault 7: a strict IETF draft -11 server completes an upload sent whole
//!   in its creation request and answers 200 without `Location`;
//! - fault 8: a server that answers 413 before reading a body and then
//!   ignores the connection (rustus 0.5.10) must not cost a stall timeout.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chunkup::{
    Client, MemoryResumeStore, Protocol, ResumeStore, UploadControl, UploadEvent as Event,
    UploadOptions,
};
use chunkup_interop::{
    KIB, MIB, Peer, chunkup_bin, chunkup_upload, free_port, http, peers_dir, peers_python,
    random_file, sha256_file, upload_id,
};

/// A peer server started by one of the Python scripts in `interop/peers`.
struct PyServer {
    _peer: Peer,
    port: u16,
    dir: tempfile::TempDir,
}

impl PyServer {
    fn start(script: &str, args: &[&str]) -> PyServer {
        let dir = tempfile::tempdir().expect("a store dir");
        let port = free_port();
        let mut command = Command::new(peers_python());
        command
            .arg(peers_dir().join(script))
            .args(args)
            .arg(port.to_string())
            .arg(dir.path());
        let peer = Peer::spawn(script, command);
        peer.wait_for(|line| line.starts_with("listening").then_some(()));
        PyServer {
            _peer: peer,
            port,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Where the server keeps the bytes of upload `id`.
    fn stored(&self, id: &str) -> PathBuf {
        self.dir.path().join(id)
    }
}

fn tuspyserver() -> PyServer {
    PyServer::start("tuspy_server.py", &[])
}

fn events<'a>(
    lines: &'a [serde_json::Value],
    name: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    lines.iter().filter(move |e| e["event"] == name)
}

/// Runs `chunkup upload` until the server acknowledged `at_least` bytes,
/// then kills it with SIGKILL; returns its NDJSON lines.
fn upload_then_kill(
    file: &Path,
    endpoint: &str,
    state: &Path,
    extra: &[&str],
    at_least: u64,
) -> Vec<serde_json::Value> {
    let mut child = Command::new(chunkup_bin())
        .arg("upload")
        .arg(file)
        .args(["--to", endpoint, "--json", "--state-dir"])
        .arg(state)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chunkup");
    let stdout = child.stdout.take().expect("piped");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let acknowledged = event["event"] == "chunk_acknowledged"
            && event["offset"].as_u64().is_some_and(|o| o >= at_least);
        seen.push(event);
        if acknowledged {
            child.kill().expect("kill -9");
            break;
        }
    }
    let status = child.wait().expect("reap chunkup");
    assert!(
        !status.success(),
        "chunkup finished before it was killed: {seen:?}"
    );
    seen
}

/// Fault 2: `--protocol tus` against a tus server whose `OPTIONS` is 405.
/// The first run is killed; the rerun continues the same upload (no second
/// upload, nothing orphaned) and the bytes are exact.
#[test]
fn named_tus_survives_an_options_405_and_a_kill() {
    let server = tuspyserver();
    let endpoint = server.url("/files");
    let source = random_file(6 * MIB, 21);
    let state = tempfile::tempdir().expect("state");
    let flags = [
        "--protocol",
        "tus",
        "--chunk-size",
        "256KiB",
        "--bwlimit",
        "2MiB",
    ];
    let first = upload_then_kill(&source.path, &endpoint, state.path(), &flags, MIB);
    let discovered: Vec<_> = events(&first, "endpoint_discovered").collect();
    assert_eq!(discovered.len(), 1, "{first:?}");
    assert_eq!(discovered[0]["protocol"], "tus", "named tus stays tus");
    let created = events(&first, "created")
        .next()
        .and_then(|e| e["upload_url"].as_str())
        .expect("the first run created the upload")
        .to_string();

    let second = chunkup_upload(&source.path, &endpoint, state.path(), &flags[..4]);
    let lines = second.json_lines();
    let resumed = events(&lines, "resumed")
        .next()
        .and_then(|e| e["offset"].as_u64())
        .unwrap_or_else(|| panic!("the rerun resumed:\n{second}"));
    assert!(resumed >= MIB, "resumed at {resumed}");
    assert_eq!(
        events(&lines, "created").count(),
        0,
        "no second upload:\n{second}"
    );
    assert_eq!(second.upload_url(), created);
    let stored = server.stored(upload_id(&created));
    assert_eq!(sha256_file(&stored), source.sha256, "exact bytes");
}

/// Fault 2: `auto` against the same server. `OPTIONS` gives nothing, the
/// ranged guess is refused with 412 + `Tus-Version`, and the upload goes on
/// in tus instead of failing as "refused".
#[test]
fn auto_learns_tus_from_the_412_of_its_guess() {
    let server = tuspyserver();
    let endpoint = server.url("/files");
    let source = random_file(3 * MIB + 7, 22);
    let state = tempfile::tempdir().expect("state");
    let run = chunkup_upload(
        &source.path,
        &endpoint,
        state.path(),
        &["--protocol", "auto"],
    );
    let url = run.upload_url();
    let lines = run.json_lines();
    let protocols: Vec<_> = events(&lines, "discovered")
        .map(|e| {
            (
                e["protocol"].as_str().unwrap_or("").to_string(),
                e["assumed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        protocols.last().map(|p| p.0.as_str()),
        Some("tus"),
        "settled on tus:\n{run}"
    );
    assert_eq!(sha256_file(&server.stored(upload_id(&url))), source.sha256);
}

/// Fault 2 (and 5): terminating a named-tus upload on that server removes
/// it with a tus `DELETE` and forgets the record; stopping keeps both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_removes_and_stop_keeps_on_a_tus_server_without_options() {
    let server = tuspyserver();
    let endpoint = server.url("/files");
    let source = random_file(4 * MIB, 23);
    for terminate in [true, false] {
        let store = std::sync::Arc::new(MemoryResumeStore::default());
        let client = Client::new()
            .expect("client")
            .with_resume_store(SharedStore(store.clone()));
        let control = UploadControl::new();
        let options = UploadOptions {
            protocol: Some(Protocol::Tus),
            chunk_size: Some(256 * KIB),
            ..UploadOptions::default()
        };
        let mut created = None;
        let result = client
            .upload(options)
            .to(endpoint.as_str())
            .control(&control)
            .on_event(|event| match event {
                Event::Created { upload_url } => created = Some(upload_url.clone()),
                Event::ChunkAcknowledged { .. } if terminate => control.terminate(),
                Event::ChunkAcknowledged { .. } => control.stop(),
                _ => {}
            })
            .file(&source.path)
            .await;
        let url = created.expect("created");
        let head = tokio::task::spawn_blocking({
            let url = url.clone();
            move || http("HEAD", &url, &[("Tus-Resumable", "1.0.0")])
        })
        .await
        .expect("HEAD");
        let records = store.list().expect("list");
        if terminate {
            assert!(
                matches!(result, Err(chunkup::Error::Terminated)),
                "{result:?}"
            );
            assert_eq!(head.status, 404, "removed: {head:?}");
            assert!(records.is_empty(), "forgotten: {records:?}");
        } else {
            assert!(matches!(result, Err(chunkup::Error::Stopped)), "{result:?}");
            assert_eq!(head.status, 200, "kept: {head:?}");
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].protocol, chunkup::ResolvedProtocol::Tus);
            assert_eq!(records[0].upload_url, url);
        }
    }
}

/// A store shared with the test, to look at after the upload.
struct SharedStore(std::sync::Arc<MemoryResumeStore>);

impl ResumeStore for SharedStore {
    fn load(&self, key: &str) -> Result<Option<chunkup::ResumeRecord>, chunkup::Error> {
        self.0.load(key)
    }
    fn save(&self, record: &chunkup::ResumeRecord) -> Result<(), chunkup::Error> {
        self.0.save(record)
    }
    fn remove(&self, key: &str) -> Result<(), chunkup::Error> {
        self.0.remove(key)
    }
    fn list(&self) -> Result<Vec<chunkup::ResumeRecord>, chunkup::Error> {
        self.0.list()
    }
}

/// Fault 7: an empty file and a small one sent whole in the creation
/// request are complete when the server answers 200 without `Location`.
#[test]
fn ietf_completed_at_creation_without_location_succeeds() {
    let server = PyServer::start("scripted_servers.py", &["ietf-complete-no-location"]);
    let endpoint = server.url("/files");
    let state = tempfile::tempdir().expect("state");
    for (size, seed) in [(0, 31), (300 * KIB + 3, 32)] {
        let source = random_file(size, seed);
        let run = chunkup_upload(
            &source.path,
            &endpoint,
            state.path(),
            &[
                "--protocol",
                "ietf",
                "--creation-with-upload",
                "--no-resume",
            ],
        );
        assert!(run.status.success(), "{size} bytes:\n{run}");
        let stored: Vec<PathBuf> = std::fs::read_dir(server.dir.path())
            .expect("store")
            .flatten()
            .map(|e| e.path())
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == size))
            .collect();
        assert!(
            stored.iter().any(|p| sha256_file(p) == source.sha256),
            "the server holds the {size} bytes"
        );
    }
}

/// Fault 8: after the early 413 the next request goes over a new
/// connection, so the upload finishes in seconds instead of waiting for the
/// stall timeout on a connection the server ignores.
#[test]
fn an_early_413_does_not_cost_a_stall_timeout() {
    let server = PyServer::start("scripted_servers.py", &["early-413"]);
    let endpoint = server.url("/files");
    let state = tempfile::tempdir().expect("state");
    let source = random_file(5 * MIB, 41);
    let started = Instant::now();
    let run = chunkup_upload(
        &source.path,
        &endpoint,
        state.path(),
        &[
            "--protocol",
            "tus",
            "--chunk-size",
            "1MiB",
            "--stall-timeout",
            "20",
        ],
    );
    let elapsed = started.elapsed();
    let url = run.upload_url();
    assert!(
        elapsed < Duration::from_secs(15),
        "took {elapsed:?}: a request waited on the ignored connection\n{run}"
    );
    assert_eq!(sha256_file(&server.stored(upload_id(&url))), source.sha256);
    let lines = run.json_lines();
    assert!(
        events(&lines, "retrying").any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("too large"))),
        "the chunk was shrunk after the 413:\n{run}"
    );
}
