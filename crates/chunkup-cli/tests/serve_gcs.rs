//! Google-style resumable sessions end to end: the chunkup client
//! (`Protocol::Gcs`) uploads through injected faults to a real
//! `chunkup serve` process on 127.0.0.1, and the bytes the server stored
//! are compared with the source, byte for byte.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chunkup::core::Protocol;
use chunkup::{ChunkSizing, Event, RetryPolicy, UploadOptions};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_chunkup");
const KIB: u64 = 1024;
const UNIT: u64 = 256 * KIB;

/// A `chunkup serve --admin` process, killed on drop.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    store: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(store: &Path, faults: &str) -> Serve {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--admin",
                "--faults",
                faults,
            ])
            .arg("--dir")
            .arg(store)
            .env_remove("CHUNKUP_ADMIN_TOKEN")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            if let Some((_, rest)) = line.split_once("listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        Serve {
            child,
            base,
            store: store.to_owned(),
        }
    }

    fn gcs_endpoint(&self) -> String {
        format!("{}/gcs", self.base)
    }

    /// The bytes the server stored for the upload at `url`, read from its
    /// store directory.
    fn stored_bytes(&self, url: &str) -> Vec<u8> {
        std::fs::read(self.store.join(format!("{}.bin", id_of(url)))).unwrap()
    }

    /// The admin API's view of the upload at `url`.
    async fn admin(&self, url: &str) -> serde_json::Value {
        let admin = format!("{}/_admin/uploads/{}", self.base, id_of(url));
        let reply = reqwest::get(&admin).await.unwrap();
        assert_eq!(reply.status(), 200);
        reply.json().await.unwrap()
    }
}

fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A file of `size` random bytes; returns its path and contents.
fn random_file(dir: &Path, size: u64, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bytes: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
    let path = dir.join(format!("source-{seed}.bin"));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    (path, bytes)
}

fn options(chunking: ChunkSizing) -> UploadOptions {
    UploadOptions {
        protocol: Protocol::Gcs,
        chunking,
        retry: RetryPolicy {
            max_attempts: 30,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            stall_timeout: Duration::from_secs(2),
            ..RetryPolicy::default()
        },
        progress_interval: Duration::from_millis(10),
        content_type: Some("video/mp4".into()),
        ..UploadOptions::default()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the stored file and the admin API's view against `source`.
async fn assert_stored_exactly(serve: &Serve, url: &str, source: &[u8]) {
    let stored = serve.stored_bytes(url);
    assert_eq!(stored.len(), source.len(), "stored length");
    assert!(stored == source, "the stored bytes differ from the source");
    let info = serve.admin(url).await;
    assert_eq!(info["complete"], true, "{info}");
    assert_eq!(info["protocol"], "gcs", "{info}");
    assert_eq!(info["sha256"], sha256_hex(source), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_through_faults_are_stored_exactly() {
    let store = tempfile::tempdir().unwrap();
    let sources = tempfile::tempdir().unwrap();
    let client = chunkup::Client::new().unwrap();
    let sizes = [3 * 1024 * KIB + 17, 12 * UNIT, 1000];
    for seed in 1..=3u64 {
        let faults = format!(
            "seed={seed},reset=0.15,error=0.1,busy=0.05,retry-after=1,stall=0.05,\
             stall-secs=0.3,status-error=0.1"
        );
        let serve = Serve::start(store.path(), &faults);
        for (i, size) in sizes.into_iter().enumerate() {
            let (path, source) = random_file(sources.path(), size, seed * 10 + i as u64);
            // Fixed chunks that are not a multiple of 256 KiB: the sizer
            // must round them to the session's unit.
            let chunking = match i {
                0 => ChunkSizing::Fixed(300 * KIB),
                _ => ChunkSizing::Fixed(UNIT),
            };
            let mut acknowledged = Vec::new();
            let report = client
                .upload_file(&path, &serve.gcs_endpoint(), options(chunking), |e| {
                    if let Event::ChunkAcknowledged { offset } = e {
                        acknowledged.push(*offset);
                    }
                })
                .await
                .unwrap_or_else(|e| panic!("seed {seed}, {size} bytes: {e}"));
            let url = report.upload_url.clone().unwrap();
            assert!(url.contains("/gcs/"), "{url}");
            assert_stored_exactly(&serve, &url, &source).await;
            // The server holds whole units until the end (it answers 400 to a
            // chunk that breaks the rule, which would fail the upload).
            assert_eq!(acknowledged.last(), Some(&size), "{acknowledged:?}");
            for offset in &acknowledged {
                assert!(offset % UNIT == 0 || *offset == size, "{acknowledged:?}");
            }
            if size > UNIT {
                assert!(
                    !report.retries.is_empty(),
                    "seed {seed}, {size} bytes: no fault met"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_app_started_is_continued() {
    let store = tempfile::tempdir().unwrap();
    let sources = tempfile::tempdir().unwrap();
    let serve = Serve::start(store.path(), "none");
    let size = 6 * UNIT + 5;
    let (path, source) = random_file(sources.path(), size, 77);

    // The application's backend initiates the session and sends 2 units.
    let http = reqwest::Client::new();
    let reply = http
        .post(serve.gcs_endpoint())
        .header("X-Upload-Content-Length", size.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let session = reply.headers()["location"].to_str().unwrap().to_owned();
    let reply = http
        .put(&session)
        .header("Content-Range", format!("bytes 0-{}/{size}", 2 * UNIT - 1))
        .body(source[..2 * UNIT as usize].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 308);
    // The first chunk the client sends resets after 300000 bytes: whole
    // units are kept, and the client continues from what the status query
    // reports.
    let faults = format!("{}/_admin/faults", serve.base);
    let reply = http
        .put(&faults)
        .body("script=0:reset@300000")
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());

    let mut events = Vec::new();
    let report = chunkup::Client::new()
        .unwrap()
        .upload_file(
            &path,
            &serve.gcs_endpoint(),
            UploadOptions {
                upload_url: Some(session.clone()),
                ..options(ChunkSizing::Fixed(4 * UNIT))
            },
            |e| events.push(e.clone()),
        )
        .await
        .unwrap();
    assert_eq!(report.upload_url.as_deref(), Some(session.as_str()));
    assert_eq!(report.resumed_from, Some(2 * UNIT));
    assert_eq!(report.retries.len(), 1, "{:?}", report.retries);
    assert_stored_exactly(&serve, &session, &source).await;
    // No byte was stored twice: the client continued exactly where the
    // server's Range said.
    let info = serve.admin(&session).await;
    assert_eq!(info["bytes_received"], size, "{info}");
}
