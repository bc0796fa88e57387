//! chunkup's reference upload server.
//!
//! It speaks the "ranged" resumable protocol, tus 1.0.0 (with creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! concatenation and expiration), the IETF resumable-upload draft
//! (interop versions 6 and 8) and Google-style resumable sessions (GCS)
//! over one file store (see `docs/SERVER.md`),
//! injects faults on demand ([`FaultSpec`]) and can emulate
//! a failover between two server processes sharing one store
//! ([`ServerConfig::write_behind`] + [`RunningServer::crash`]).
//!
//! It is safe by default (see "Security" in `docs/SERVER.md`): the admin
//! API is closed unless [`ServerConfig::admin`] opens it, only known `Host`
//! names are answered (DNS rebinding), and resource limits bound what
//! clients can store.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use chunkup_server::{ServerConfig, start};
//! let config = ServerConfig {
//!     dir: "/tmp/chunkup-data".into(),
//!     faults: "seed=7,reset=0.1".parse().expect("valid spec"),
//!     ..ServerConfig::default()
//! };
//! let server = start("127.0.0.1:0".parse().expect("addr"), config).await?;
//! println!("upload endpoint: {}", server.ranged_endpoint());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_http::cors::{Any, CorsLayer};

mod admin;
mod append;
mod body;
mod checksum;
mod expiry;
mod faults;
mod gcs;
mod headers;
mod hosts;
mod ietf;
mod limits;
pub mod link;
pub mod proxy;
mod ranged;
mod reply;
mod serve;
mod store;
mod tus;
pub mod web_demo;

pub use admin::AdminAccess;
pub use faults::{FaultCounts, FaultKind, FaultSpec, FaultSpecError, ScriptedFault};

/// Headers a browser client must be able to read (CORS exposed headers).
pub const EXPOSED_HEADERS: [&str; 20] = [
    "x-last-known-byte",
    "location",
    "range",
    "content-range",
    "retry-after",
    "upload-offset",
    "upload-length",
    "upload-complete",
    "upload-limit",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-expires",
    "upload-metadata",
    "upload-draft-interop-version",
    "upload-concat",
    "upload-defer-length",
    "accept-patch",
];

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory of the file store (created if missing). Two servers on the
    /// same directory serve the same uploads.
    pub dir: PathBuf,
    /// Largest upload accepted, in bytes (default 64 GiB); larger -> 413.
    pub max_size: u64,
    /// Faults to inject (default: none).
    pub faults: FaultSpec,
    /// Failover emulation: per upload, keep up to this many of the newest
    /// acknowledged bytes in memory instead of on disk (default 0 = write
    /// everything through). Flushed on completion and graceful shutdown,
    /// lost on [`RunningServer::crash`].
    pub write_behind: u64,
    /// tus/IETF uploads and GCS sessions not finished this long after their
    /// creation or last append expire (`Upload-Expires`; later requests get
    /// 410). `None`: never. Default 24 hours. Ranged uploads never expire.
    pub expire_after: Option<Duration>,
    /// Largest body of one IETF append (and creation) request, announced
    /// as `max-append-size` in `Upload-Limit`; larger -> 413. Default `None`.
    pub max_append_size: Option<u64>,
    /// Largest tus PATCH body with an `Upload-Checksum` (it is held in
    /// memory until verified); larger -> 413. Default 64 MiB.
    pub max_checksum_body: u64,
    /// Also serve the web demo page and the npm package from this server,
    /// behind the protocol and admin routes (default `None`).
    pub web_demo: Option<web_demo::WebDemo>,
    /// All-or-nothing appends, as servers that buffer or verify a whole
    /// chunk behave: a ranged chunk, tus PATCH, IETF append or GCS chunk whose body
    /// breaks off (or meets an injected reset) stores none of its bytes,
    /// and the offset stays where the request found it. Default false: keep
    /// every byte that arrived (as the tus and IETF specs ask).
    pub atomic_appends: bool,
    /// Who may use the admin API (`/_admin/...`). Default: nobody.
    pub admin: AdminAccess,
    /// `Host` names answered besides IP addresses and `localhost` (any
    /// case, without port); requests naming another host get 403, which
    /// defeats DNS rebinding. Default none.
    pub allowed_hosts: Vec<String>,
    /// Most bytes the store holds: the sum of every upload's declared
    /// length (or stored bytes). A creation past it gets 507. Default
    /// 100 GiB.
    pub max_total_size: u64,
    /// Most uploads unfinished at once. A creation past it gets 503 +
    /// `Retry-After` (expired uploads are deleted first). Default 1000.
    pub max_unfinished: u64,
    /// Free disk space the store keeps: a creation whose declared length
    /// would leave less gets 507, an append while less is free gets 503 +
    /// `Retry-After`. 0 turns the check off. Default 1 GiB.
    pub min_free_disk: u64,
    /// Largest tus `Upload-Metadata`, in bytes; longer -> 431. Default 8 KiB.
    pub max_metadata_size: usize,
    /// Largest request head (header names and values added up); larger ->
    /// 431. Default 64 KiB (hyper itself stops reading a head at ~400 KiB).
    pub max_header_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            dir: PathBuf::from("./chunkup-data"),
            max_size: 64 << 30,
            faults: FaultSpec::default(),
            write_behind: 0,
            expire_after: Some(Duration::from_secs(24 * 3600)),
            max_append_size: None,
            max_checksum_body: 64 << 20,
            web_demo: None,
            atomic_appends: false,
            admin: AdminAccess::default(),
            allowed_hosts: Vec::new(),
            max_total_size: 100 << 30,
            max_unfinished: 1000,
            min_free_disk: 1 << 30,
            max_metadata_size: 8 << 10,
            max_header_size: 64 << 10,
        }
    }
}

/// The protocol settings handlers need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) expire_after: Option<Duration>,
    pub(crate) max_append_size: Option<u64>,
    pub(crate) max_checksum_body: u64,
    pub(crate) max_metadata_size: usize,
    pub(crate) max_header_size: usize,
}

/// State shared by all handlers.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<store::Store>,
    pub(crate) faults: Arc<faults::FaultInjector>,
    pub(crate) limits: Limits,
    pub(crate) admin: Arc<AdminAccess>,
    pub(crate) hosts: Arc<hosts::HostPolicy>,
}

/// A fresh secret: 128 bits from the operating system's CSPRNG, as 32 hex
/// characters (for [`AdminAccess::token`] and the web demo's fault switch).
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Refuses, before any route sees it, a request for an unknown `Host` or
/// with too large a head.
pub(crate) fn gate(
    hosts: &hosts::HostPolicy,
    max_header_size: usize,
    req: &Request,
) -> Option<axum::response::Response> {
    hosts
        .check(req.headers())
        .or_else(|| limits::check_head(req.headers(), max_header_size))
}

fn router(state: AppState, site: Option<web_demo::WebDemo>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(3600));
    let plain = Router::new()
        .merge(ranged::routes())
        .merge(tus::routes())
        .merge(ietf::routes())
        .merge(gcs::routes())
        .with_state(state.clone());
    let with_cors = plain.clone().layer(cors);
    let admin = admin::service(state.clone());
    let site = site.map(web_demo::router);
    let hosts = state.hosts.clone();
    let max_header_size = state.limits.max_header_size;
    // Upload routes carry CORS for any origin (browsers upload from other
    // origins); the admin API has its own, naming exact origins only; the
    // web demo's files have none (same-origin only).
    // tower-http answers every OPTIONS as a CORS preflight, so a plain
    // OPTIONS (tus/IETF discovery: no Access-Control-Request-Method) to
    // /tus or /ietf goes past it to the protocol's handler.
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let refused = gate(&hosts, max_header_size, &req);
        let path = req.uri().path();
        let to_admin = admin::is_admin_path(path);
        let to_site = site
            .clone()
            .filter(|_| !to_admin && !is_protocol_path(path));
        let discovery = req.method() == Method::OPTIONS
            && !req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            && is_discovery_path(path);
        let origin = req.headers().contains_key(header::ORIGIN);
        let uploads = if discovery {
            plain.clone()
        } else {
            with_cors.clone()
        };
        let admin = admin.clone();
        async move {
            if let Some(refused) = refused {
                return Ok(refused);
            }
            if to_admin {
                return admin.oneshot(req).await;
            }
            if let Some(site) = to_site {
                return site.oneshot(req).await;
            }
            let mut resp = uploads.oneshot(req).await?;
            if discovery && origin {
                let h = resp.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                if let Ok(v) = HeaderValue::from_str(&EXPOSED_HEADERS.join(",")) {
                    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
                }
            }
            Ok::<_, Infallible>(resp)
        }
    }))
}

/// `/tus`, `/tus/...`, `/ietf`, `/ietf/...`.
fn is_discovery_path(path: &str) -> bool {
    ["/tus", "/ietf"].iter().any(|p| under(path, p))
}

/// `/ranged`, `/tus`, `/ietf`, `/gcs` and the paths below them.
fn is_protocol_path(path: &str) -> bool {
    ["/ranged", "/tus", "/ietf", "/gcs"]
        .iter()
        .any(|p| under(path, p))
}

/// True for `prefix` itself and the paths below it.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Starts a server on `addr` (use port 0 for any free port). Uploads
/// already in the store directory count against the limits from the start.
pub async fn start(addr: SocketAddr, config: ServerConfig) -> std::io::Result<RunningServer> {
    let store_limits = store::StoreLimits {
        max_size: config.max_size,
        max_total_size: config.max_total_size,
        max_unfinished: config.max_unfinished,
        min_free_disk: config.min_free_disk,
    };
    let store = Arc::new(
        store::Store::open(config.dir, store_limits, config.write_behind)?
            .with_atomic_appends(config.atomic_appends),
    );
    store.load_existing().await?;
    let faults = Arc::new(faults::FaultInjector::new(config.faults));
    let limits = Limits {
        expire_after: config.expire_after,
        max_append_size: config.max_append_size,
        max_checksum_body: config.max_checksum_body,
        max_metadata_size: config.max_metadata_size,
        max_header_size: config.max_header_size,
    };
    let mut admin = config.admin;
    // The web demo page on this server gets the fault switch: a token of
    // its own, handed to it in /demo-config.json.
    let site = match config.web_demo {
        Some(site) => {
            let token = match &admin.fault_switch_token {
                Some(token) => token.clone(),
                None => random_token()?,
            };
            admin.fault_switch_token = Some(token.clone());
            Some(site.with_fault_switch_token(token))
        }
        None => None,
    };
    let state = AppState {
        store,
        faults,
        limits,
        admin: Arc::new(admin),
        hosts: Arc::new(hosts::HostPolicy::new(&config.allowed_hosts)),
    };
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let listener_sock = socket2::SockRef::from(&listener).try_clone()?;
    let (shutdown, rx) = watch::channel(false);
    let router = router(state.clone(), site);
    let task = tokio::spawn(serve::accept_loop(listener, router, rx));
    tracing::info!(addr = %local, "chunkup server listening");
    Ok(RunningServer {
        addr: local,
        state,
        shutdown,
        task,
        listener_sock,
    })
}

/// `addr` with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback: an
/// address a local client can connect to.
pub(crate) fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// A running server. Dropping it stops it abruptly, like [`RunningServer::crash`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// A second handle on the listening socket, to close it at once on crash.
    listener_sock: socket2::Socket,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (loopback when listening on an unspecified address).
    pub fn base_url(&self) -> String {
        format!("http://{}", loopback_if_unspecified(self.addr))
    }

    /// The ranged protocol's creation endpoint: `base_url() + "/ranged"`.
    pub fn ranged_endpoint(&self) -> String {
        format!("{}/ranged", self.base_url())
    }

    /// The tus creation endpoint: `base_url() + "/tus"`.
    pub fn tus_endpoint(&self) -> String {
        format!("{}/tus", self.base_url())
    }

    /// The IETF resumable-upload creation endpoint: `base_url() + "/ietf"`.
    pub fn ietf_endpoint(&self) -> String {
        format!("{}/ietf", self.base_url())
    }

    /// The Google-style resumable-session initiation endpoint:
    /// `base_url() + "/gcs"`.
    pub fn gcs_endpoint(&self) -> String {
        format!("{}/gcs", self.base_url())
    }

    /// Replaces the faults: reseeds the RNG and restarts the chunk-request
    /// counter scripts refer to. Counts are kept.
    pub fn set_faults(&self, spec: FaultSpec) {
        tracing::info!(%spec, "faults replaced");
        self.state.faults.set(spec);
    }

    /// The faults currently in force.
    pub fn faults(&self) -> FaultSpec {
        self.state.faults.spec()
    }

    /// How many faults of each kind were injected since start.
    pub fn fault_counts(&self) -> FaultCounts {
        self.state.faults.counts()
    }

    /// Graceful stop: stops accepting, lets open connections finish (at most
    /// a few seconds), then flushes every write-behind buffer to disk.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.task).await;
        if let Err(e) = self.state.store.flush_all().await {
            tracing::error!(error = %e, "flushing write-behind buffers failed");
        }
        tracing::info!(addr = %self.addr, "chunkup server stopped");
    }

    /// Abrupt stop, emulating a killed process: the listening socket closes
    /// at once, every connection is dropped, and write-behind buffers are
    /// lost (never written).
    pub fn crash(self) {
        tracing::info!(addr = %self.addr, "chunkup server crashing (emulated)");
        self.state.store.crash();
        // Drop is what actually stops it.
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if !self.task.is_finished() {
            self.state.store.crash();
            // Closes the listener now, before the aborted task is dropped,
            // so new connects are refused immediately.
            let _ = self.listener_sock.shutdown(std::net::Shutdown::Both);
            self.task.abort();
        }
    }
}
