//! `chunkup serve` is safe by default, checked against the real binary on
//! 127.0.0.1: the admin API is closed unless asked for and never answers
//! pages of other origins, `Host` names the server does not know (DNS
//! rebinding) are refused, and every resource limit refuses the creation
//! (or append) that would cross it, with the documented status.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chunkup");
const EVIL: &str = "http://evil.example";

/// A `chunkup serve` process, killed on drop.
struct Serve {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    /// Its stderr up to the line after "listening on".
    log: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `chunkup serve --addr 127.0.0.1:0 --dir <store> <args>` with the
/// extra environment `env`.
fn serve_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(store)
        .args(args)
        .env_remove("CHUNKUP_ADMIN_TOKEN")
        .envs(env.iter().copied())
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
    let mut log = String::new();
    let mut addr = None;
    // The listening line, then the admin line after it.
    while addr.is_none() || !log.contains("admin API") {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        if let Some((_, rest)) = line.split_once("listening on http://") {
            addr = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
        log.push_str(&line);
        log.push('\n');
    }
    Serve {
        child,
        addr: addr.unwrap(),
        log,
    }
}

fn serve(store: &Path, args: &[&str]) -> Serve {
    serve_env(store, args, &[])
}

/// A reply: status, lower-case headers, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when no `Access-Control-Allow-*` header is present.
    fn no_cors(&self) -> bool {
        !self
            .headers
            .iter()
            .any(|(k, _)| k.starts_with("access-control-allow"))
    }
}

/// One request on its own connection with exactly these headers (a `Host`
/// only if given) and body; reads the whole reply.
fn raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    Reply {
        status: status.parse().unwrap(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: body.to_owned(),
    }
}

/// A request with `Host` set to the server's own address.
fn req(s: &Serve, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = vec![("Host", s.addr.as_str())];
    all.extend_from_slice(headers);
    raw(&s.addr, method, path, &all, body)
}

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const IETF: (&str, &str) = ("Upload-Draft-Interop-Version", "8");

fn create_ranged(s: &Serve, size: u64) -> Reply {
    let size = size.to_string();
    req(
        s,
        "POST",
        "/ranged",
        &[("X-Upload-Content-Length", &size)],
        b"",
    )
}

fn create_tus(s: &Serve, size: u64) -> Reply {
    let size = size.to_string();
    req(s, "POST", "/tus", &[TUS, ("Upload-Length", &size)], b"")
}

fn create_ietf(s: &Serve, size: u64) -> Reply {
    let size = size.to_string();
    req(
        s,
        "POST",
        "/ietf",
        &[IETF, ("Upload-Complete", "?0"), ("Upload-Length", &size)],
        b"",
    )
}

/// The number of uploads the store holds, through the (open) admin API.
fn upload_count(s: &Serve) -> usize {
    let r = req(s, "GET", "/_admin/uploads", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<Vec<serde_json::Value>>(&r.body)
        .unwrap()
        .len()
}

#[test]
fn the_admin_api_is_closed_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &[]);
    assert!(s.log.contains("admin API: closed"), "{}", s.log);
    assert_eq!(create_ranged(&s, 10).status, 201);
    for (method, path, body) in [
        ("GET", "/_admin/uploads", &b""[..]),
        ("GET", "/_admin/faults", b""),
        ("PUT", "/_admin/faults", b"reset=1"),
    ] {
        for origin in [None, Some(EVIL)] {
            let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
            let r = req(&s, method, path, &headers, body);
            assert_eq!(r.status, 403, "{method} {path} from {origin:?}: {}", r.body);
            assert!(
                r.body.contains("--admin"),
                "says how to open it: {}",
                r.body
            );
            assert!(r.no_cors(), "{method} {path}: {:?}", r.headers);
        }
    }
    // The permissive preflight is gone too.
    let r = req(
        &s,
        "OPTIONS",
        "/_admin/faults",
        &[
            ("Origin", EVIL),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(r.no_cors(), "{:?}", r.headers);
    // Upload routes keep their CORS: browsers upload from other origins.
    let r = req(
        &s,
        "POST",
        "/ranged",
        &[("Origin", EVIL), ("X-Upload-Content-Length", "10")],
        b"",
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn an_open_admin_api_refuses_pages_of_other_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &["--admin"]);
    assert_eq!(create_tus(&s, 10).status, 201);
    let own = format!("http://{}", s.addr);
    // Programs (no Origin) and the server's own origin are answered.
    for headers in [vec![], vec![("Origin", own.as_str())]] {
        let r = req(&s, "GET", "/_admin/uploads", &headers, b"");
        assert_eq!(r.status, 200, "{headers:?}: {}", r.body);
        assert!(r.no_cors(), "{:?}", r.headers);
    }
    for origin in [EVIL, "null", "http://127.0.0.1:1"] {
        for (method, path, body) in [
            ("GET", "/_admin/uploads", &b""[..]),
            (
                "GET",
                "/_admin/uploads/0123456789abcdef0123456789abcdef",
                b"",
            ),
            ("PUT", "/_admin/faults", b"reset=1"),
        ] {
            let r = req(&s, method, path, &[("Origin", origin)], body);
            assert_eq!(r.status, 403, "{method} {path} from {origin}: {}", r.body);
            assert!(r.no_cors(), "{:?}", r.headers);
            assert!(!r.body.contains("\"id\""), "nothing listed: {}", r.body);
        }
        let preflight = req(
            &s,
            "OPTIONS",
            "/_admin/faults",
            &[("Origin", origin), ("Access-Control-Request-Method", "PUT")],
            b"",
        );
        assert_eq!(preflight.status, 403, "preflight from {origin}");
        assert!(preflight.no_cors(), "{:?}", preflight.headers);
    }
    // The refused PUTs changed nothing.
    let faults = req(&s, "GET", "/_admin/faults", &[], b"");
    assert!(faults.body.contains("\"spec\":\"none\""), "{}", faults.body);
}

#[test]
fn an_admin_token_is_required_when_set() {
    let tmp = tempfile::tempdir().unwrap();
    let by_flag = serve(&tmp.path().join("a"), &["--admin-token", "s3cret-token"]);
    let by_env = serve_env(
        &tmp.path().join("b"),
        &[],
        &[("CHUNKUP_ADMIN_TOKEN", "s3cret-token")],
    );
    for s in [&by_flag, &by_env] {
        assert!(
            s.log.contains("open to requests with its token"),
            "{}",
            s.log
        );
        for auth in [None, Some("Bearer wrong"), Some("Basic s3cret-token")] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            let r = req(s, "GET", "/_admin/uploads", &headers, b"");
            assert_eq!(r.status, 401, "{auth:?}");
            assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        }
        let bearer = [("Authorization", "Bearer s3cret-token")];
        assert_eq!(req(s, "GET", "/_admin/uploads", &bearer, b"").status, 200);
        // The token does not make another origin welcome.
        let r = req(
            s,
            "GET",
            "/_admin/uploads",
            &[bearer[0], ("Origin", EVIL)],
            b"",
        );
        assert_eq!(r.status, 403);
    }
}

#[test]
fn host_names_the_server_does_not_know_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &["--admin", "--allow-host", "uploads.test"]);
    let port = s.addr.rsplit(':').next().unwrap().to_owned();
    let rebinding = [
        "attacker.example".to_owned(),
        format!("attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("uploads.test.attacker.example:{port}"),
    ];
    for host in &rebinding {
        let h = ("Host", host.as_str());
        let attempts = [
            ("GET", "/_admin/uploads", vec![h], &b""[..]),
            ("PUT", "/_admin/faults", vec![h], b"reset=1"),
            (
                "POST",
                "/ranged",
                vec![h, ("X-Upload-Content-Length", "10")],
                b"",
            ),
            ("POST", "/tus", vec![h, TUS, ("Upload-Length", "10")], b""),
            (
                "OPTIONS",
                "/tus",
                vec![
                    h,
                    ("Origin", EVIL),
                    ("Access-Control-Request-Method", "PATCH"),
                ],
                b"",
            ),
        ];
        for (method, path, headers, body) in attempts {
            let r = raw(&s.addr, method, path, &headers, body);
            assert_eq!(r.status, 403, "{method} {path} for Host {host}: {}", r.body);
            assert!(r.body.contains("--allow-host"), "{}", r.body);
            assert!(r.no_cors(), "{:?}", r.headers);
        }
    }
    assert_eq!(
        raw(&s.addr, "GET", "/_admin/uploads", &[], b"").status,
        400,
        "no Host"
    );
    assert_eq!(upload_count(&s), 0, "no refused request created anything");
    let faults = req(&s, "GET", "/_admin/faults", &[], b"");
    assert!(faults.body.contains("\"spec\":\"none\""), "{}", faults.body);

    // The server's own names, IP literals and the allowed name are answered.
    for host in [
        s.addr.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("uploads.test:{port}"),
        "UPLOADS.TEST".to_owned(),
    ] {
        let r = raw(
            &s.addr,
            "POST",
            "/ranged",
            &[("Host", &host), ("X-Upload-Content-Length", "10")],
            b"",
        );
        assert_eq!(r.status, 201, "Host {host}: {}", r.body);
    }
    assert_eq!(upload_count(&s), 5);
}

#[test]
fn creations_past_the_total_size_get_507() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &["--admin", "--max-total-size", "1MiB"]);
    assert_eq!(create_ranged(&s, 600_000).status, 201);
    for r in [
        create_ranged(&s, 600_000),
        create_tus(&s, 600_000),
        create_ietf(&s, 600_000),
    ] {
        assert_eq!(r.status, 507, "{}", r.body);
        assert!(r.body.contains("store is full"), "{}", r.body);
    }
    // Exactly what is left fits; one byte more does not.
    assert_eq!(create_tus(&s, (1 << 20) - 600_000).status, 201);
    assert_eq!(create_ietf(&s, 1).status, 507);
    assert_eq!(upload_count(&s), 2);
    // A deferred length counts what arrives: nothing more fits.
    let r = req(
        &s,
        "POST",
        "/tus",
        &[TUS, ("Upload-Defer-Length", "1")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let path = r
        .header("location")
        .unwrap()
        .replace(&format!("http://{}", s.addr), "");
    let r = req(
        &s,
        "PATCH",
        &path,
        &[
            TUS,
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "0"),
        ],
        b"0123456789",
    );
    assert_eq!(r.status, 507, "{}", r.body);
    assert_eq!(r.header("upload-offset"), None);
    let r = req(&s, "HEAD", &path, &[TUS], b"");
    assert_eq!(r.header("upload-offset"), Some("0"), "nothing stored");
}

#[test]
fn creations_past_the_unfinished_limit_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &["--admin", "--max-unfinished", "2"]);
    let first = create_ranged(&s, 10);
    assert_eq!(first.status, 201);
    assert_eq!(create_ietf(&s, 10).status, 201);
    for r in [
        create_ranged(&s, 10),
        create_tus(&s, 10),
        create_ietf(&s, 10),
    ] {
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.header("retry-after"), Some("10"));
        assert!(r.body.contains("unfinished uploads"), "{}", r.body);
    }
    // Finishing one frees its place.
    let path = first.header("location").unwrap();
    let r = req(
        &s,
        "PUT",
        path,
        &[("Content-Range", "bytes 0-9/10")],
        b"0123456789",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(create_tus(&s, 10).status, 201);
    assert_eq!(create_tus(&s, 10).status, 503);
    assert_eq!(upload_count(&s), 3);
}

#[test]
fn the_free_disk_margin_refuses_creations_and_holds_appends() {
    let tmp = tempfile::tempdir().unwrap();
    // Two servers on one store: one without a margin, one whose margin no
    // disk can keep (the disk "fills up" under the second one).
    let roomy = serve(tmp.path(), &["--admin", "--min-free-disk", "0"]);
    let full = serve(
        tmp.path(),
        &["--admin", "--min-free-disk", "100000000000000000"],
    );
    for r in [
        create_ranged(&full, 10),
        create_tus(&full, 10),
        create_ietf(&full, 10),
    ] {
        assert_eq!(r.status, 507, "{}", r.body);
        assert!(r.body.contains("free disk space"), "{}", r.body);
    }
    let ranged = create_ranged(&roomy, 10);
    let ranged = ranged.header("location").unwrap();
    let r = req(
        &full,
        "PUT",
        ranged,
        &[("Content-Range", "bytes 0-9/10")],
        b"0123456789",
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("10"));
    let tus = create_tus(&roomy, 10);
    let tus = tus
        .header("location")
        .unwrap()
        .replace(&format!("http://{}", roomy.addr), "");
    let r = req(
        &full,
        "PATCH",
        &tus,
        &[
            TUS,
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "0"),
        ],
        b"0123456789",
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("10"));
    // Nothing was stored; the upload continues where there is room.
    let status = req(&full, "GET", ranged, &[], b"");
    assert_eq!(status.header("x-last-known-byte"), Some("-1"));
    let r = req(
        &roomy,
        "PUT",
        ranged,
        &[("Content-Range", "bytes 0-9/10")],
        b"0123456789",
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn metadata_and_request_heads_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(
        tmp.path(),
        &[
            "--admin",
            "--max-metadata-size",
            "1KiB",
            "--max-header-size",
            "8KiB",
        ],
    );
    // 1,100 bytes of Base64: over the metadata limit, under the head limit.
    let long = format!("filename {}", "QUFB".repeat(275));
    let r = req(
        &s,
        "POST",
        "/tus",
        &[TUS, ("Upload-Length", "10"), ("Upload-Metadata", &long)],
        b"",
    );
    assert_eq!(r.status, 431, "{}", r.body);
    assert!(r.body.contains("Upload-Metadata"), "{}", r.body);
    let short = "filename YS50eHQ=";
    let r = req(
        &s,
        "POST",
        "/tus",
        &[TUS, ("Upload-Length", "10"), ("Upload-Metadata", short)],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let padding = "x".repeat(9 << 10);
    for (method, path) in [("POST", "/ranged"), ("GET", "/_admin/uploads")] {
        let r = req(
            &s,
            method,
            path,
            &[("X-Upload-Content-Length", "10"), ("X-Padding", &padding)],
            b"",
        );
        assert_eq!(r.status, 431, "{method} {path}: {}", r.body);
    }
    assert_eq!(upload_count(&s), 1);
}

#[test]
fn an_admin_api_without_a_token_beyond_loopback_is_refused() {
    // Refused before anything listens: no socket is opened beyond loopback.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "0.0.0.0:0", "--admin", "--dir"])
        .arg(tmp.path())
        .env_remove("CHUNKUP_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--admin-token"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}
