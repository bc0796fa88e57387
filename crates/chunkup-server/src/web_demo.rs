//! Static files for the web demo: the page (`web-demo/`) and the built npm
//! package (`bindings/wasm/pkg`), read from disk on each request.
//!
//! Served from disk rather than embedded: the package is a build output of
//! `scripts/wasm.sh` that need not exist when the server is compiled, and an
//! edited page shows up on reload. Either way only loopback use is intended.
//!
//! URL layout: `/pkg/...` is the package, `/demo-config.json` tells the page
//! where uploads go and hands it the fault switch's token, anything else is
//! a file of the page directory (`/` is `index.html`). On the upload server
//! these are the fallback behind the protocol and admin routes, so they
//! never shadow them.
//!
//! These files carry no CORS headers: only a page of the demo's own origin
//! can read `/demo-config.json`, and unknown `Host` names are refused (DNS
//! rebinding), so the token reaches the demo page and local programs only.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The file a page directory must hold.
const PAGE_ENTRY: &str = "index.html";
/// The file a built package must hold.
const PKG_ENTRY: &str = "index.js";
/// Largest request head the page server of [`start`] reads.
const GATE_HEADER_SIZE: usize = 64 << 10;

/// What to serve as the web demo. Build it with [`WebDemo::new`], which
/// checks that both directories hold what the page needs.
#[derive(Debug, Clone)]
pub struct WebDemo {
    page_dir: PathBuf,
    pkg_dir: PathBuf,
    upload_server: Option<String>,
    fault_switch_token: Option<String>,
    allowed_hosts: Vec<String>,
}

/// Why a [`WebDemo`] cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebDemoError {
    /// The page directory has no `index.html`.
    PageMissing(PathBuf),
    /// The package directory has no `index.js`: the package is not built.
    PackageMissing(PathBuf),
}

impl fmt::Display for WebDemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebDemoError::PageMissing(dir) => {
                write!(
                    f,
                    "no web demo page in {} ({PAGE_ENTRY} missing)",
                    dir.display()
                )
            }
            WebDemoError::PackageMissing(dir) => write!(
                f,
                "the WASM package is not built ({} missing): run scripts/wasm.sh",
                dir.join(PKG_ENTRY).display()
            ),
        }
    }
}

impl std::error::Error for WebDemoError {}

impl WebDemo {
    /// The page in `page_dir`, the npm package (the output of
    /// `scripts/wasm.sh`) in `pkg_dir`. Uploads go to the server that
    /// serves the page unless [`WebDemo::with_upload_server`] says otherwise.
    pub fn new(
        page_dir: impl Into<PathBuf>,
        pkg_dir: impl Into<PathBuf>,
    ) -> Result<Self, WebDemoError> {
        let page_dir = page_dir.into();
        let pkg_dir = pkg_dir.into();
        if !page_dir.join(PAGE_ENTRY).is_file() {
            return Err(WebDemoError::PageMissing(page_dir));
        }
        if !pkg_dir.join(PKG_ENTRY).is_file() {
            return Err(WebDemoError::PackageMissing(pkg_dir));
        }
        Ok(WebDemo {
            page_dir,
            pkg_dir,
            upload_server: None,
            fault_switch_token: None,
            allowed_hosts: Vec::new(),
        })
    }

    /// Tells the page to upload to another origin (`http://IP:PORT`), for a
    /// page served by [`start`] on its own port: the cross-origin case.
    pub fn with_upload_server(mut self, base_url: impl Into<String>) -> Self {
        self.upload_server = Some(base_url.into());
        self
    }

    /// Hands the page this token for the upload server's fault switch
    /// ([`crate::AdminAccess::fault_switch_token`]). A server started with
    /// [`crate::ServerConfig::web_demo`] does this itself; a page on its
    /// own port ([`start`]) needs the upload server's token, and the upload
    /// server needs the page's origin in [`crate::AdminAccess::origins`].
    pub fn with_fault_switch_token(mut self, token: impl Into<String>) -> Self {
        self.fault_switch_token = Some(token.into());
        self
    }

    /// `Host` names the page server of [`start`] answers besides IP
    /// addresses and `localhost` (a server started with
    /// [`crate::ServerConfig::web_demo`] uses its
    /// [`crate::ServerConfig::allowed_hosts`]).
    pub fn with_allowed_hosts(mut self, names: Vec<String>) -> Self {
        self.allowed_hosts = names;
        self
    }

    /// The page directory.
    pub fn page_dir(&self) -> &Path {
        &self.page_dir
    }

    /// The package directory.
    pub fn pkg_dir(&self) -> &Path {
        &self.pkg_dir
    }
}

/// The demo's routes, as a router that answers every path (use it as a
/// fallback).
pub(crate) fn router(site: WebDemo) -> Router {
    Router::new().fallback(serve).with_state(Arc::new(site))
}

async fn serve(State(site): State<Arc<WebDemo>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = req.uri().path();
    if path == "/demo-config.json" {
        let config = serde_json::json!({
            "uploadServer": site.upload_server,
            "faultSwitchToken": site.fault_switch_token,
        });
        let mut resp = ([(header::CACHE_CONTROL, "no-store")], axum::Json(config)).into_response();
        harden(resp.headers_mut());
        return resp;
    }
    let (root, rel) = match path.strip_prefix("/pkg/") {
        Some(rel) => (&site.pkg_dir, rel),
        None => (&site.page_dir, path.trim_start_matches('/')),
    };
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}{PAGE_ENTRY}")
    } else {
        rel.to_owned()
    };
    match read_file(root, &rel).await {
        Some((bytes, mime)) => {
            let mut resp = Response::new(Body::from(bytes));
            let headers = resp.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            // A demo under development: always revalidate, so a rebuilt
            // package or an edited page is what the next reload gets.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            harden(headers);
            resp
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// No sniffing a file as another type (the config as a script), and no
/// framing by other sites (nobody clicks the fault switch through an
/// invisible frame).
fn harden(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
}

/// Reads `rel` (a URL path, `/`-separated) below `root`, or `None` when it
/// is not a servable file there: no `..`, no hidden or `node_modules`
/// segments, no symlink out of `root`, only known file types.
async fn read_file(root: &Path, rel: &str) -> Option<(Vec<u8>, &'static str)> {
    let mime = mime_for(rel)?;
    let mut path = root.to_path_buf();
    for segment in rel.split('/') {
        if segment.is_empty()
            || segment.starts_with('.')
            || segment == "node_modules"
            || segment.contains(['\\', '\0', ':'])
        {
            return None;
        }
        path.push(segment);
    }
    // Each segment must have stayed one normal component.
    if path
        .strip_prefix(root)
        .ok()?
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let real = tokio::fs::canonicalize(&path).await.ok()?;
    if !real.starts_with(&root) || !tokio::fs::metadata(&real).await.ok()?.is_file() {
        return None;
    }
    let bytes = tokio::fs::read(&real).await.ok()?;
    Some((bytes, mime))
}

/// The Content-Type for a file name; `None` for types the demo never needs.
/// Module scripts and `WebAssembly.instantiateStreaming` insist on the
/// right ones.
fn mime_for(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "ts" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// Starts a server for the demo alone on `addr` (port 0: any free port), for
/// a page whose origin differs from the upload server's.
pub async fn start(addr: SocketAddr, site: WebDemo) -> std::io::Result<RunningWebDemo> {
    start_on(TcpListener::bind(addr).await?, site)
}

/// [`start`] on a listener already bound, e.g. to learn the page's origin
/// (its port) before the upload server starts.
pub fn start_on(listener: TcpListener, site: WebDemo) -> std::io::Result<RunningWebDemo> {
    let local = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let hosts = crate::hosts::HostPolicy::new(&site.allowed_hosts);
    let page = router(site);
    let gated = Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let refused = crate::gate(&hosts, GATE_HEADER_SIZE, &req);
        let page = page.clone();
        async move {
            match refused {
                Some(refused) => Ok(refused),
                None => tower::ServiceExt::oneshot(page, req).await,
            }
        }
    }));
    let task = tokio::spawn(crate::serve::accept_loop(listener, gated, rx));
    Ok(RunningWebDemo {
        addr: local,
        shutdown,
        task,
    })
}

/// A running demo server from [`start`]. Dropping it stops it at once.
#[derive(Debug)]
pub struct RunningWebDemo {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningWebDemo {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT/`, the page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", crate::loopback_if_unspecified(self.addr))
    }

    /// Graceful stop: lets open connections finish (a few seconds at most).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningWebDemo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let page = tmp.path().join("page");
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(page.join("sub")).expect("mkdir");
        std::fs::create_dir_all(&pkg).expect("mkdir");
        std::fs::write(page.join("index.html"), "<p>hi</p>").expect("write");
        std::fs::write(page.join("app.js"), "export {}").expect("write");
        std::fs::write(page.join(".secret.js"), "no").expect("write");
        std::fs::write(tmp.path().join("outside.js"), "no").expect("write");
        std::fs::write(pkg.join("index.js"), "export {}").expect("write");
        std::fs::write(pkg.join("chunkup_bg.wasm"), b"\0asm").expect("write");
        (tmp, page, pkg)
    }

    #[test]
    fn new_says_what_is_missing() {
        let (_tmp, page, pkg) = site();
        assert!(WebDemo::new(&page, &pkg).is_ok());
        let err = WebDemo::new(&page, page.join("nope")).expect_err("no package");
        assert!(matches!(err, WebDemoError::PackageMissing(_)));
        assert!(err.to_string().contains("run scripts/wasm.sh"), "{err}");
        let err = WebDemo::new(page.join("sub"), &pkg).expect_err("no page");
        assert!(matches!(err, WebDemoError::PageMissing(_)));
    }

    #[tokio::test]
    async fn serves_only_files_inside_the_roots() {
        let (_tmp, page, pkg) = site();
        assert!(read_file(&page, "index.html").await.is_some());
        let (bytes, mime) = read_file(&pkg, "chunkup_bg.wasm").await.expect("wasm");
        assert_eq!(
            (bytes.as_slice(), mime),
            (&b"\0asm"[..], "application/wasm")
        );
        assert_eq!(
            read_file(&page, "app.js").await.map(|r| r.1),
            Some("text/javascript; charset=utf-8")
        );
        for bad in [
            "../outside.js",
            "sub/../../outside.js",
            ".secret.js",
            "./app.js",
            "sub//app.js",
            "missing.js",
            "sub",
        ] {
            assert!(read_file(&page, bad).await.is_none(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(
                page.parent().expect("parent").join("outside.js"),
                page.join("link.js"),
            )
            .expect("symlink");
            assert!(read_file(&page, "link.js").await.is_none(), "symlink out");
        }
    }
}
