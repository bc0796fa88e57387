//! `chunkup serve --web-demo` as a real process: the page and the package
//! with the content types browsers insist on, the upload routes still in
//! front, the second port for the cross-origin case, the fault switch handed
//! to the page (and to nobody else), and the error when the package is not
//! built. (The page itself is tested in Chromium by
//! scripts/browser_test.sh.)
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chunkup");

/// A page directory and a package directory holding what the checks need.
fn site(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let page = root.join("page");
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&page).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(page.join("index.html"), "<!doctype html><p>demo</p>").unwrap();
    std::fs::write(page.join("app.js"), "export {};").unwrap();
    std::fs::write(pkg.join("index.js"), "export class Upload {}").unwrap();
    std::fs::write(pkg.join("chunkup_wasm_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    (page, pkg)
}

/// The server process, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `chunkup serve` with `args` and returns it with the upload base URL
/// and the page URL it printed.
fn serve(store: &Path, args: &[&str]) -> (Serve, String, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(store)
        .args(args)
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
    let child = Serve(child);
    let (mut base, mut page) = (None, None);
    while base.is_none() || page.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        let url_after = |marker: &str| {
            line.split_once(marker)
                .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_owned())
        };
        base = base.or(url_after("listening on "));
        page = page.or(url_after("web demo: "));
    }
    (child, base.unwrap(), page.unwrap())
}

async fn get(url: &str) -> (u16, String, Vec<u8>) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ctype, resp.bytes().await.unwrap().to_vec())
}

/// A GET with the path exactly as given; returns the whole reply.
fn raw_get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    raw_get_as(base, path, addr)
}

/// [`raw_get`] with another `Host`.
fn raw_get_as(base: &str, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    reply
}

/// A request to the admin API with these headers: status and reply.
async fn admin(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new().request(method, url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let resp = request.send().await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

/// The fault switch's token the page gets from `/demo-config.json`.
async fn page_token(page: &str) -> String {
    let (_, _, body) = get(&format!("{page}demo-config.json")).await;
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = config["faultSwitchToken"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32, "128 random bits in hex: {token}");
    token
}

#[tokio::test]
async fn serves_page_and_package_beside_the_upload_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let (page_dir, pkg_dir) = site(tmp.path());
    let (_serve, base, page) = serve(
        &tmp.path().join("store"),
        &[
            "--web-demo",
            "--web-demo-dir",
            page_dir.to_str().unwrap(),
            "--wasm-pkg",
            pkg_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(page, format!("{base}/"));

    let (status, ctype, body) = get(&page).await;
    assert_eq!((status, ctype.as_str()), (200, "text/html; charset=utf-8"));
    assert!(String::from_utf8(body).unwrap().contains("demo"));
    let (status, ctype, _) = get(&format!("{base}/app.js")).await;
    assert_eq!(
        (status, ctype.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let (status, ctype, _) = get(&format!("{base}/pkg/index.js")).await;
    assert_eq!(
        (status, ctype.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let (status, ctype, body) = get(&format!("{base}/pkg/chunkup_wasm_bg.wasm")).await;
    assert_eq!((status, ctype.as_str()), (200, "application/wasm"));
    assert_eq!(&body[..4], b"\0asm");
    let (_, _, body) = get(&format!("{base}/demo-config.json")).await;
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["uploadServer"], serde_json::Value::Null);
    let token = page_token(&page).await;
    assert_eq!(get(&format!("{base}/missing.js")).await.0, 404);
    // `..` sent as is (an HTTP client would normalise it away).
    assert!(raw_get(&base, "/pkg/../page/app.js").starts_with("HTTP/1.1 404"));
    assert!(raw_get(&base, "/../pkg/index.js").starts_with("HTTP/1.1 404"));
    // The page's files: no CORS (another origin cannot read the token), no
    // sniffing, no framing, and no answer for a rebinding Host.
    let config = reqwest::Client::new()
        .get(format!("{base}/demo-config.json"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    let h = config.headers();
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let reply = raw_get_as(&base, "/demo-config.json", "attacker.example:8080");
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(!reply.contains(&token), "{reply}");

    // The upload and admin routes still win over the static files. The page
    // gets the fault switch, and nothing else of the admin API.
    let faults = format!("{base}/_admin/faults");
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());
    let (status, _, body) = get(&faults).await;
    assert_eq!(status, 401, "the switch needs the page's token");
    assert!(String::from_utf8(body).unwrap().contains("token"));
    assert_eq!(admin(reqwest::Method::GET, &faults, &[auth]).await.0, 200);
    let switch_on = reqwest::Client::new()
        .put(&faults)
        .header("Authorization", &bearer)
        .header("Origin", base.as_str())
        .body("busy=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(switch_on.status().as_u16(), 200, "the page's own origin");
    let uploads = format!("{base}/_admin/uploads");
    assert_eq!(admin(reqwest::Method::GET, &uploads, &[auth]).await.0, 403);
    let evil = ("Origin", "http://evil.example");
    let (status, headers) = admin(reqwest::Method::GET, &faults, &[auth, evil]).await;
    assert_eq!(status, 403, "not from another origin, even with the token");
    assert!(headers.get("access-control-allow-origin").is_none());
    let created = reqwest::Client::new()
        .post(format!("{base}/ranged"))
        .header("X-Upload-Content-Length", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
}

#[tokio::test]
async fn a_second_port_serves_the_page_for_cross_origin_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let (page_dir, pkg_dir) = site(tmp.path());
    let (_serve, base, page) = serve(
        &tmp.path().join("store"),
        &[
            "--web-demo",
            "--web-demo-dir",
            page_dir.to_str().unwrap(),
            "--wasm-pkg",
            pkg_dir.to_str().unwrap(),
            "--web-demo-addr",
            "127.0.0.1:0",
        ],
    );
    assert_ne!(page, format!("{base}/"), "the page has its own origin");
    let (status, _, _) = get(&page).await;
    assert_eq!(status, 200);
    let (_, _, body) = get(&format!("{page}demo-config.json")).await;
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["uploadServer"], base.as_str());
    let token = page_token(&page).await;
    let reply = raw_get_as(&page, "/demo-config.json", "attacker.example");
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    // The upload server does not serve the page in this mode.
    assert_eq!(get(&format!("{base}/")).await.0, 404);
    // A browser's preflight from the page's origin to the upload server.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/ranged"))
        .header("Origin", page.trim_end_matches('/'))
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-upload-content-length")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    // The page's fault switch, cross-origin: CORS names the page's origin
    // exactly, and no other origin gets anything.
    let page_origin = page.trim_end_matches('/');
    let faults = format!("{base}/_admin/faults");
    let (status, headers) = admin(
        reqwest::Method::OPTIONS,
        &faults,
        &[
            ("Origin", page_origin),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(headers["access-control-allow-origin"], page_origin);
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    let bearer = format!("Bearer {token}");
    let (status, headers) = admin(
        reqwest::Method::GET,
        &faults,
        &[("Origin", page_origin), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], page_origin);
    for origin in ["http://evil.example", "null"] {
        let (status, headers) = admin(
            reqwest::Method::OPTIONS,
            &faults,
            &[("Origin", origin), ("Access-Control-Request-Method", "PUT")],
        )
        .await;
        assert_eq!(status, 403, "{origin}");
        assert!(headers.get("access-control-allow-origin").is_none());
    }
    let uploads = format!("{base}/_admin/uploads");
    let (status, _) = admin(
        reqwest::Method::GET,
        &uploads,
        &[("Origin", page_origin), ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 403, "the page's token opens the fault switch only");
}

#[test]
fn refuses_to_start_without_the_built_package() {
    let tmp = tempfile::tempdir().unwrap();
    let (page_dir, _) = site(tmp.path());
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(tmp.path().join("store"))
        .args(["--web-demo", "--web-demo-dir"])
        .arg(&page_dir)
        .arg("--wasm-pkg")
        .arg(tmp.path().join("not-built"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run scripts/wasm.sh"), "{stderr}");
    assert!(stderr.contains("not-built"), "{stderr}");
}
