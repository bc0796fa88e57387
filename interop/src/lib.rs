//! Helpers for the interop tests: peers nobody here wrote (`@tus/server`,
//! tusd, `tus-js-client`, `tuspy`; the object stores SeaweedFS and
//! fake-gcs-server, tusd over S3, boto3 and the AWS CLI) and chunkup's own
//! binary, each started as a child process on 127.0.0.1 and killed when its
//! handle drops; random source files with known digests; a tiny blocking
//! HTTP client; and a proxy that cuts the connection once after a number
//! of bytes.
//!
//! The peers are installed into `interop/peers` by `scripts/test.sh`
//! (`npm ci`; a venv with `tuspy`, `boto3` and `awscli`; the pinned Go
//! peers tusd, SeaweedFS and fake-gcs-server built into `interop/peers/bin`);
//! the `chunkup` binary is built by `cargo build -p chunkup-cli` before the
//! tests run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

mod object_storage;
pub use object_storage::{
    CorsRule, DEFAULT_BUCKET, Exchange, FakeGcs, HttpProxy, Presign, ProxyAction, ProxyRule,
    S3Credentials, SeaweedFs, TusdS3, tusd_pair_over_s3,
};

/// One KiB.
pub const KIB: u64 = 1024;
/// One MiB.
pub const MIB: u64 = 1024 * KIB;

/// How long a peer may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one client run (an upload of a few MiB) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// --- locations ---------------------------------------------------------------

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("interop/ has a parent")
        .to_path_buf()
}

/// `interop/peers`: the peers' scripts and their installed packages.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// The `chunkup` binary: `$CHUNKUP_BIN`, else `chunkup` in the profile
/// directory this test binary was built into (which follows
/// `CARGO_TARGET_DIR`), else `$CARGO_TARGET_DIR/debug/chunkup`, else
/// `target/debug/chunkup` under the workspace root.
pub fn chunkup_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CHUNKUP_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHUNKUP_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = format!("chunkup{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    // target/<profile>/deps/<test binary> -> target/<profile>/chunkup
    if let Ok(me) = std::env::current_exe()
        && let Some(profile_dir) = me.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join(&exe));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    candidates.push(target.join("debug").join(&exe));
    for candidate in &candidates {
        if candidate.is_file() {
            return candidate.clone();
        }
    }
    panic!(
        "the chunkup binary is not built (looked at {candidates:?}): run \
         `cargo build -p chunkup-cli` first (scripts/test.sh does), or set CHUNKUP_BIN"
    );
}

/// `node`, checked to exist together with the npm peers.
fn node_with_peers() -> (PathBuf, PathBuf) {
    let peers = peers_dir();
    let modules = peers.join("node_modules");
    assert!(
        modules.join("@tus/server").is_dir() && modules.join("tus-js-client").is_dir(),
        "the npm peers are not installed in {}: run scripts/test.sh (or `npm ci` there)",
        peers.display()
    );
    (PathBuf::from("node"), peers)
}

/// The Python of the venv that has `tuspy` (`interop/peers/.venv`), or
/// `$CHUNKUP_PEERS_PYTHON`.
pub fn peers_python() -> PathBuf {
    if let Some(path) = std::env::var_os("CHUNKUP_PEERS_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = peers_dir().join(".venv").join("bin").join("python");
    assert!(
        venv.is_file(),
        "the Python peers are not installed ({} is missing): run scripts/test.sh \
         (or create the venv and `pip install -r interop/peers/requirements.txt`)",
        venv.display()
    );
    venv
}

/// A Go peer's binary: `$<env>` if set, else `interop/peers/bin/<name>`.
/// Panics when it is missing: the Go peers are part of every run, not
/// optional (`scripts/test.sh` builds them, pinned, and fails without them).
fn go_peer(name: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env}={} is not a file", path.display());
        return path;
    }
    let local = peers_dir().join("bin").join(name);
    assert!(
        local.is_file(),
        "{name} is not installed ({} is missing): run scripts/test.sh, which \
         builds the pinned Go peers into interop/peers/bin, or set {env}",
        local.display()
    );
    local
}

/// tusd v2.9.1: `$CHUNKUP_TUSD`, else `interop/peers/bin/tusd`.
pub fn tusd_bin() -> PathBuf {
    go_peer("tusd", "CHUNKUP_TUSD")
}

/// SeaweedFS's `weed`: `$CHUNKUP_WEED`, else `interop/peers/bin/weed`.
pub fn weed_bin() -> PathBuf {
    go_peer("weed", "CHUNKUP_WEED")
}

/// fake-gcs-server v1.56.1: `$CHUNKUP_FAKE_GCS`, else
/// `interop/peers/bin/fake-gcs-server`.
pub fn fake_gcs_bin() -> PathBuf {
    go_peer("fake-gcs-server", "CHUNKUP_FAKE_GCS")
}

// --- source files ------------------------------------------------------------

/// A file of seeded random bytes in its own temporary directory.
#[derive(Debug)]
pub struct SourceFile {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Hex sha256 of its contents.
    pub sha256: String,
}

/// Writes `size` bytes from a generator seeded with `seed`.
pub fn random_file(size: u64, seed: u64) -> SourceFile {
    let dir = tempfile::tempdir().expect("a temporary directory for the source");
    let path = dir.path().join(format!("source-{seed}.bin"));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create source"));
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(block.len() as u64)).expect("block fits");
        rng.fill(&mut block[..n]);
        out.write_all(&block[..n]).expect("write source");
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    out.flush().expect("flush source");
    SourceFile {
        dir,
        path,
        size,
        sha256: hex::encode(hasher.finalize()),
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {} for hashing: {e}", path.display()));
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("read for hashing");
    hex::encode(hasher.finalize())
}

/// The last path segment of an upload URL (the server's upload id).
pub fn upload_id(upload_url: &str) -> &str {
    upload_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(upload_url)
}

// --- child processes -----------------------------------------------------------

/// A child process that is killed (and reaped) when dropped. Its stdin is
/// held open: the Node peers exit when it closes, so they die with the test
/// even if the test process is killed.
#[derive(Debug)]
pub struct Peer {
    name: String,
    child: Child,
    log: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// Starts `command` with piped stdio.
    pub fn spawn(name: &str, mut command: Command) -> Peer {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({command:?}): {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        pump_lines(stdout, tx.clone(), Arc::clone(&log));
        pump_lines(stderr, tx, Arc::clone(&log));
        Peer {
            name: name.to_string(),
            child,
            log,
            lines,
        }
    }

    /// Waits for an output line (stdout or stderr) that `matches` accepts and
    /// returns what it returns.
    pub fn wait_for<T>(&self, mut matches: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = matches(&line) {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "{} did not print what was awaited within {START_TIMEOUT:?}; its output:\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Kills the process (SIGKILL, as a crash would) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pump_lines(
    stream: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
    log: Arc<Mutex<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
            let _ = tx.send(line);
        }
    });
}

/// The first `http://…` URL in `line`, without anything after it.
fn url_in(line: &str) -> Option<String> {
    let start = line.find("http://")?;
    let url = line[start..]
        .split(|c: char| c.is_whitespace() || c == ')' || c == ';' || c == ',')
        .next()?;
    Some(url.to_string())
}

/// `http://host:port` of a URL.
fn origin_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let host = rest.split('/').next().unwrap_or(rest);
    format!("http://{host}")
}

/// What one client run did.
#[derive(Debug)]
pub struct ClientRun {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl ClientRun {
    /// stdout's lines parsed as JSON (lines that are not JSON are skipped).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first NDJSON event named `name` (`chunkup upload --json`).
    pub fn event(&self, name: &str) -> Option<serde_json::Value> {
        self.json_lines()
            .into_iter()
            .find(|e| e["event"].as_str() == Some(name))
    }

    /// What discovery found: the batch CLI's `endpoint_discovered` event
    /// (one per endpoint and run), or a per-file `discovered` event.
    pub fn discovered(&self) -> Option<serde_json::Value> {
        self.event("endpoint_discovered")
            .or_else(|| self.event("discovered"))
    }

    /// The highest offset of the run's `chunk_acknowledged` events (0: none).
    pub fn max_acknowledged(&self) -> u64 {
        self.json_lines()
            .iter()
            .filter(|e| e["event"] == "chunk_acknowledged")
            .filter_map(|e| e["offset"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// The `upload_url` of the run's last JSON line that has one: the
    /// `completed` event of `chunkup`, or the summary line of the peer
    /// scripts. Panics (with the run's output) unless the run succeeded.
    pub fn upload_url(&self) -> String {
        assert!(self.status.success(), "the client failed:\n{self}");
        self.json_lines()
            .iter()
            .rev()
            .find_map(|e| e["upload_url"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no upload_url in the output:\n{self}"))
    }
}

impl std::fmt::Display for ClientRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a client to completion (killing it after a generous timeout).
pub fn run_client(mut command: Command) -> ClientRun {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let read_all = |mut stream: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the client") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} ran longer than {RUN_TIMEOUT:?}\n--- stdout\n{}--- stderr\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    ClientRun {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `chunkup upload --json --chunk-size <chunk> FILE --to ENDPOINT` plus
/// `extra` arguments, with resume state in `state_dir`.
pub fn chunkup_upload(file: &Path, endpoint: &str, state_dir: &Path, extra: &[&str]) -> ClientRun {
    let mut command = Command::new(chunkup_bin());
    command
        .arg("upload")
        .arg(file)
        .args(["--to", endpoint, "--json"])
        .arg("--state-dir")
        .arg(state_dir)
        .args(extra);
    run_client(command)
}

/// `node interop/peers/tus-js-upload.mjs ENDPOINT FILE` plus `extra`.
pub fn tus_js_upload(file: &Path, endpoint: &str, extra: &[&str]) -> ClientRun {
    let (node, peers) = node_with_peers();
    let mut command = Command::new(node);
    command
        .arg(peers.join("tus-js-upload.mjs"))
        .arg(endpoint)
        .arg(file)
        .args(extra);
    run_client(command)
}

/// `python interop/peers/tuspy_upload.py ENDPOINT FILE` plus `extra`.
pub fn tuspy_upload(file: &Path, endpoint: &str, extra: &[&str]) -> ClientRun {
    let mut command = Command::new(peers_python());
    command
        .arg(peers_dir().join("tuspy_upload.py"))
        .arg(endpoint)
        .arg(file)
        .args(extra);
    run_client(command)
}

// --- servers ---------------------------------------------------------------------

/// `@tus/server` + `@tus/file-store` (`interop/peers/tus-server.mjs`).
#[derive(Debug)]
pub struct TusNodeServer {
    /// The creation endpoint, `http://127.0.0.1:PORT/files`.
    pub endpoint: String,
    /// The file store's directory: `<id>` holds the bytes, `<id>.json` the info.
    pub dir: tempfile::TempDir,
    peer: Peer,
}

impl TusNodeServer {
    /// Starts one on a free port with a fresh store.
    pub fn start() -> TusNodeServer {
        let (node, peers) = node_with_peers();
        let dir = tempfile::tempdir().expect("a store directory");
        let mut command = Command::new(node);
        command
            .arg(peers.join("tus-server.mjs"))
            .arg("0")
            .arg(dir.path());
        let peer = Peer::spawn("@tus/server", command);
        let endpoint = peer.wait_for(|line| {
            line.strip_prefix("listening ")
                .and_then(url_in)
                .filter(|u| u.ends_with("/files"))
        });
        TusNodeServer {
            endpoint,
            dir,
            peer,
        }
    }

    /// Where the file store keeps the bytes of upload `id`.
    pub fn stored_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(id)
    }

    /// The file store's `<id>.json` (id, size, offset, metadata, ...).
    pub fn info(&self, id: &str) -> serde_json::Value {
        let path = self.dir.path().join(format!("{id}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("the file store's info is JSON")
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

/// chunkup's reference server as `chunkup serve` runs it.
#[derive(Debug)]
pub struct ChunkupServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The store's directory.
    pub dir: tempfile::TempDir,
    peer: Peer,
}

impl ChunkupServer {
    /// `chunkup serve --addr 127.0.0.1:0 --admin --dir <fresh dir>`.
    pub fn start() -> ChunkupServer {
        let dir = tempfile::tempdir().expect("a store directory");
        let mut command = Command::new(chunkup_bin());
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--admin", "--dir"])
            .arg(dir.path());
        let peer = Peer::spawn("chunkup serve", command);
        let base_url = peer.wait_for(|line| {
            line.contains("listening")
                .then(|| url_in(line))
                .flatten()
                .map(|u| origin_of(&u))
        });
        ChunkupServer {
            base_url,
            dir,
            peer,
        }
    }

    /// The tus creation endpoint.
    pub fn tus_endpoint(&self) -> String {
        format!("{}/tus", self.base_url)
    }

    /// The IETF creation endpoint.
    pub fn ietf_endpoint(&self) -> String {
        format!("{}/ietf", self.base_url)
    }

    /// `GET /_admin/uploads/{id}` (stored, complete, sha256, metadata, ...).
    pub fn admin_upload(&self, id: &str) -> serde_json::Value {
        let url = format!("{}/_admin/uploads/{id}", self.base_url);
        let response = http("GET", &url, &[]);
        assert_eq!(
            response.status,
            200,
            "GET {url}: {response:?}\nserver log:\n{}",
            self.peer.log()
        );
        serde_json::from_slice(&response.body).expect("the admin API answers JSON")
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

/// tusd, the reference tus server (Go).
#[derive(Debug)]
pub struct Tusd {
    /// The creation endpoint, `http://127.0.0.1:PORT/files/`.
    pub endpoint: String,
    /// `-upload-dir`: `<id>` holds the bytes, `<id>.info` the info.
    pub dir: tempfile::TempDir,
    peer: Peer,
}

impl Tusd {
    /// Starts `bin` on a free port with a fresh upload directory;
    /// `experimental` adds `-enable-experimental-protocol` (IETF interop 3-6).
    pub fn start(bin: &Path, experimental: bool) -> Tusd {
        let dir = tempfile::tempdir().expect("an upload directory");
        let port = free_port();
        let mut command = Command::new(bin);
        command
            .args(["-host", "127.0.0.1", "-port", &port.to_string()])
            .args(["-base-path", "/files/", "-upload-dir"])
            .arg(dir.path());
        if experimental {
            command.arg("-enable-experimental-protocol");
        }
        let peer = Peer::spawn("tusd", command);
        // tusd logs "You can now upload files to: http://…/files/".
        peer.wait_for(|line| line.contains("You can now upload files to").then_some(()));
        wait_until_listening(port);
        Tusd {
            endpoint: format!("http://127.0.0.1:{port}/files/"),
            dir,
            peer,
        }
    }

    /// Where tusd keeps the bytes of upload `id`.
    pub fn stored_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(id)
    }

    /// tusd's `<id>.info` (ID, Size, Offset, MetaData, ...).
    pub fn info(&self, id: &str) -> serde_json::Value {
        let path = self.dir.path().join(format!("{id}.info"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("tusd's info is JSON")
    }

    /// tusd's output so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

/// A port that was free a moment ago (for peers that cannot report theirs).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

// --- a tiny HTTP/1.1 client ------------------------------------------------------

/// A response of [`http`].
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

/// One request on a fresh connection (`Connection: close`), no body. Enough
/// for HEAD/GET/OPTIONS checks on loopback without an async runtime.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_with_body(method, url, headers, &[])
}

/// Like [`http`], with a body (sent with `Content-Length` when not empty).
pub fn http_with_body(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    // A server may answer (say 404) without reading the body and close:
    // the rest of the body then fails to send, and the answer is still
    // there to read.
    let sent = stream.write_all(body);
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if let Err(error) = read
        && !raw.windows(4).any(|w| w == b"\r\n\r\n")
    {
        panic!("read the response to {method} {url}: {error} (sending the body: {sent:?})");
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if method == "HEAD" {
        body.clear();
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("0").trim();
        let size = usize::from_str_radix(size_hex, 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

// --- a proxy that cuts the connection once ---------------------------------------

/// A TCP proxy on loopback in front of one upstream. Armed with
/// [`CutProxy::cut_after`], it forwards that many client-to-server bytes
/// (counted over all connections), then closes every connection and
/// refuses new ones (accepts and closes them at once) — the link is down —
/// until [`CutProxy::restore`].
#[derive(Debug)]
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

#[derive(Debug, Default)]
struct ProxyShared {
    /// Client-to-server bytes still allowed (`u64::MAX`: no cut armed).
    budget: AtomicU64,
    down: AtomicBool,
    stop: AtomicBool,
    /// Bytes forwarded client to server.
    forwarded: AtomicU64,
    cuts: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

impl ProxyShared {
    fn close_all(&self) {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl CutProxy {
    /// A proxy to `upstream` (`host:port`), passing everything for now.
    pub fn start(upstream: &str) -> CutProxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream:?}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(ProxyShared {
            budget: AtomicU64::new(u64::MAX),
            ..ProxyShared::default()
        });
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if accept_shared.down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                {
                    let mut open = accept_shared.open.lock().unwrap_or_else(|e| e.into_inner());
                    open.retain(|s| s.peer_addr().is_ok());
                    if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
                        open.push(c3);
                        open.push(s3);
                    }
                }
                let up = Arc::clone(&accept_shared);
                thread::spawn(move || pump(client, server, Some(&up)));
                thread::spawn(move || pump(s2, c2, None));
            }
        });
        CutProxy { addr, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the link after `bytes` more client-to-server bytes.
    pub fn cut_after(&self, bytes: u64) {
        self.shared.budget.store(bytes, Ordering::SeqCst);
    }

    /// Brings the link back up and disarms the cut.
    pub fn restore(&self) {
        self.shared.budget.store(u64::MAX, Ordering::SeqCst);
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// How many times the link was cut.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Client-to-server bytes forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to`; for the client-to-server direction (`budget` is
/// given) it spends the cut budget and brings the link down when it runs out.
fn pump(mut from: TcpStream, mut to: TcpStream, budget: Option<&ProxyShared>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut send = n;
        let mut cut = false;
        if let Some(shared) = budget {
            let left = shared.budget.load(Ordering::SeqCst);
            if left != u64::MAX {
                if (n as u64) >= left {
                    send = usize::try_from(left).unwrap_or(n);
                    cut = true;
                } else {
                    shared.budget.store(left - n as u64, Ordering::SeqCst);
                }
            }
        }
        if send > 0 && to.write_all(&buf[..send]).is_err() {
            break;
        }
        if let Some(shared) = budget {
            shared.forwarded.fetch_add(send as u64, Ordering::SeqCst);
            if cut {
                shared.budget.store(u64::MAX, Ordering::SeqCst);
                shared.down.store(true, Ordering::SeqCst);
                shared.cuts.fetch_add(1, Ordering::SeqCst);
                shared.close_all();
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
