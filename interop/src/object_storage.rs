//! Object-storage peers: SeaweedFS (a distributed object store with an S3
//! gateway), fake-gcs-server (Google Cloud Storage's JSON API, resumable
//! uploads included) and tusd keeping its uploads in S3. Each runs as a
//! child process on 127.0.0.1, on ports picked for it, with its data in a
//! temporary directory; dropping the handle kills it and removes the data.
//!
//! S3 requests that must be signed (creating a bucket, setting its CORS,
//! presigning URLs) go through boto3 (`interop/peers/s3_tool.py`), the way
//! an application server would; the tests then use the presigned URLs with
//! a plain HTTP client, the way chunkup will.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Peer, free_port, http, http_with_body, peers_dir, peers_python, wait_until_listening};

/// The bucket the object-storage peers start with.
pub const DEFAULT_BUCKET: &str = "uploads";

/// How long SeaweedFS may take to serve its first S3 request (it starts a
/// master, a volume server, a filer and the S3 gateway, which then find
/// each other).
const SEAWEEDFS_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// S3 credentials, as the AWS SDKs read them from the environment.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_REGION` (SigV4 signs it; SeaweedFS accepts any).
    pub region: String,
}

impl S3Credentials {
    /// Fresh random credentials, so that a test cannot pass on a key it did
    /// not configure.
    fn random() -> S3Credentials {
        let mut rng = fastrand::Rng::new();
        let mut text = |n: usize| (0..n).map(|_| rng.alphanumeric()).collect::<String>();
        S3Credentials {
            access_key_id: format!("CHUNKUP{}", text(13).to_ascii_uppercase()),
            secret_access_key: text(40),
            region: "us-east-1".to_string(),
        }
    }

    /// The environment an AWS SDK or the AWS CLI needs to use these
    /// credentials, and nothing else: no shared config or credential files,
    /// no EC2 instance metadata lookups (which would leave loopback).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", "/dev/null".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ]
    }

    /// Sets [`S3Credentials::env`] on `command`.
    pub fn apply(&self, command: &mut Command) {
        for (name, value) in self.env() {
            command.env(name, value);
        }
    }
}

/// One bucket CORS rule (S3's `CORSRule`).
#[derive(Debug, Clone, Default)]
pub struct CorsRule {
    /// `AllowedOrigin`s, e.g. `http://127.0.0.1:8080` or `*`.
    pub allowed_origins: Vec<String>,
    /// `AllowedMethod`s, e.g. `PUT`.
    pub allowed_methods: Vec<String>,
    /// `AllowedHeader`s a preflight may ask for (`*`: any).
    pub allowed_headers: Vec<String>,
    /// `ExposeHeader`s a page may read, e.g. `ETag`.
    pub expose_headers: Vec<String>,
    /// `MaxAgeSeconds` for preflight caching.
    pub max_age_seconds: Option<u32>,
}

impl CorsRule {
    fn to_json(&self) -> serde_json::Value {
        let mut rule = serde_json::json!({
            "AllowedOrigins": self.allowed_origins,
            "AllowedMethods": self.allowed_methods,
            "AllowedHeaders": self.allowed_headers,
            "ExposeHeaders": self.expose_headers,
        });
        if let Some(age) = self.max_age_seconds {
            rule["MaxAgeSeconds"] = age.into();
        }
        rule
    }
}

/// One URL to presign with boto3: a client method of boto3's S3 client
/// (`create_multipart_upload`, `upload_part`, `list_parts`,
/// `complete_multipart_upload`, `abort_multipart_upload`, `put_object`,
/// `get_object`, `head_object`) and its parameters.
#[derive(Debug, Clone)]
pub struct Presign {
    /// The boto3 client method.
    pub method: &'static str,
    /// Its parameters (`Bucket`, `Key`, `UploadId`, `PartNumber`, ...).
    pub params: serde_json::Value,
    /// Seconds the URL stays valid.
    pub expires: u64,
}

impl Presign {
    /// `method` with `params`, valid for an hour.
    pub fn new(method: &'static str, params: serde_json::Value) -> Presign {
        Presign {
            method,
            params,
            expires: 3600,
        }
    }

    /// The same, valid for `seconds`.
    pub fn expires_in(mut self, seconds: u64) -> Presign {
        self.expires = seconds;
        self
    }
}

/// SeaweedFS as `weed server -s3` runs it: master, volume server, filer and
/// S3 gateway in one process, every port on 127.0.0.1, S3 authentication
/// on (one identity with random keys), and one bucket.
#[derive(Debug)]
pub struct SeaweedFs {
    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style addressing:
    /// `{endpoint}/{bucket}/{key}`).
    pub s3_endpoint: String,
    /// The bucket created at start ([`DEFAULT_BUCKET`] unless asked).
    pub bucket: String,
    /// The only identity the gateway accepts.
    pub credentials: S3Credentials,
    /// The filer's HTTP endpoint (the file tree behind the buckets:
    /// `/buckets/{bucket}/...`).
    pub filer_url: String,
    /// Unix sockets `weed server` makes in /tmp whatever it is told
    /// (`/tmp/seaweedfs-{service}-grpc-{port}.sock`), removed on drop.
    grpc_sockets: Vec<PathBuf>,
    peer: Peer,
    /// Data, logs, the S3 identity file and the filer's and gateway's local
    /// sockets; removed after the process dies (declared after `peer`, so
    /// dropped after it).
    dir: tempfile::TempDir,
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.peer.kill();
        for socket in &self.grpc_sockets {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl SeaweedFs {
    /// Starts one with bucket [`DEFAULT_BUCKET`].
    pub fn start() -> SeaweedFs {
        SeaweedFs::start_with_bucket(DEFAULT_BUCKET)
    }

    /// Starts one and creates `bucket` (a valid DNS name: lowercase letters,
    /// digits, dots and dashes).
    pub fn start_with_bucket(bucket: &str) -> SeaweedFs {
        let dir = tempfile::tempdir().expect("a SeaweedFS directory");
        let data = dir.path().join("data");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&data).expect("create the data directory");
        std::fs::create_dir_all(&logs).expect("create the log directory");
        let credentials = S3Credentials::random();
        let identities = dir.path().join("s3.json");
        let config = serde_json::json!({
            "identities": [{
                "name": "chunkup",
                "credentials": [{
                    "accessKey": credentials.access_key_id,
                    "secretKey": credentials.secret_access_key,
                }],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]
        });
        std::fs::write(&identities, config.to_string()).expect("write the S3 identities");

        // Every port is given: the gRPC ones default to port + 10000, which
        // collides between instances.
        let s3_port = free_port();
        let filer_port = free_port();
        let grpc_ports = [
            ("master", free_port()),
            ("volume", free_port()),
            ("filer", free_port()),
            ("s3", free_port()),
        ];
        let mut command = Command::new(super::weed_bin());
        command
            .arg(format!("-logdir={}", logs.display()))
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", free_port()))
            // Small volumes: a test writes megabytes, not gigabytes.
            .arg("-master.volumeSizeLimitMB=64")
            .arg(format!("-volume.port={}", free_port()))
            .arg("-filer")
            .arg(format!("-filer.port={filer_port}"))
            .arg(format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ))
            .arg("-s3")
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!(
                "-s3.localSocket={}",
                dir.path().join("s3.sock").display()
            ))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.config={}", identities.display()));
        for (service, port) in grpc_ports {
            command.arg(format!("-{service}.port.grpc={port}"));
        }
        let grpc_sockets = grpc_ports
            .iter()
            .map(|(service, port)| {
                PathBuf::from(format!("/tmp/seaweedfs-{service}-grpc-{port}.sock"))
            })
            .collect();
        let peer = Peer::spawn("SeaweedFS", command);
        let seaweed = SeaweedFs {
            s3_endpoint: format!("http://127.0.0.1:{s3_port}"),
            bucket: bucket.to_string(),
            credentials,
            filer_url: format!("http://127.0.0.1:{filer_port}"),
            grpc_sockets,
            peer,
            dir,
        };
        seaweed.create_bucket_when_ready();
        seaweed
    }

    /// Waits until the gateway serves S3 (its port opens before the filer
    /// behind it is reachable), then creates the bucket.
    fn create_bucket_when_ready(&self) {
        let port: u16 = self
            .s3_endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the S3 endpoint has a port");
        wait_until_listening(port);
        let deadline = Instant::now() + SEAWEEDFS_READY_TIMEOUT;
        loop {
            match self.try_s3_tool(&["create-bucket", &self.bucket], None) {
                Ok(_) => return,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(300)),
                Err(error) => panic!(
                    "SeaweedFS did not create bucket {} within {SEAWEEDFS_READY_TIMEOUT:?}: \
                     {error}\nSeaweedFS output:\n{}",
                    self.bucket,
                    self.peer.log()
                ),
            }
        }
    }

    /// Sets the bucket's CORS configuration (`PutBucketCors`).
    pub fn set_cors(&self, rules: &[CorsRule]) {
        let rules: Vec<_> = rules.iter().map(CorsRule::to_json).collect();
        let input = serde_json::Value::from(rules).to_string();
        self.s3_tool(&["put-cors", &self.bucket], Some(&input));
    }

    /// Presigns `requests` (SigV4, query string) with boto3.
    pub fn presign(&self, requests: &[Presign]) -> Vec<String> {
        let input: Vec<_> = requests
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.method,
                    "params": r.params,
                    "expires": r.expires,
                })
            })
            .collect();
        let output = self.s3_tool(
            &["presign"],
            Some(&serde_json::Value::from(input).to_string()),
        );
        serde_json::from_str(&output)
            .unwrap_or_else(|e| panic!("s3_tool.py presign printed {output:?}: {e}"))
    }

    /// One presigned URL (see [`SeaweedFs::presign`]).
    pub fn presign_one(&self, request: Presign) -> String {
        self.presign(&[request]).pop().expect("one URL per request")
    }

    /// `GET` of `key` in the bucket, through a presigned URL.
    pub fn get_object(&self, key: &str) -> Vec<u8> {
        let url = self.presign_one(Presign::new(
            "get_object",
            serde_json::json!({ "Bucket": self.bucket, "Key": key }),
        ));
        let response = http("GET", &url, &[]);
        assert_eq!(
            response.status,
            200,
            "GET {key}: {response:?}\nSeaweedFS output:\n{}",
            self.peer.log()
        );
        response.body
    }

    /// A command running `aws` (the AWS CLI of the Python peers' venv) with
    /// these credentials; add the subcommand and `--endpoint-url`.
    pub fn aws_cli(&self) -> Command {
        let python = peers_python();
        let aws = python.with_file_name("aws");
        let mut command = Command::new(&aws);
        self.credentials.apply(&mut command);
        command
    }

    /// The process's output so far (the gateway logs little; the detailed
    /// logs are files under the temporary directory).
    pub fn log(&self) -> String {
        self.peer.log()
    }

    /// Where SeaweedFS keeps its data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn s3_tool(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.try_s3_tool(args, stdin).unwrap_or_else(|error| {
            panic!(
                "s3_tool.py {args:?}: {error}\nSeaweedFS output:\n{}",
                self.peer.log()
            )
        })
    }

    /// Runs `s3_tool.py ENDPOINT args...` with the credentials; its stdout,
    /// or what it printed when it failed.
    fn try_s3_tool(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(peers_python());
        command
            .arg(peers_dir().join("s3_tool.py"))
            .arg(&self.s3_endpoint)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.credentials.apply(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start s3_tool.py: {e}"));
        {
            use std::io::Write;
            let mut input = child.stdin.take().expect("piped stdin");
            if let Some(text) = stdin {
                input
                    .write_all(text.as_bytes())
                    .expect("write s3_tool.py's input");
            }
        }
        let output = child.wait_with_output().expect("run s3_tool.py");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

/// fake-gcs-server: Google Cloud Storage's JSON API over plain HTTP on
/// 127.0.0.1, a filesystem backend in a temporary directory, one bucket.
#[derive(Debug)]
pub struct FakeGcs {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The bucket created at start ([`DEFAULT_BUCKET`]).
    pub bucket: String,
    peer: Peer,
    dir: tempfile::TempDir,
}

impl FakeGcs {
    /// Starts one with bucket [`DEFAULT_BUCKET`]. `cors_headers` are added
    /// to the request headers its CORS preflight allows (`-cors-headers`);
    /// it always allows `Content-Type`, `Content-Encoding`, `Range` and
    /// `Content-Range`.
    pub fn start(cors_headers: &[&str]) -> FakeGcs {
        let dir = tempfile::tempdir().expect("a fake-gcs-server directory");
        let port = free_port();
        let mut command = Command::new(super::fake_gcs_bin());
        command
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string()])
            .args(["-backend", "filesystem", "-filesystem-root"])
            .arg(dir.path())
            // Without it, object media links point at storage.googleapis.com.
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .args(["-log-level", "warn"]);
        if !cors_headers.is_empty() {
            command.args(["-cors-headers", &cors_headers.join(",")]);
        }
        let peer = Peer::spawn("fake-gcs-server", command);
        wait_until_listening(port);
        let gcs = FakeGcs {
            base_url: format!("http://127.0.0.1:{port}"),
            bucket: DEFAULT_BUCKET.to_string(),
            peer,
            dir,
        };
        let body = serde_json::json!({ "name": gcs.bucket }).to_string();
        let created = http_with_body(
            "POST",
            &format!("{}/storage/v1/b", gcs.base_url),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            created.status,
            200,
            "create bucket {}: {created:?}\nfake-gcs-server output:\n{}",
            gcs.bucket,
            gcs.peer.log()
        );
        gcs
    }

    /// Where a resumable upload session of object `name` is initiated:
    /// `POST {base}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=...`.
    pub fn resumable_initiation_url(&self, name: &str) -> String {
        let mut url = self.url(&["upload", "storage", "v1", "b", &self.bucket, "o"]);
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("name", name);
        url.into()
    }

    /// The object's metadata (`GET /storage/v1/b/{bucket}/o/{name}`), or
    /// `None` if it does not exist.
    pub fn object(&self, name: &str) -> Option<serde_json::Value> {
        let url: String = self
            .url(&["storage", "v1", "b", &self.bucket, "o", name])
            .into();
        let response = http("GET", &url, &[]);
        match response.status {
            200 => Some(serde_json::from_slice(&response.body).expect("object metadata is JSON")),
            404 => None,
            _ => panic!("GET {url}: {response:?}"),
        }
    }

    /// The object's bytes (`GET /download/storage/v1/b/{bucket}/o/{name}?alt=media`).
    pub fn object_bytes(&self, name: &str) -> Vec<u8> {
        let mut url = self.url(&["download", "storage", "v1", "b", &self.bucket, "o", name]);
        url.query_pairs_mut().append_pair("alt", "media");
        let url: String = url.into();
        let response = http("GET", &url, &[]);
        assert_eq!(response.status, 200, "GET {url}: {response:?}");
        response.body
    }

    /// `{base}/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = url::Url::parse(&self.base_url).expect("the base URL parses");
        url.path_segments_mut()
            .expect("an http URL has a path")
            .extend(segments);
        url
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }

    /// Its filesystem backend's root.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// tusd keeping uploads in an S3 bucket (`-s3-bucket`, `-s3-endpoint`):
/// each upload is an S3 multipart upload of object `{object id}` plus
/// `{object id}.info` and, between PATCHes, `{object id}.part` for a tail
/// shorter than the minimum part size (5 MiB). The upload id in the URL is
/// `{object id}+{multipart upload id}`. Any number of these can share one
/// bucket; tusd's lock is in memory, per process, so nothing stops two of
/// them writing one upload at once.
#[derive(Debug)]
pub struct TusdS3 {
    /// The creation endpoint, `http://127.0.0.1:PORT/files/`.
    pub endpoint: String,
    peer: Peer,
}

impl TusdS3 {
    /// Starts tusd on a free port over `s3`'s bucket.
    pub fn start(s3: &SeaweedFs) -> TusdS3 {
        let port = free_port();
        let mut command = Command::new(super::tusd_bin());
        command
            .args(["-host", "127.0.0.1", "-port", &port.to_string()])
            .args(["-base-path", "/files/"])
            // With -s3-endpoint tusd uses path-style addressing; the
            // endpoint's own scheme (http) is used as given.
            .args(["-s3-bucket", &s3.bucket, "-s3-endpoint", &s3.s3_endpoint]);
        s3.credentials.apply(&mut command);
        let peer = Peer::spawn("tusd (S3)", command);
        peer.wait_for(|line| line.contains("You can now upload files to").then_some(()));
        wait_until_listening(port);
        TusdS3 {
            endpoint: format!("http://127.0.0.1:{port}/files/"),
            peer,
        }
    }

    /// The same upload URL on this instance: `upload_url` with its origin
    /// replaced by this instance's.
    pub fn url_of(&self, upload_url: &str) -> String {
        let id = upload_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(upload_url);
        format!("{}{id}", self.endpoint)
    }

    /// tusd's output so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

/// Two tusd instances over one bucket, for failover: an upload created on
/// the first can be continued on the second (kill the first by dropping it).
pub fn tusd_pair_over_s3(s3: &SeaweedFs) -> (TusdS3, TusdS3) {
    (TusdS3::start(s3), TusdS3::start(s3))
}

// --- an HTTP proxy that sees, counts and bends requests ------------------------

/// One request that went through an [`HttpProxy`], and what came back.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The method (`PUT`, `POST`, …).
    pub method: String,
    /// The request target: path and query as sent.
    pub target: String,
    /// The request's headers, names lowercased.
    pub request_headers: Vec<(String, String)>,
    /// The answer's status; `None` while none came (held, cut, or the
    /// client went away first).
    pub status: Option<u16>,
    /// The answer's headers, names lowercased.
    pub response_headers: Vec<(String, String)>,
    /// The proxy answered in the server's place ([`ProxyAction::Respond`]).
    pub answered_by_proxy: bool,
}

impl Exchange {
    /// A request header (name in lowercase).
    pub fn request_header(&self, name: &str) -> Option<&str> {
        find_header(&self.request_headers, name)
    }

    /// A response header (name in lowercase).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        find_header(&self.response_headers, name)
    }

    /// The request's query parameter `name` (`Some("")` for a bare `?uploads`).
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The request's `Content-Length` (0 without one).
    pub fn content_length(&self) -> u64 {
        self.request_header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// S3's UploadPart: `PUT …?partNumber=N&uploadId=U`; its part number.
    pub fn s3_part_number(&self) -> Option<u32> {
        if self.method != "PUT" || self.query("uploadId").is_none() {
            return None;
        }
        self.query("partNumber").and_then(|n| n.parse().ok())
    }

    /// S3's ListParts: `GET …?uploadId=U`.
    pub fn is_s3_list_parts(&self) -> bool {
        self.method == "GET" && self.query("uploadId").is_some()
    }

    /// S3's CreateMultipartUpload: `POST …?uploads`.
    pub fn is_s3_create(&self) -> bool {
        self.method == "POST" && self.query("uploads").is_some()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What an [`HttpProxy`] does with one request, decided from its head.
#[derive(Debug, Clone)]
pub enum ProxyAction {
    /// Send it on to the upstream and the answer back.
    Forward,
    /// Read the body, send nothing upstream, and answer this instead.
    Respond {
        /// The status.
        status: u16,
        /// Headers besides `Content-Length` and `Connection`.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Keep the connection open and send nothing anywhere until the client
    /// goes away (a request stuck in flight).
    Hold,
    /// Send the head and this many body bytes upstream, then close both
    /// connections (the link or the server died mid-request).
    CutAfter(u64),
    /// Send the head and this many body bytes upstream, then stop reading
    /// from the client: the request hangs mid-body (a server about to die)
    /// until the client goes away or [`HttpProxy::close_all`].
    StallAfter(u64),
    /// Close the connection at once, sending nothing upstream (a server
    /// that is down).
    Close,
}

/// Decides what happens to each request, seeing it and those before it.
pub type ProxyRule = Box<dyn FnMut(&Exchange, &[Exchange]) -> ProxyAction + Send>;

#[derive(Default)]
struct HttpProxyShared {
    upstream: Mutex<Option<std::net::SocketAddr>>,
    rule: Mutex<Option<ProxyRule>>,
    log: Mutex<Vec<Exchange>>,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of one upstream that can be
/// switched (a load balancer failing over). Every request is logged with
/// the status that came back, so a test can count from the server's side
/// what a client sent (say, which S3 parts); a [`ProxyRule`] can answer in
/// the server's place, hold a request, or cut it mid-body. Each connection
/// carries one request (`Connection: close` is set upstream), which keeps
/// requests apart without parsing bodies.
pub struct HttpProxy {
    addr: std::net::SocketAddr,
    shared: Arc<HttpProxyShared>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpProxy {
    /// A proxy forwarding everything to `upstream` (`http://host:port` or
    /// `host:port`).
    pub fn start(upstream: &str) -> HttpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(HttpProxyShared::default());
        let proxy = HttpProxy { addr, shared };
        proxy.set_upstream(upstream);
        let shared = Arc::clone(&proxy.shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve_one(client, &shared));
            }
        });
        proxy
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends the next requests to `upstream` (`http://host:port` or
    /// `host:port`); requests in flight stay where they are.
    pub fn set_upstream(&self, upstream: &str) {
        let host = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/');
        let host = host.split('/').next().unwrap_or(host);
        let addr = host
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream:?}: {e}"));
        *lock(&self.shared.upstream) = Some(addr);
    }

    /// Decides from now on what happens to each request.
    pub fn set_rule(
        &self,
        rule: impl FnMut(&Exchange, &[Exchange]) -> ProxyAction + Send + 'static,
    ) {
        *lock(&self.shared.rule) = Some(Box::new(rule));
    }

    /// Forwards everything again.
    pub fn clear_rule(&self) {
        *lock(&self.shared.rule) = None;
    }

    /// Every request so far, in the order they arrived.
    pub fn log(&self) -> Vec<Exchange> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Closes every open connection (held ones included).
    pub fn close_all(&self) {
        for stream in std::mem::take(&mut *lock(&self.shared.open)) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.close_all();
        let _ = TcpStream::connect(self.addr);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads up to the end of an HTTP head; returns the head and the bytes
/// read past it.
fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return Some((data, rest));
        }
        if data.len() > 1024 * 1024 {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// The first line and the headers (names lowercased) of an HTTP head.
fn parse_head(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (first, headers)
}

/// The head again, with `Connection: close` in place of any `Connection`.
fn head_with_close(first: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("{first}\r\n");
    for (name, value) in headers {
        if name != "connection" && name != "keep-alive" {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn serve_one(mut client: TcpStream, shared: &HttpProxyShared) {
    let _ = client.set_nodelay(true);
    if let Ok(clone) = client.try_clone() {
        let mut open = lock(&shared.open);
        open.retain(|s| s.peer_addr().is_ok());
        open.push(clone);
    }
    let Some((head, rest)) = read_head(&mut client) else {
        return;
    };
    let (request_line, request_headers) = parse_head(&head);
    let mut words = request_line.split_whitespace();
    let exchange = Exchange {
        method: words.next().unwrap_or_default().to_string(),
        target: words.next().unwrap_or_default().to_string(),
        request_headers: request_headers.clone(),
        status: None,
        response_headers: Vec::new(),
        answered_by_proxy: false,
    };
    let action = {
        let mut rule = lock(&shared.rule);
        let log = lock(&shared.log);
        match rule.as_mut() {
            Some(rule) => rule(&exchange, &log),
            None => ProxyAction::Forward,
        }
    };
    let index = {
        let mut log = lock(&shared.log);
        log.push(exchange.clone());
        log.len() - 1
    };
    let record = |status: u16, headers: Vec<(String, String)>, by_proxy: bool| {
        if let Some(entry) = lock(&shared.log).get_mut(index) {
            entry.status = Some(status);
            entry.response_headers = headers;
            entry.answered_by_proxy = by_proxy;
        }
    };
    match action {
        ProxyAction::Close => {
            let _ = client.shutdown(Shutdown::Both);
        }
        ProxyAction::Forward | ProxyAction::CutAfter(_) | ProxyAction::StallAfter(_) => {
            let Some(upstream) = *lock(&shared.upstream) else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(upstream) else {
                // The upstream is down: the client sees the connection close.
                let _ = client.shutdown(Shutdown::Both);
                return;
            };
            let _ = server.set_nodelay(true);
            if let Ok(clone) = server.try_clone() {
                lock(&shared.open).push(clone);
            }
            if server
                .write_all(&head_with_close(&request_line, &request_headers))
                .is_err()
            {
                return;
            }
            if let ProxyAction::CutAfter(bytes) | ProxyAction::StallAfter(bytes) = action {
                let mut left = bytes;
                let mut body = rest;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = usize::try_from(left.min(body.len() as u64)).unwrap_or(0);
                    let _ = server.write_all(&body[..n]);
                    left -= n as u64;
                    if left == 0 {
                        break;
                    }
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body = buf[..n].to_vec(),
                    }
                }
                if matches!(action, ProxyAction::StallAfter(_)) {
                    // Hang: read nothing more until the client or the
                    // test closes the connection.
                    while !shared.stop.load(Ordering::SeqCst) {
                        match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            if !rest.is_empty() && server.write_all(&rest).is_err() {
                return;
            }
            let (Ok(from_client), Ok(to_server)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            thread::spawn(move || copy_until_closed(from_client, to_server));
            let Some((response_head, response_rest)) = read_head(&mut server) else {
                let _ = client.shutdown(Shutdown::Both);
                return;
            };
            let (status_line, response_headers) = parse_head(&response_head);
            let status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            record(status, response_headers, false);
            if client.write_all(&response_head).is_ok()
                && client.write_all(&response_rest).is_ok()
                && let Ok(to_client) = client.try_clone()
            {
                copy_until_closed(server, to_client);
            }
            let _ = client.shutdown(Shutdown::Both);
        }
        ProxyAction::Respond {
            status,
            headers,
            body,
        } => {
            let length = exchange.content_length();
            let mut received = rest.len() as u64;
            let mut buf = vec![0u8; 64 * 1024];
            while received < length {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received += n as u64,
                }
            }
            let mut out = format!("HTTP/1.1 {status} Proxy\r\n");
            for (name, value) in &headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            let mut response = out.into_bytes();
            response.extend_from_slice(&body);
            let lowered = headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            record(status, lowered, true);
            let _ = client.write_all(&response);
            let _ = client.shutdown(Shutdown::Write);
            // Let the client read the answer before the socket goes.
            let _ = client.read(&mut buf);
        }
        ProxyAction::Hold => {
            let mut buf = vec![0u8; 64 * 1024];
            while !shared.stop.load(Ordering::SeqCst) {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}

fn copy_until_closed(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
