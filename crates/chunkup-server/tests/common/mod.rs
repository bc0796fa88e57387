//! A tiny raw HTTP/1.1 client for the server tests (one request per
//! connection, `Connection: close`).
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use chunkup_server::{AdminAccess, FaultSpec, RunningServer, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn lkb(&self) -> Option<i64> {
        self.header("x-last-known-byte")
            .map(|v| v.parse().expect("numeric LKB"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends one request and reads the whole response. Writes and reads at the
/// same time, so a reply sent before the body was read is still seen.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    let stream = TcpStream::connect(addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let bytes = raw_request(method, path, headers, body);
    let writer = async move { wr.write_all(&bytes).await.map(|_| wr) };
    let reader = async {
        let mut buf = Vec::new();
        rd.read_to_end(&mut buf).await.map(|_| buf)
    };
    let (written, read) = tokio::join!(writer, reader);
    match read {
        Ok(buf) if !buf.is_empty() => parse_response(&buf),
        Ok(_) => Err(written.err().unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed without a response",
            )
        })),
        Err(e) => Err(e),
    }
}

/// True for the errors a TCP reset produces.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// Like [`request`] but panics on IO errors.
pub async fn req(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn parse_response(buf: &[u8]) -> io::Result<Resp> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&buf[..split]).map_err(|_| bad("non-utf8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_str = std::str::from_utf8(&rest[..eol]).map_err(|_| bad())?;
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).ok_or_else(bad)?);
        rest = rest.get(size + 2..).ok_or_else(bad)?;
    }
}

/// Deterministic test data.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

pub async fn server(dir: &Path, faults: &str, write_behind: u64) -> RunningServer {
    let config = ServerConfig {
        dir: dir.to_owned(),
        faults: faults.parse::<FaultSpec>().expect("fault spec"),
        write_behind,
        ..ServerConfig::default()
    };
    server_with(config).await
}

/// Starts a server with `config` on loopback, its admin API open (the tests
/// read the stored state through it).
pub async fn server_with(config: ServerConfig) -> RunningServer {
    let config = ServerConfig {
        admin: AdminAccess::open(),
        ..config
    };
    chunkup_server::start(loopback(), config)
        .await
        .expect("server starts")
}

/// The path of an absolute (`http://localhost/tus/x`) or relative `Location`.
pub fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').expect("a path")..].to_owned(),
        None => location.to_owned(),
    }
}

/// Creates an upload of `total` bytes; returns its path (`/ranged/{id}`).
pub async fn create(addr: SocketAddr, total: u64) -> String {
    let total = total.to_string();
    let r = req(
        addr,
        "POST",
        "/ranged",
        &[("X-Upload-Content-Length", &total)],
        b"",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.lkb(), Some(-1));
    r.header("location").expect("Location").to_owned()
}

/// Sends `data[start..=end]` of an upload of `data.len()` bytes.
pub async fn send_chunk(
    addr: SocketAddr,
    path: &str,
    data: &[u8],
    start: usize,
    end: usize,
) -> Resp {
    let range = format!("bytes {start}-{end}/{}", data.len());
    req(
        addr,
        "PUT",
        path,
        &[("Content-Range", &range)],
        &data[start..=end],
    )
    .await
}

/// Admin view of the upload at `path` (`/ranged/{id}`, `/tus/{id}`, ...).
pub async fn admin_upload(addr: SocketAddr, path: &str) -> serde_json::Value {
    let id = path.rsplit('/').next().expect("an id");
    let r = req(addr, "GET", &format!("/_admin/uploads/{id}"), &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}
