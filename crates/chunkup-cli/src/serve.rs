//! `chunkup serve`: the reference server until Ctrl-C, optionally with the
//! web demo page (`--web-demo`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chunkup_server::web_demo::{self, WebDemo};
use chunkup_server::{FaultSpec, ServerConfig};
use clap::Args;

use crate::exit;
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where uploads are stored.
    #[arg(long, default_value = "./chunkup-data")]
    dir: PathBuf,
    /// Faults to inject, e.g. "seed=1,reset=0.05,error=0.05,busy=0.05" (see docs/SERVER.md).
    #[arg(long, default_value = "none")]
    faults: String,
    /// Largest upload accepted.
    #[arg(long, default_value = "64GiB", value_parser = parse_size)]
    max_size: u64,
    /// Keep this many acknowledged bytes per upload in memory only (failover emulation).
    #[arg(long, default_value = "0", value_parser = parse_write_behind)]
    write_behind: u64,
    /// All-or-nothing appends: a chunk or PATCH whose body breaks off stores
    /// none of its bytes (like servers that buffer or verify whole chunks).
    #[arg(long)]
    atomic_appends: bool,
    /// Also serve the web demo page and the npm package (bindings/wasm/pkg).
    #[arg(long)]
    web_demo: bool,
    /// The demo page's directory [default: web-demo/ in the current directory
    /// or above the chunkup binary].
    #[arg(long, requires = "web_demo")]
    web_demo_dir: Option<PathBuf>,
    /// The built npm package (scripts/wasm.sh) [default: bindings/wasm/pkg
    /// beside the demo directory].
    #[arg(long, requires = "web_demo")]
    wasm_pkg: Option<PathBuf>,
    /// Serve the page on this second address instead of --addr, so the page's
    /// origin differs from the upload server's (cross-origin, CORS).
    #[arg(long, requires = "web_demo")]
    web_demo_addr: Option<SocketAddr>,
}

fn parse_write_behind(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        Ok(0)
    } else {
        parse_size(text)
    }
}

pub(crate) async fn run(args: ServeArgs) -> u8 {
    let faults: FaultSpec = match args.faults.parse() {
        Ok(faults) => faults,
        Err(error) => {
            eprintln!("chunkup serve: bad --faults: {error}");
            return exit::USAGE;
        }
    };
    let site = if args.web_demo {
        match locate_web_demo(&args) {
            Ok(site) => Some(site),
            Err(error) => {
                eprintln!("chunkup serve: {error}");
                return exit::USAGE;
            }
        }
    } else {
        None
    };
    let (same_origin, cross_origin) = match (site, args.web_demo_addr) {
        (Some(site), Some(addr)) => (None, Some((site, addr))),
        (site, _) => (site, None),
    };
    let demo_here = same_origin.is_some();
    let config = ServerConfig {
        dir: args.dir.clone(),
        max_size: args.max_size,
        faults,
        write_behind: args.write_behind,
        atomic_appends: args.atomic_appends,
        web_demo: same_origin,
        ..ServerConfig::default()
    };
    let server = match chunkup_server::start(args.addr, config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("chunkup serve: cannot listen on {}: {error}", args.addr);
            return exit::FAILED;
        }
    };
    eprintln!(
        "chunkup serve: listening on {} (store {}); endpoints: ranged {}, tus {}, ietf {}",
        server.base_url(),
        args.dir.display(),
        server.ranged_endpoint(),
        server.tus_endpoint(),
        server.ietf_endpoint()
    );
    let mut page_server = None;
    if demo_here {
        eprintln!("chunkup serve: web demo: {}/", server.base_url());
    } else if let Some((site, addr)) = cross_origin {
        match web_demo::start(addr, site.with_upload_server(server.base_url())).await {
            Ok(page) => {
                eprintln!(
                    "chunkup serve: web demo: {} (uploads cross-origin to {})",
                    page.url(),
                    server.base_url()
                );
                page_server = Some(page);
            }
            Err(error) => {
                eprintln!("chunkup serve: cannot listen on {addr}: {error}");
                server.shutdown().await;
                return exit::FAILED;
            }
        }
    }
    wait_for_shutdown_signal().await;
    eprintln!("chunkup serve: shutting down");
    if let Some(page) = page_server {
        page.shutdown().await;
    }
    server.shutdown().await;
    0
}

/// The demo page and package from the flags, or found by convention: a
/// `web-demo/` holding `index.html` in the current directory or in a
/// directory above the binary (`target/debug/chunkup` in a checkout), and the
/// package at `bindings/wasm/pkg` beside it.
fn locate_web_demo(args: &ServeArgs) -> Result<WebDemo, String> {
    let page_dir = match &args.web_demo_dir {
        Some(dir) => dir.clone(),
        None => find_page_dir().ok_or(
            "cannot find the web demo (web-demo/index.html) in the current directory or \
             above the chunkup binary; pass --web-demo-dir",
        )?,
    };
    let pkg_dir = match &args.wasm_pkg {
        Some(dir) => dir.clone(),
        None => page_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("bindings/wasm/pkg"),
    };
    WebDemo::new(page_dir, pkg_dir).map_err(|e| e.to_string())
}

fn find_page_dir() -> Option<PathBuf> {
    let is_page = |dir: &Path| dir.join("index.html").is_file();
    let here = PathBuf::from("web-demo");
    if is_page(&here) {
        return Some(here);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join("web-demo"))
        .find(|dir| is_page(dir))
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
