//! Helpers for the end-to-end tests: random source files with known
//! digests, reference servers started with a fault spec, the admin API, and
//! client options with short timings so the suite stays fast.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chunkup::{ChunkSizing, RetryPolicy, UploadEvent as Event, UploadOptions, UploadSettings};
use chunkup_server::{RunningServer, ServerConfig};
use sha2::{Digest, Sha256};

/// One KiB.
pub const KIB: u64 = 1024;
/// One MiB.
pub const MIB: u64 = 1024 * KIB;

/// Size of the blocks random files are written in.
const WRITE_BLOCK: usize = 64 * 1024;

/// A file of random bytes in its own temporary directory (removed on drop).
#[derive(Debug)]
pub struct SourceFile {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Hex sha256 of its contents.
    pub sha256: String,
}

/// Writes `size` bytes from a `fastrand` generator seeded with `seed` to a
/// new file in a new temporary directory, block by block, and returns it
/// with its sha256.
pub fn random_file(size: u64, seed: u64) -> SourceFile {
    let dir = tempfile::tempdir().expect("a temporary directory for the source");
    let path = dir.path().join(format!("source-{seed}-{size}.bin"));
    let sha256 = write_random(&path, size, seed);
    SourceFile {
        dir,
        path,
        size,
        sha256,
    }
}

/// Writes `size` seeded random bytes to `path` (created or truncated) and
/// returns their hex sha256.
pub fn write_random(path: &Path, size: u64, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let file = std::fs::File::create(path).expect("create the source file");
    let mut out = std::io::BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; WRITE_BLOCK];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(WRITE_BLOCK as u64)).expect("a block fits in usize");
        rng.fill(&mut block[..n]);
        out.write_all(&block[..n]).expect("write the source file");
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    out.into_inner()
        .expect("flush the source file")
        .sync_all()
        .expect("sync the source file");
    hex::encode(hasher.finalize())
}

/// Hex sha256 of the first `len` bytes of the file at `path`.
pub fn sha256_of_prefix(path: &Path, len: u64) -> String {
    use std::io::Read;
    let file = std::fs::File::open(path).expect("open for hashing");
    let mut reader = file.take(len);
    let mut hasher = Sha256::new();
    let copied = std::io::copy(&mut reader, &mut hasher).expect("read for hashing");
    assert_eq!(
        copied,
        len,
        "{} is shorter than {len} bytes",
        path.display()
    );
    hex::encode(hasher.finalize())
}

/// Sends `tracing` output of the crates under test to the test's output
/// (shown for failing tests; filter with `RUST_LOG`, default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// `127.0.0.1:0`: any free port on loopback.
pub fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts a reference server on loopback over `dir` with the faults in
/// `faults` (the `FaultSpec` text syntax).
pub async fn start_server(dir: &Path, faults: &str) -> RunningServer {
    start_server_with(ServerConfig {
        dir: dir.to_path_buf(),
        faults: faults.parse().expect("a valid fault spec"),
        admin: chunkup_server::AdminAccess::open(),
        ..ServerConfig::default()
    })
    .await
}

/// Starts a reference server on loopback with `config`.
pub async fn start_server_with(config: ServerConfig) -> RunningServer {
    init_tracing();
    chunkup_server::start(loopback(), config)
        .await
        .expect("the reference server starts")
}

/// The upload id: the last path segment of an upload URL.
pub fn upload_id(upload_url: &str) -> &str {
    upload_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("an upload URL has a path")
}

/// `GET {base_url}/_admin/uploads/{id}` as JSON (the upload's state and the
/// sha256 of its stored bytes).
pub async fn admin_upload(base_url: &str, id: &str) -> serde_json::Value {
    let url = format!("{base_url}/_admin/uploads/{id}");
    let response = reqwest::get(&url).await.expect("the admin API answers");
    let status = response.status();
    let body = response.text().await.expect("the admin API's body");
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).expect("the admin API answers JSON")
}

/// `GET {base_url}/_admin/uploads`: every upload the server's directory holds.
pub async fn admin_uploads(base_url: &str) -> Vec<serde_json::Value> {
    let url = format!("{base_url}/_admin/uploads");
    let response = reqwest::get(&url).await.expect("the admin API answers");
    let status = response.status();
    let body = response.text().await.expect("the admin API's body");
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).expect("the admin API answers a JSON array")
}

/// The stored state of the upload behind `upload_url`, asking the server at
/// `base_url` (which may differ from the URL's host, e.g. behind a proxy).
#[derive(Debug, Clone)]
pub struct Stored {
    /// The admin JSON.
    pub json: serde_json::Value,
}

impl Stored {
    /// Fetches it.
    pub async fn fetch(base_url: &str, upload_url: &str) -> Stored {
        Stored {
            json: admin_upload(base_url, upload_id(upload_url)).await,
        }
    }

    /// Hex sha256 of the stored bytes.
    pub fn sha256(&self) -> &str {
        self.json["sha256"].as_str().expect("a sha256 field")
    }

    /// Bytes held.
    pub fn stored(&self) -> u64 {
        self.json["stored"].as_u64().expect("a stored field")
    }

    /// Every body byte this server instance wrote, duplicates included.
    pub fn bytes_received(&self) -> u64 {
        self.json["bytes_received"]
            .as_u64()
            .expect("a bytes_received field")
    }

    /// Whether the server considers the upload complete.
    pub fn complete(&self) -> bool {
        self.json["complete"].as_bool().expect("a complete field")
    }
}

/// Asserts that the server at `base_url` holds exactly `source` for the
/// upload at `upload_url`, and returns what it reported.
pub async fn assert_stored_exactly(
    base_url: &str,
    upload_url: &str,
    source: &SourceFile,
) -> Stored {
    let stored = Stored::fetch(base_url, upload_url).await;
    assert_eq!(
        stored.sha256(),
        source.sha256,
        "the server's sha256 differs from the source's: {}",
        stored.json
    );
    assert_eq!(stored.stored(), source.size, "{}", stored.json);
    assert!(stored.complete(), "{}", stored.json);
    stored
}

/// A retry policy with short delays for tests.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 20,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        stall_timeout: Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

/// The options of [`fast_retry`]: 20 attempts, short explicit delays, a
/// 2 s stall timeout, progress every 10 ms.
fn fast_options() -> UploadOptions {
    UploadOptions {
        max_attempts: 20,
        retry_delays_ms: vec![20, 40, 80, 160, 320, 500],
        stall_timeout_ms: 2000,
        progress_interval_ms: 10,
        ..UploadOptions::default()
    }
}

/// Fixed chunks of `chunk` bytes with fast retries.
pub fn fixed_options(chunk: u64) -> UploadOptions {
    UploadOptions {
        chunk_size: Some(chunk),
        ..fast_options()
    }
}

/// Adaptive chunks with fast retries; add [`small_adaptive`] with
/// `UploadRequest::tune` for small chunk bounds.
pub fn adaptive_options() -> UploadOptions {
    fast_options()
}

/// Small adaptive chunks (64 KiB to start, 32 KiB to 1 MiB), for
/// `UploadRequest::tune`.
pub fn small_adaptive(settings: &mut UploadSettings) {
    settings.chunking = ChunkSizing::Adaptive {
        initial: 64 * KIB,
        min: 32 * KIB,
        max: MIB,
        target_duration: Duration::from_secs(1),
    };
}

/// A new native client.
pub fn client() -> chunkup::Client {
    chunkup::Client::new().expect("the HTTP client sets up")
}

/// Checks that the `acknowledged` field of the progress events never goes
/// backwards and ends at `size`; returns how many progress events there were.
pub fn assert_progress_monotonic(events: &[Event], size: u64) -> usize {
    let acknowledged: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { progress: p } => Some(p.acknowledged),
            _ => None,
        })
        .collect();
    assert!(!acknowledged.is_empty(), "no progress events at all");
    for pair in acknowledged.windows(2) {
        assert!(
            pair[0] <= pair[1],
            "progress went backwards from {} to {}: {acknowledged:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(
        acknowledged.last().copied(),
        Some(size),
        "the last progress event is not the whole size: {acknowledged:?}"
    );
    for e in events {
        if let Event::Progress { progress: p } = e {
            assert_eq!(p.total, size);
            assert!(p.acknowledged <= p.total && p.sent <= p.total, "{p:?}");
        }
    }
    acknowledged.len()
}

/// The largest offset the server acknowledged in `events`.
pub fn max_acknowledged(events: &[Event]) -> u64 {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChunkAcknowledged { offset } => Some(*offset),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Every `ServerRewound` event in `events`, as `(from, to)`.
pub fn rewinds(events: &[Event]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ServerRewound { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// The URL of a completed upload (every server in these tests names one).
pub trait ReportUrl {
    fn url(&self) -> &str;
}

impl ReportUrl for chunkup::UploadReport {
    fn url(&self) -> &str {
        self.upload_url
            .as_deref()
            .expect("the server named the upload")
    }
}
