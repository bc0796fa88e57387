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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
